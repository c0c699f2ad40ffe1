/**
 * Runs only inside the private network namespace that runInNamespace makes (fixtures.test.ts starts
 * it). Proves that a breach would be detected there: every FORBIDDEN_ADDRESS is local, a trap on it
 * counts a direct connection, the unspecified addresses land where netns.ts says, nothing routes
 * out, and Deno carriers start.
 *
 * node --test runs every .js file under dist/test/ (in Node 20 any file inside a `test` directory
 * matches), so this file is also run directly by the normal suite. There it must not touch any of
 * those addresses: unless inNamespace() holds, it registers one skipped test and nothing else.
 */
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { connect } from "node:net";
import { Sandbox, PolicyError } from "../../src/index.js";
import { FORBIDDEN_ADDRESSES, UNSPECIFIED_ADDRESS_TARGETS, inNamespace } from "./netns.js";
import { listenHost, startOrigin, startTrap, type Trap } from "./servers.js";

/** Opens a TCP connection and closes it; resolves "connected" or the error code. */
function tryConnect(host: string, port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    socket.setTimeout(5_000, () => {
      socket.destroy();
      resolve("timeout");
    });
    socket.once("connect", () => {
      socket.destroy();
      resolve("connected");
    });
    socket.once("error", (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
  });
}

/** Waits until `trap.hits` reaches `count` (the server sees a connection a moment after the client). */
async function hitsReach(trap: Trap, count: number): Promise<number> {
  for (let i = 0; i < 100 && trap.hits < count; i++) await new Promise((resolve) => setTimeout(resolve, 10));
  return trap.hits;
}

if (!inNamespace()) {
  test("netns self-test (child)", { skip: "runs only inside the network namespace made by runInNamespace (see fixtures.test.ts)" }, () => {});
} else {
  describe("inside the namespace", () => {
    test("nothing routes out", () => {
      // Route lookups only (no packet is sent): with no route, the kernel answers "unreachable".
      for (const [family, address] of [["-4", "203.0.113.1"], ["-6", "2001:db8::1"]] as const) {
        const lookup = spawnSync("ip", [family, "route", "get", address], { encoding: "utf8" });
        assert.notEqual(lookup.status, 0, `a route to ${address} exists: ${lookup.stdout}`);
      }
    });

    describe("a trap on every forbidden address counts a direct connection", () => {
      const traps = new Map<string, Trap>();
      before(async () => {
        // Port 80, as a URL without a port would use: root in the namespace may bind it.
        for (const address of FORBIDDEN_ADDRESSES) traps.set(address, await startTrap(address, 80));
      });
      after(async () => {
        await Promise.all([...traps.values()].map((trap) => trap.close()));
      });

      for (const address of FORBIDDEN_ADDRESSES) {
        test(address, async () => {
          const trap = traps.get(address);
          assert.ok(trap);
          assert.equal(trap.hits, 0);
          // listenHost adds the zone a link-local address needs (fe80::1 → fe80::1%lo).
          assert.equal(await tryConnect(listenHost(address), 80), "connected");
          assert.equal(await hitsReach(trap, 1), 1);
          if (address.toLowerCase().startsWith("fe80:")) {
            // No zone, no route: neither a bare connect nor a URL (which cannot carry one) gets there.
            assert.equal(await tryConnect(address, 80), "EINVAL");
            await assert.rejects(fetch(trap.url()));
            assert.equal(trap.hits, 1);
            return;
          }
          // An HTTP client that got through sees the trap's answer, and is counted.
          const response = await fetch(trap.url("/latest/meta-data/"));
          assert.equal(response.status, 200);
          assert.equal(await response.text(), "trap");
          assert.equal(await hitsReach(trap, 2), 2);
        });
      }

      test("an IPv4-mapped IPv6 address reaches the IPv4 trap", async () => {
        const trap = traps.get("169.254.169.254");
        assert.ok(trap);
        const previous = trap.hits;
        assert.equal(await tryConnect("::ffff:169.254.169.254", 80), "connected");
        assert.equal(await hitsReach(trap, previous + 1), previous + 1);
      });

      test("0.0.0.0 does not reach a forbidden address (only loopback)", async () => {
        const trap = traps.get("10.0.0.1");
        assert.ok(trap);
        const previous = trap.hits;
        assert.equal(await tryConnect("0.0.0.0", 80), "ECONNREFUSED");
        assert.equal(trap.hits, previous);
      });
    });

    for (const [unspecified, target] of Object.entries(UNSPECIFIED_ADDRESS_TARGETS)) {
      test(`connecting to ${unspecified} reaches a listener on ${target}`, async () => {
        const trap = await startTrap(target);
        try {
          assert.equal(await tryConnect(unspecified, trap.port), "connected");
          assert.equal(await hitsReach(trap, 1), 1);
        } finally {
          await trap.close();
        }
      });
    }

    test("an origin can serve on a forbidden address", async () => {
      for (const host of ["10.0.0.1", "fd00:ec2::254"]) {
        const origin = await startOrigin(host);
        try {
          const response = await fetch(origin.url("/json"));
          assert.equal(response.status, 200);
          assert.equal(origin.requests.length, 1);
        } finally {
          await origin.close();
        }
      }
    });

    test("Deno carriers start, and a sandbox without network access reaches no trap", async () => {
      const trap = await startTrap("169.254.169.254", 80);
      const sandbox = await Sandbox.create({ timeoutMs: 10_000 });
      try {
        assert.equal(await sandbox.eval("1 + 1"), 2);
        const result = await sandbox.run("await fetch('http://169.254.169.254/latest/meta-data/')");
        assert.equal(result.ok, false);
        if (!result.ok) assert.ok(result.error instanceof PolicyError, `${result.error.name}: ${result.error.message}`);
        assert.equal(trap.hits, 0);
      } finally {
        await sandbox.close();
        await trap.close();
      }
    });
  });
}
