/**
 * Running a test file inside a private network namespace, so that SSRF tests can aim at real
 * "forbidden" addresses without any packet leaving the machine.
 *
 * `unshare -rn` (a new user namespace, mapped to root, and a new network namespace) gives a network
 * with nothing but a downed `lo`. The setup brings lo up and adds every FORBIDDEN_ADDRESSES entry to
 * it, so those addresses become local: a test binds traps on them (servers.ts, startTrap), and a
 * policy that let a sandbox through would hit a trap there instead of a metadata service. There is
 * no other interface and no route, so nothing else is reachable at all.
 *
 * What works on Linux (checked by netns-selftest.child.ts on every run):
 * - IPv4: `ip addr add A/32 dev lo` for any unicast A, including 169.254.0.0/16, 100.64.0.0/10,
 *   192.0.0.0/24, 240.0.0.0/4. A listener there is reachable by A and by its IPv4-mapped form
 *   `::ffff:A` (no separate trap needed; binding `::ffff:A` itself fails with EADDRNOTAVAIL).
 * - IPv6: `ip -6 addr add A/128 dev lo nodad`. lo does no duplicate-address detection anyway (the
 *   address is usable at once without nodad, as checked on kernel 6.x); nodad keeps it that way on a
 *   kernel that would, where the address would stay "tentative" and unbindable for a while.
 * - Link-local IPv6 (fe80::1): adding it to lo works, but bind() and connect() need a zone
 *   (`fe80::1%lo`); without one both fail with EINVAL. startTrap binds `fe80::1%lo` for it. A URL
 *   cannot carry a zone, so no fetch can reach fe80::/10 at all; the trap documents that.
 * - Unspecified addresses (UNSPECIFIED_ADDRESS_TARGETS): connecting to 0.0.0.0 reaches listeners on
 *   127.0.0.1 (and on 0.0.0.0 / ::), not on 127.0.0.2 or 10.0.0.1; connecting to :: reaches ::1.
 *   So `http://0.0.0.0:P/` is a way to the host's own loopback services and must be refused like
 *   127.0.0.1.
 * - A process in the namespace may bind port 80 (it is root in its own user namespace).
 * - Deno starts there (it needs no network to start), so real sandboxes run inside.
 *
 * Importing this module has no side effects (node --test runs every .js file under dist/test/).
 */
import { spawn, spawnSync } from "node:child_process";
import { readlinkSync } from "node:fs";
import { constants } from "node:os";

/**
 * Addresses a sandbox must never reach, made local inside the namespace. The first eleven are the
 * required set; the rest are further classics of SSRF (the ECS task-metadata address, the
 * benchmarking and reserved IPv4 ranges, the NAT64 form of 169.254.169.254).
 */
export const FORBIDDEN_ADDRESSES: readonly string[] = [
  "169.254.169.254", // cloud metadata (AWS, GCP, Azure, OpenStack…), link-local
  "10.0.0.1", // RFC 1918 private
  "172.16.0.1", // RFC 1918 private
  "192.168.0.1", // RFC 1918 private
  "100.64.0.1", // RFC 6598 carrier-grade NAT (shared address space)
  "100.100.100.200", // Alibaba Cloud metadata (inside 100.64.0.0/10)
  "168.63.129.16", // Azure wireserver / DNS (a public-looking address that is internal)
  "192.0.0.1", // RFC 6890 IETF protocol assignments
  "fd00:ec2::254", // AWS IMDS over IPv6 (unique local)
  "fc00::1", // unique local
  "fe80::1", // link-local (bound as fe80::1%lo, see above)
  "169.254.170.2", // AWS ECS task metadata / credentials
  "198.18.0.1", // RFC 2544 benchmarking
  "240.0.0.1", // reserved (class E)
  "64:ff9b::a9fe:a9fe", // NAT64 well-known prefix + 169.254.169.254
];

/** Where a connection to an unspecified address lands on Linux (the self-test checks both). */
export const UNSPECIFIED_ADDRESS_TARGETS: Readonly<Record<"0.0.0.0" | "::", string>> = {
  "0.0.0.0": "127.0.0.1",
  "::": "::1",
};

/** The shell commands that set up the namespace's network (run as its root, before the test). */
export const NAMESPACE_SETUP_COMMANDS: readonly string[] = [
  "ip link set lo up",
  ...FORBIDDEN_ADDRESSES.map((address) =>
    address.includes(":") ? `ip -6 addr add ${address}/128 dev lo nodad` : `ip addr add ${address}/32 dev lo`,
  ),
];

/** The environment variable through which the runner names the namespace it made. */
export const NETNS_ENV = "PADDOCK_NETNS";

/** Bounds of what runInNamespace keeps of the child's output: its beginning and its end. */
const OUTPUT_HEAD = 16 * 1024;
const OUTPUT_TAIL = 112 * 1024;

let available: boolean | undefined;

/**
 * Whether runInNamespace can work here: Linux, `unshare -rn` permitted (unprivileged user
 * namespaces, or root), and `ip` present. Probed once by doing the first setup step for real.
 */
export function netnsAvailable(): boolean {
  if (available === undefined) {
    if (process.platform !== "linux") {
      available = false;
    } else {
      const probe = spawnSync("unshare", ["-rn", "ip", "link", "set", "lo", "up"], { stdio: "ignore", timeout: 10_000 });
      available = probe.status === 0;
    }
  }
  return available;
}

let inside: boolean | undefined;

