/**
 * A kill storm: evals run across eight sandboxes while a killer outside Paddock sends SIGKILL to a
 * random carrier every 20–50 ms (busy ones, idle ones, warm ones in the pool, ones still starting).
 * Every eval must settle (its own value, or CarrierCrashedError) within its limit plus the kill
 * grace, none may be left pending or get another eval's answer, every sandbox must work afterwards,
 * and the warm pool must be full again.
 */
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { Sandbox, CarrierCrashedError, type SandboxOptions } from "../../src/index.js";
import { KILL_GRACE_MS } from "../../src/host/carrier.js";
import { pool } from "../../src/host/pool.js";
import { childPids, eventually, openFdCount, processStat, settledFdCount } from "../processes.js";
import { hostRssMb } from "../helpers.js";
import { FULL_SCALE } from "./faults.js";

const EVALS = FULL_SCALE ? 10_000 : 2_000;
const MIN_KILLS = FULL_SCALE ? 200 : 50;
/** Generous: an eval's limit also covers waiting for a replacement carrier to start. */
const TIMEOUT_MS = 20_000;
/** How late the host may report a settled eval on a busy machine, beyond the limit and grace. */
const EVENT_LOOP_SLACK_MS = 2_000;
const IN_FLIGHT_PER_SANDBOX = 4;
const MEMORY_MB = 128;

const SANDBOXES: SandboxOptions[] = [
  { carriers: 2 },
  { carriers: 2 },
  { persistent: true },
  {}, {}, {}, {}, {},
].map((options) => ({ ...options, timeoutMs: TIMEOUT_MS, memoryMb: MEMORY_MB }));

/** Code whose answer names the eval, in a few shapes: sync, timers, JSON, WebCrypto, persistent state. */
function codeFor(index: number, persistent: boolean): string {
  if (persistent) return `globalThis.count = (globalThis.count ?? 0) + 1; ${index} * 2`;
  switch (index % 4) {
    case 0:
      return `${index} * 2`;
    case 1:
      return `await new Promise((resolve) => setTimeout(resolve, ${index % 7})); ${index} * 2`;
    case 2:
      return `JSON.parse(JSON.stringify(Array.from({ length: 50 }, (_, k) => k))).length - 50 + ${index} * 2`;
    default:
      return `await crypto.subtle.digest("SHA-256", new TextEncoder().encode("${index}")); ${index} * 2`;
  }
}

test(`${EVALS} evals across 8 sandboxes while carriers are SIGKILLed every 20–50 ms`, { timeout: 15 * 60_000 }, async (t) => {
  await Sandbox.warm({ memoryMb: MEMORY_MB });
  const fdsBefore = openFdCount();
  const rssBefore = hostRssMb();
  const sandboxes = await Promise.all(SANDBOXES.map((options) => Sandbox.create(options)));
  try {
    await storm(sandboxes, t);
  } finally {
    await Promise.all(sandboxes.map((sandbox) => sandbox.close()));
  }
  const rssAfter = hostRssMb();
  const fdsAfter = await settledFdCount(fdsBefore + 4);
  t.diagnostic(`storm: host RSS ${rssBefore.toFixed(0)} → ${rssAfter.toFixed(0)} MB, host fds ${fdsBefore} → ${fdsAfter}`);
  // The two warm carriers hold 3 pipes each, as before the storm; the sandboxes' are closed.
  assert.ok(fdsAfter <= fdsBefore + 4, `host file descriptors: ${fdsBefore} before, ${fdsAfter} after`);
  assert.ok(rssAfter - rssBefore < 150, `host RSS grew from ${rssBefore.toFixed(0)} to ${rssAfter.toFixed(0)} MB`);
});

/** Runs the storm on `sandboxes`, then checks that each works and that the pool is full again. */
async function storm(sandboxes: Sandbox[], t: TestContext): Promise<void> {
  const victims: number[] = [];
  let kills = 0;
  let storming = true;
  const killer = (async () => {
    while (storming) {
      await new Promise((resolve) => setTimeout(resolve, 20 + Math.random() * 30));
      const pids = childPids();
      const victim = pids[Math.floor(Math.random() * pids.length)];
      if (victim === undefined) continue;
      try {
        process.kill(victim, "SIGKILL");
        victims.push(victim);
        kills++;
      } catch {
        // it ended on its own meanwhile
      }
    }
  })();

  const errors = new Map<string, number>();
  let values = 0;
  let slowestMs = 0;
  let issued = 0;
  const workers = sandboxes.flatMap((sandbox, which) =>
    Array.from({ length: IN_FLIGHT_PER_SANDBOX }, async () => {
      while (issued < EVALS || kills < MIN_KILLS) {
        const index = issued++;
        const started = performance.now();
        const result = await sandbox.run(codeFor(index, SANDBOXES[which]!.persistent === true));
        const tookMs = performance.now() - started;
        slowestMs = Math.max(slowestMs, tookMs);
        assert.ok(tookMs <= TIMEOUT_MS + KILL_GRACE_MS + EVENT_LOOP_SLACK_MS, `eval ${index} settled after ${Math.round(tookMs)} ms`);
        if (result.ok) {
          assert.equal(result.value, index * 2, `eval ${index} got an answer that is not its own`);
          values++;
        } else {
          assert.ok(result.error instanceof CarrierCrashedError, `eval ${index}: expected a value or CarrierCrashedError, got ${result.error.name}: ${result.error.message}`);
          errors.set(result.error.name, (errors.get(result.error.name) ?? 0) + 1);
        }
      }
    }),
  );
  try {
    await Promise.all(workers);
  } finally {
    storming = false;
    await killer;
    // The last kills land after the storm: wait until the host has reaped (and so heard of) them all.
    assert.ok(await eventually(() => victims.every((pid) => processStat(pid) === undefined), 10_000), "every victim was reaped");
  }
  assert.equal(values + [...errors.values()].reduce((a, b) => a + b, 0), issued, "every eval settled exactly once");
  assert.ok(kills >= MIN_KILLS, `only ${kills} kills`);

  // After the storm every sandbox works again, on a fresh carrier where its own was killed.
  for (const [which, sandbox] of sandboxes.entries()) {
    assert.equal(await sandbox.eval("6 * 7"), 42, `sandbox ${which} works after the storm`);
  }
  const persistent = sandboxes[2]!;
  await persistent.eval("globalThis.kept = 'yes'");
  assert.equal(await persistent.eval("kept"), "yes", "the persistent sandbox keeps state again");

  // The pool replaces the warm carriers the killer took (with backoff while they kept dying).
  const poolRefilled = await eventually(() => pool.status({ memoryMb: MEMORY_MB }).ready === 2, 60_000, 50);
  assert.ok(poolRefilled, `the warm pool is not full again: ${JSON.stringify(pool.status({ memoryMb: MEMORY_MB }))}`);

  t.diagnostic(`storm: ${JSON.stringify({ evals: issued, values, errors: Object.fromEntries(errors), kills, slowestSettleMs: Math.round(slowestMs) })}`);
}
