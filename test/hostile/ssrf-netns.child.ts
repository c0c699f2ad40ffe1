/**
 * SSRF attacks on real forbidden addresses, run only inside the private network namespace that
 * runInNamespace makes (ssrf.test.ts starts it). There, every FORBIDDEN_ADDRESS is local and holds
 * traps (ports 80, 443, and the allowed origins' ports), so a policy that let a sandbox through
 * would be counted, and no packet can leave the machine (no interface but lo, no route).
 *
 * An "allowed public origin" must be reachable without allowPrivate: the namespace gets two public
 * addresses of its own on lo (PUBLIC_V4, PUBLIC_V6), added by this file only after inNamespace()
 * has proved that it runs in a namespace with no way out. The policy under attack is the plain
 * `allow: ["*"]` (ports 80 and 443 of any host) plus those origins' ports, with no allowPrivate.
 *
 * node --test runs every .js file under dist/test/, so the normal suite runs this file directly
 * too: outside a namespace it registers one skipped test and touches nothing.
 */
import { describe, test, before, after, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { Sandbox, PolicyError, type NetLookup, type NetOptions, type RunResult } from "../../src/index.js";
import { FORBIDDEN_ADDRESSES, inNamespace } from "../network/netns.js";
import { startOrigin, startTrap, type Origin, type Trap } from "../network/servers.js";

/** Public addresses (example.com's), local to the namespace only. */
const PUBLIC_V4 = "93.184.215.14";
const PUBLIC_V6 = "2606:2800:21f:cb07:6820:80da:af6b:8b2c";

/** Every address a sandbox must not reach here: the forbidden set, plus the namespace's own loopback. */
const TARGETS: readonly string[] = [...FORBIDDEN_ADDRESSES, "127.0.0.1", "::1"];

/** Unspecified addresses, and the loopback address whose trap a connection to them would reach. */
const UNSPECIFIED: ReadonlyArray<[string, string]> = [["0.0.0.0", "127.0.0.1"], ["::", "::1"]];

function bracketed(address: string): string {
  return address.includes(":") ? `[${address}]` : address;
}

/** A label for the address in a DNS name: "169-254-169-254", "fd00-ec2--254". */
function label(address: string): string {
  return address.replace(/[.:]/g, "-");
}

const describeResult = (result: RunResult): string =>
  result.ok ? `value ${JSON.stringify(result.value)?.slice(0, 200)}` : `${result.error.name}: ${result.error.message}`;

function fetchCode(url: string, init?: string): string {
  return `const r = await fetch(${JSON.stringify(url)}${init ? `, ${init}` : ""}); ({ status: r.status, body: await r.text() })`;
}

/** Refused by the policy (PolicyError), and recorded as refused. */
function assertRefused(result: RunResult, what: string, rule?: RegExp): PolicyError {
  assert.equal(result.ok, false, `${what}: expected PolicyError, got ${describeResult(result)}`);
  if (result.ok) throw new Error("unreachable");
  assert.ok(result.error instanceof PolicyError, `${what}: expected PolicyError, got ${describeResult(result)}`);
  const record = result.fetches.at(-1);
  assert.ok(record, `${what}: no audit record`);
  assert.equal(record.verdict, "refused", `${what}: ${JSON.stringify(record)}`);
  assert.equal(record.status, null);
  if (rule) assert.match(record.rule, rule, what);
  return result.error;
}

if (!inNamespace()) {
  test("ssrf in a network namespace (child)", { skip: "runs only inside the network namespace made by runInNamespace (see ssrf.test.ts)" }, () => {});
} else {
  /** Traps by address, then port. */
  const traps = new Map<string, Map<number, Trap>>();
  let publicOrigin: Origin;
  let publicOrigin6: Origin;
  let Q = 0;
  let Q6 = 0;

  const allTraps = (): Trap[] => [...traps.values()].flatMap((byPort) => [...byPort.values()]);
  const totalHits = (): number => allTraps().reduce((sum, trap) => sum + trap.hits, 0);

  async function assertNoHits(what: string): Promise<void> {
    await new Promise((resolve) => setTimeout(resolve, 15));
    const hit = allTraps().filter((trap) => trap.hits > 0);
    assert.deepEqual(hit.map((trap) => `${trap.url()} (${trap.hits})`), [], `${what}: traps were hit`);
  }

  /** Names for the stub resolver: the public origins, each target by several routes, metadata.google.internal. */
  function names(): Record<string, readonly string[]> {
    const table: Record<string, string[]> = {
      "public.test": [PUBLIC_V4],
      "public6.test": [PUBLIC_V6],
      localhost: ["127.0.0.1", "::1"],
      "metadata.google.internal": ["169.254.169.254"],
      "metadata.azure.internal": ["168.63.129.16"],
      "instance-data.ec2.internal": ["169.254.169.254", "fd00:ec2::254"],
    };
    for (const address of [...TARGETS, ...UNSPECIFIED.map(([unspecified]) => unspecified)]) {
      table[`t-${label(address)}.evil.test`] = [address];
      table[`x-${label(address)}.evil.test`] = [PUBLIC_V4, address];
      table[`y-${label(address)}.evil.test`] = [address, PUBLIC_V6];
      if (!address.includes(":")) table[`m-${label(address)}.evil.test`] = [`::ffff:${address}`];
    }
    return table;
  }

  function stub(table: Record<string, readonly string[]>): NetLookup {
    return async (hostname) => {
      const answer = table[hostname.toLowerCase().replace(/\.$/, "")];
      if (!answer) throw Object.assign(new Error(`no such name ${hostname}`), { code: "ENOTFOUND" });
      return answer;
    };
  }

  /** The policy under attack: any host on 80/443, the public origins' ports, nothing private. */
  const policy = (extra: Partial<NetOptions> = {}): NetOptions => ({
    allow: ["*", `${PUBLIC_V4}:${Q}`, `[${PUBLIC_V6}]:${Q6}`, `public.test:${Q}`, `public6.test:${Q6}`],
    lookup: stub(names()),
    ...extra,
  });

  before(async () => {
    // Only now, proven to be inside a namespace with nothing but lo: give it two public addresses.
    assert.ok(inNamespace());
    for (const args of [["addr", "add", `${PUBLIC_V4}/32`, "dev", "lo"], ["-6", "addr", "add", `${PUBLIC_V6}/128`, "dev", "lo", "nodad"]]) {
      const result = spawnSync("ip", args, { encoding: "utf8" });
      assert.equal(result.status, 0, `ip ${args.join(" ")}: ${result.stderr}`);
    }
    publicOrigin = await startOrigin(PUBLIC_V4);
    publicOrigin6 = await startOrigin(PUBLIC_V6);
    Q = publicOrigin.port;
    Q6 = publicOrigin6.port;
    for (const address of TARGETS) {
      const byPort = new Map<number, Trap>();
      for (const port of new Set([80, 443, Q, Q6])) byPort.set(port, await startTrap(address, port));
      traps.set(address, byPort);
    }
    // A trap on a public address's unlisted port.
    traps.set(`${PUBLIC_V4}:8080`, new Map([[8080, await startTrap(PUBLIC_V4, 8080)]]));
    await Sandbox.warm();
  });

  after(async () => {
    await Promise.all([publicOrigin.close(), publicOrigin6.close(), ...allTraps().map((trap) => trap.close())]);
  });

  describe("the setup", () => {
    test("nothing routes out", () => {
      for (const [family, address] of [["-4", "203.0.113.1"], ["-6", "2001:db8::1"]] as const) {
        const lookup = spawnSync("ip", [family, "route", "get", address], { encoding: "utf8" });
        assert.notEqual(lookup.status, 0, `a route to ${address} exists: ${lookup.stdout}`);
      }
    });

    test("positive controls: the public origins are reachable under the policy, by address, by name and by redirect", async () => {
      const sandbox = await Sandbox.create({ net: policy() });
      try {
        for (const url of [
          publicOrigin.url("/json"), publicOrigin6.url("/json"), `http://public.test:${Q}/json`, `http://public6.test:${Q6}/json`,
          publicOrigin.url(`/redirect?to=${encodeURIComponent(publicOrigin6.url("/json"))}`),
        ]) {
          const result = await sandbox.run(fetchCode(url));
          assert.ok(result.ok, `${url}: ${describeResult(result)}`);
          assert.equal((result.value as { status: number }).status, 200, url);
          assert.ok(result.fetches.every((record) => record.verdict === "allowed"));
        }
        assert.ok(publicOrigin.requests.length >= 3);
        assert.ok(publicOrigin6.requests.length >= 2);
      } finally {
        await sandbox.close();
      }
      await assertNoHits("positive controls");
    });

    test("a policy that allowed private addresses would hit the traps (the traps work through a sandbox)", async () => {
      const trap = traps.get("10.0.0.1")!.get(80)!;
      const sandbox = await Sandbox.create({ net: { allow: ["*"], allowPrivate: ["10.0.0.1"] } });
      try {
        const result = await sandbox.run(fetchCode("http://10.0.0.1/"));
        assert.ok(result.ok, describeResult(result));
        assert.equal((result.value as { body: string }).body, "trap");
        assert.equal(trap.hits, 1);
      } finally {
        await sandbox.close();
      }
      // Back to zero for the attacks: this trap's count is remembered and subtracted below.
      controlHits.set(trap, 1);
    });
  });

  /** Hits the positive control made on purpose. */
  const controlHits = new Map<Trap, number>();
  /** Every trap's count when the current test started: each test answers for its own hits only. */
  let atTestStart = new Map<Trap, number>();
  beforeEach(() => {
    atTestStart = new Map(allTraps().map((trap) => [trap, trap.hits]));
  });

  async function assertNoAttackHits(what: string): Promise<void> {
    await new Promise((resolve) => setTimeout(resolve, 15));
    const hit = allTraps().filter((trap) => trap.hits > (atTestStart.get(trap) ?? 0));
    assert.deepEqual(hit.map((trap) => `${trap.url()} (+${trap.hits - (atTestStart.get(trap) ?? 0)})`), [], `${what}: traps were hit`);
  }

  for (const target of [...TARGETS, ...UNSPECIFIED.map(([unspecified]) => unspecified)]) {
    const host = bracketed(target);
    const name = `t-${label(target)}.evil.test`;
    const v4 = !target.includes(":");
    describe(target, () => {
      let sandbox: Sandbox;
      let anyPort: Sandbox;
      before(async () => {
        sandbox = await Sandbox.create({ net: policy() });
        anyPort = await Sandbox.create({ net: policy({ allow: ["*:*"] }) });
      });
      after(async () => {
        await sandbox.close();
        await anyPort.close();
      });

      const attacks: Array<[string, () => Sandbox, () => string, string | undefined, RegExp]> = [
        ["directly, port 80", () => sandbox, () => `http://${host}/latest/meta-data/`, undefined, /address/],
        ["directly, https", () => sandbox, () => `https://${host}/`, undefined, /address/],
        ["directly, explicit :80", () => sandbox, () => `http://${host}:80/`, undefined, /address/],
        ["directly, on the public origin's port (allow *:*)", () => anyPort, () => `http://${host}:${Q}/`, undefined, /address/],
        ["directly, on a port the policy does not allow", () => sandbox, () => `http://${host}:${Q}/`, undefined, /^not in the allow list$/],
        ["by userinfo (http://public.test@target/)", () => sandbox, () => `http://public.test@${host}/`, undefined, /^URLs with credentials are refused$/],
        ["by a name (stub DNS)", () => sandbox, () => `http://${name}/`, undefined, /^resolves to a/],
        ["by a name, https", () => sandbox, () => `https://${name}/`, undefined, /^resolves to a/],
        ["by a name on the origin's port (allow *:*)", () => anyPort, () => `http://${name}:${Q}/`, undefined, /^resolves to a/],
        ["by a name that also resolves to the public address (public first)", () => sandbox, () => `http://x-${label(target)}.evil.test/`, undefined, /^resolves to a/],
        ["by a name that also resolves to a public address (target first)", () => sandbox, () => `http://y-${label(target)}.evil.test/`, undefined, /^resolves to a/],
        ["by a 302 from the allowed public origin", () => sandbox, () => publicOrigin.url(`/redirect?to=${encodeURIComponent(`http://${host}/`)}`), undefined, /address/],
        ["by a 307 (POST with a body) from the allowed public origin", () => sandbox, () => publicOrigin.url(`/redirect?status=307&to=${encodeURIComponent(`http://${host}/`)}`), `{ method: "POST", body: "x" }`, /address/],
        ["by a 308 from the allowed IPv6 public origin", () => sandbox, () => publicOrigin6.url(`/redirect?status=308&to=${encodeURIComponent(`http://${host}/`)}`), undefined, /address/],
        ["by a protocol-relative redirect", () => sandbox, () => publicOrigin.url(`/redirect?to=${encodeURIComponent(`//${host}/`)}`), undefined, /address/],
        ["by a redirect to a name that resolves to it", () => sandbox, () => publicOrigin.url(`/redirect?to=${encodeURIComponent(`http://${name}/`)}`), undefined, /^resolves to a/],
        ["by a redirect through a name, on the origin's port (allow *:*)", () => anyPort, () => publicOrigin.url(`/redirect?to=${encodeURIComponent(`http://${name}:${Q}/`)}`), undefined, /^resolves to a/],
        ["by a redirect with userinfo", () => sandbox, () => publicOrigin.url(`/redirect?to=${encodeURIComponent(`http://public.test@${host}/`)}`), undefined, /^URLs with credentials are refused$/],
      ];
      if (v4) {
        attacks.push(
          ["as an IPv4-mapped IPv6 literal", () => sandbox, () => `http://[::ffff:${target}]/`, undefined, /address/],
          ["by a name answering its IPv4-mapped form", () => sandbox, () => `http://m-${label(target)}.evil.test/`, undefined, /^resolves to a/],
          ["by a redirect to its IPv4-mapped form", () => sandbox, () => publicOrigin.url(`/redirect?to=${encodeURIComponent(`http://[::ffff:${target}]/`)}`), undefined, /address/],
        );
      }
      for (const [what, which, url, init, rule] of attacks) {
        test(what, async () => {
          const result = await which().run(fetchCode(url(), init));
          const error = assertRefused(result, `${target} ${what}`, rule);
          if (/name/.test(what)) {
            // A name's refusal says what kind of address, never which one.
            for (const shown of [target, ...(v4 ? [`::ffff:${target}`] : [])]) assert.ok(!error.message.includes(shown), `${what}: ${error.message}`);
            assert.doesNotMatch(error.message, /\d+\.\d+\.\d+\.\d+|\[[0-9a-f:]+\]/i, `${what}: ${error.message}`);
          }
          if (/redirect/.test(what)) assert.equal(result.fetches[0]?.verdict, "allowed");
          await assertNoAttackHits(`${target} ${what}`);
        });
      }

      test("DNS rebinding: the public answer first, this one next; every connection goes where it was checked", async () => {
        let calls = 0;
        const lookup: NetLookup = async () => (calls++ === 0 ? [PUBLIC_V4] : [target]);
        const rebinding = await Sandbox.create({ net: { allow: ["*:*"], lookup, maxConcurrent: 10 } });
        const before = publicOrigin.requests.length;
        try {
          const result = await rebinding.run(`
            const settled = await Promise.allSettled([0, 1, 2].map((i) => fetch("http://rebind.test:${Q}/slow-headers?ms=100&i=" + i).then((r) => r.text())));
            settled.map((s) => s.status === "fulfilled" ? s.value : s.reason.name)`);
          assert.ok(result.ok, describeResult(result));
          assert.deepEqual([...(result.value as string[])].sort(), ["PolicyError", "PolicyError", "slow"]);
          assert.equal(publicOrigin.requests.length, before + 1);
        } finally {
          await rebinding.close();
        }
        await assertNoAttackHits(`${target} rebinding`);
      });
    });
  }

  describe("the spellings of ssrf.md, and more, under allow: [\"*\"]", () => {
    let sandbox: Sandbox;
    let system: Sandbox;
    before(async () => {
      sandbox = await Sandbox.create({ net: policy() });
      // The system resolver: /etc/hosts for localhost; for anything else, DNS, which has no route here.
      const { lookup: _unused, ...withoutStub } = policy();
      system = await Sandbox.create({ net: withoutStub });
    });
    after(async () => {
      await sandbox.close();
      await system.close();
    });

    const urls = [
      "http://127.0.0.1/", "http://localhost/", "http://LOCALHOST./", "http://127.1/", "http://0177.0.0.1/", "http://2130706433/",
      "http://0x7f000001/", "http://0x7f.1/", "http://0.0.0.0/", "http://0/", "http://[::]/", "http://[::1]/", "http://[0:0:0:0:0:0:0:1]/",
      "http://[::ffff:127.0.0.1]/", "http://[::ffff:169.254.169.254]/", "http://[::ffff:a9fe:a9fe]/",
      "http://169.254.169.254/latest/meta-data/", "http://169.254.169.254/latest/api/token", "http://2852039166/", "http://0xa9fea9fe/",
      "http://0251.0376.0251.0376/", "http://169.254.43518/", "http://0xa9.0xfe.0xa9.0xfe/", "http://[fd00:ec2::254]/latest/meta-data/",
      "http://[FD00:EC2:0:0:0:0:0:254]/", "http://[64:ff9b::169.254.169.254]/", "http://[64:ff9b::a9fe:a9fe]/",
      "http://10.0.0.1/", "http://167772161/", "http://10.1/", "http://012.0.0.1/", "http://172.16.0.1/", "http://192.168.0.1/",
      "http://100.64.0.1/", "http://100.100.100.200/", "http://168.63.129.16/", "http://192.0.0.1/", "http://198.18.0.1/", "http://240.0.0.1/",
      "http://[fc00::1]/", "http://[fe80::1]/", "http://169.254.170.2/v2/credentials", "http://[::ffff:10.0.0.1]/",
      "http://[2002:a9fe:a9fe::]/", "http://[::169.254.169.254]/", "http://[::ffff:0:a9fe:a9fe]/",
      `http://${PUBLIC_V4}:8080/`, `http://public.test:8080/`,
    ];
    for (const url of urls) {
      test(url, async () => {
        assertRefused(await sandbox.run(fetchCode(url)), url);
        await assertNoAttackHits(url);
      });
    }

    for (const name of ["metadata.google.internal", "metadata.azure.internal", "instance-data.ec2.internal"]) {
      test(`http://${name}/ (stub DNS)`, async () => {
        const error = assertRefused(await sandbox.run(fetchCode(`http://${name}/computeMetadata/v1/`)), name, /^resolves to a cloud metadata address$/);
        assert.doesNotMatch(error.message, /169\.254|fd00|168\.63/);
        await assertNoAttackHits(name);
      });
    }

    test("http://[fe80::1%25lo]/ (a zone in a URL) is not even a URL", async () => {
      const result = await sandbox.run(fetchCode("http://[fe80::1%25lo]/"));
      assert.equal(result.ok, false);
      assert.deepEqual(result.fetches, []);
      await assertNoAttackHits("zone");
    });

    test("system resolver: localhost and LOCALHOST. are refused; metadata.google.internal does not resolve", async () => {
      for (const url of ["http://localhost/", "http://LOCALHOST./", "http://localhost.localdomain/"]) {
        const result = await system.run(fetchCode(url));
        assert.equal(result.ok, false, `${url}: ${describeResult(result)}`);
        if (!result.ok && result.error instanceof PolicyError) assert.match(result.fetches.at(-1)?.rule ?? "", /^resolves to a loopback address$/);
      }
      assertRefused(await system.run(fetchCode("http://localhost/")), "localhost");
      const metadata = await system.run(fetchCode("http://metadata.google.internal/computeMetadata/v1/"));
      assert.equal(metadata.ok, false);
      await assertNoAttackHits("system resolver");
    });

    test("a long redirect chain through the public origin that ends at the metadata address is refused at its last hop", async () => {
      let location = `http://${bracketed(FORBIDDEN_ADDRESSES[0]!)}/`;
      for (const address of FORBIDDEN_ADDRESSES.slice(1)) location = publicOrigin.url(`/redirect?to=${encodeURIComponent(location)}&via=${label(address)}`);
      const result = await sandbox.run(fetchCode(location));
      assertRefused(result, "chain", /address/);
      assert.equal(result.fetches.filter((record) => record.verdict === "refused").length, 1);
      await assertNoAttackHits("chain");
    });
  });

  describe("allowPrivate ranges do not open the metadata endpoints inside them", () => {
    test("169.254.0.0/16, 100.64.0.0/10, fd00::/8 and 168.63.129.0/24 allowed: the metadata addresses stay refused", async () => {
      const ranges = ["169.254.0.0/16", "100.64.0.0/10", "fd00::/8", "168.63.129.0/24", "10.0.0.0/8"];
      const sandbox = await Sandbox.create({ net: { allow: ["*"], allowPrivate: ranges, lookup: stub(names()) } });
      try {
        for (const address of ["169.254.169.254", "169.254.170.2", "100.100.100.200", "fd00:ec2::254", "168.63.129.16"]) {
          for (const url of [`http://${bracketed(address)}/`, `http://t-${label(address)}.evil.test/`, `http://[::ffff:${address}]/`]) {
            if (url.includes("::ffff:") && address.includes(":")) continue;
            assertRefused(await sandbox.run(fetchCode(url)), url, /cloud metadata address/);
          }
        }
      } finally {
        await sandbox.close();
      }
      await assertNoAttackHits("allowPrivate ranges");
    });
  });

  test("no trap was hit", async () => {
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.ok(allTraps().length >= TARGETS.length * 3);
    // Only the positive control's deliberate connection.
    const unexpected = allTraps().filter((trap) => trap.hits !== (controlHits.get(trap) ?? 0));
    assert.deepEqual(unexpected.map((trap) => `${trap.url()} (${trap.hits})`), []);
    assert.equal(totalHits(), 1);
  });
}