/**
 * Whether this process runs inside a namespace that runInNamespace made, with no way out. All of:
 * - PADDOCK_NETNS names this process's own network namespace (the runner sets it from inside the
 *   namespace, so an inherited variable in a process of another namespace does not match), and
 *   differs from PADDOCK_OUTER_NETNS, the namespace of the process that called runInNamespace;
 * - no interface other than lo is up;
 * - every route, in every table and both families, goes through lo (or nowhere: unreachable,
 *   blackhole, prohibit), with no gateway.
 * Any doubt (ip missing, output not understood) answers false: callers then skip, never connect.
 */
export function inNamespace(): boolean {
  inside ??= probeInNamespace();
  return inside;
}

function probeInNamespace(): boolean {
  const marker = process.env[NETNS_ENV];
  if (!marker) return false;
  let current: string;
  try {
    current = readlinkSync("/proc/self/ns/net");
  } catch {
    return false;
  }
  if (marker !== current || process.env.PADDOCK_OUTER_NETNS === current) return false;

  const links = ipJson(["-j", "link", "show"]);
  if (!links) return false;
  for (const link of links) {
    const flags = link.flags;
    if (link.ifname !== "lo" && (!Array.isArray(flags) || flags.includes("UP"))) return false;
  }
  for (const family of ["-4", "-6"]) {
    const routes = ipJson(["-j", family, "route", "show", "table", "all"]);
    if (!routes) return false;
    for (const route of routes) {
      if (route.gateway !== undefined || route.nexthops !== undefined || route.via !== undefined) return false;
      const nowhere = route.type === "unreachable" || route.type === "blackhole" || route.type === "prohibit";
      if (route.dev !== "lo" && !nowhere) return false;
    }
  }
  return true;
}

/** `ip …` parsed as an array of objects, or undefined if it failed or printed anything else. */
function ipJson(args: string[]): Array<Record<string, unknown>> | undefined {
  const result = spawnSync("ip", args, { encoding: "utf8", timeout: 10_000 });
  if (result.status !== 0) return undefined;
  let parsed: unknown;
  try {
    // `ip -j` prints nothing at all (not `[]`) for an empty list on some versions.
    parsed = result.stdout.trim() === "" ? [] : JSON.parse(result.stdout);
  } catch {
    return undefined;
  }
  if (!Array.isArray(parsed)) return undefined;
  const records: Array<Record<string, unknown>> = [];
  for (const item of parsed as unknown[]) {
    if (typeof item !== "object" || item === null || Array.isArray(item)) return undefined;
    records.push(item as Record<string, unknown>);
  }
  return records;
}

export interface NamespaceRunOptions {
  /** Kill the run (its whole process group) after this long; default 120 s. */
  timeoutMs?: number;
}

/**
 * Runs `node --test <testFile>` (spec reporter) in a fresh user+network namespace set up with
 * NAMESPACE_SETUP_COMMANDS. Resolves with the exit code (128 + signal number if killed; the
 * output says so on a timeout) and the combined stdout and stderr, cut to its first 16 KiB and last
 * 112 KiB. `testFile` should be an absolute path to a compiled .js file.
 */
export function runInNamespace(testFile: string, options: NamespaceRunOptions = {}): Promise<{ code: number; output: string }> {
  const timeoutMs = options.timeoutMs ?? 120_000;
  const script = [
    "set -e",
    ...NAMESPACE_SETUP_COMMANDS,
    `${NETNS_ENV}="$(readlink /proc/self/ns/net)"`,
    `export ${NETNS_ENV}`,
    'exec "$0" --test --test-reporter=spec "$@"',
  ].join("\n");
  const env: NodeJS.ProcessEnv = { ...process.env };
  // Called from a file that node --test runs, NODE_TEST_CONTEXT would make the inner node --test
  // act as a child of a runner and talk its serialized protocol instead of printing a report.
  delete env.NODE_TEST_CONTEXT;
  delete env[NETNS_ENV];
  try {
    env.PADDOCK_OUTER_NETNS = readlinkSync("/proc/self/ns/net");
  } catch {
    delete env.PADDOCK_OUTER_NETNS;
  }

  return new Promise((resolve, reject) => {
    // unshare execs sh, which execs node: one process at the head of its own group, so a timeout
    // can kill it with the test-file child and Deno carriers it started.
    const child = spawn("unshare", ["-rn", "sh", "-c", script, process.execPath, testFile], {
      env,
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let head = "";
    let tail = "";
    let dropped = 0;
    const collect = (chunk: string): void => {
      let text = chunk;
      if (head.length < OUTPUT_HEAD) {
        const room = OUTPUT_HEAD - head.length;
        head += text.slice(0, room);
        text = text.slice(room);
      }
      tail += text;
      if (tail.length > OUTPUT_TAIL) {
        dropped += tail.length - OUTPUT_TAIL;
        tail = tail.slice(-OUTPUT_TAIL);
      }
    };
    // Decoded as text by the streams, so a character split across chunks is not mangled.
    child.stdout.setEncoding("utf8");
    child.stderr.setEncoding("utf8");
    child.stdout.on("data", collect);
    child.stderr.on("data", collect);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child.pid);
    }, timeoutMs);
    child.once("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      let output = dropped > 0 ? `${head}\n… (${dropped} characters dropped) …\n${tail}` : head + tail;
      if (timedOut) output += `\n[runInNamespace: killed after ${timeoutMs} ms]\n`;
      resolve({ code: code ?? 128 + (signal ? constants.signals[signal] : 0), output });
    });
  });
}

function killGroup(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, "SIGKILL");
  } catch {
    // Already gone.
  }
}
