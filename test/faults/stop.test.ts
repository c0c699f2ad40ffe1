/**
 * A carrier frozen from outside (SIGSTOP) cannot report its own timeout: the host's deadline must
 * end the eval with TimeoutError and replace the carrier, and waking the old process later
 * (SIGCONT) must change nothing.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Sandbox, TimeoutError, CarrierCrashedError, configurePool } from "../../src/index.js";
import { KILL_GRACE_MS } from "../../src/host/carrier.js";
import { childPids, eventually, isRunning } from "../processes.js";

const TIMEOUT_MS = 1_000;
/** Recovery evals wait for a cold start of the replacement: generous on a busy machine. */
const RECOVERY = { timeoutMs: 60_000 };

before(() => configurePool({ size: 0 }));
after(() => configurePool({ size: 2 }));

/** Creates a sandbox and returns it with the pid of its only carrier (the pool is off here). */
async function sandboxWithPid(): Promise<{ sandbox: Sandbox; pid: number }> {
  const before = new Set(childPids());
  const sandbox = await Sandbox.create({ timeoutMs: TIMEOUT_MS });
  const started = childPids().filter((pid) => !before.has(pid));
  assert.equal(started.length, 1, "one new carrier");
  return { sandbox, pid: started[0]! };
}

test("SIGSTOP mid-eval: TimeoutError at the deadline, a fresh carrier, and SIGCONT of the old one changes nothing", async () => {
  const { sandbox, pid } = await sandboxWithPid();
  try {
    assert.equal(await sandbox.eval("globalThis.mark = 1; 1"), 1);
    const started = performance.now();
    const running = sandbox.run("await new Promise((resolve) => setTimeout(resolve, 300)); 'finished'");
    process.kill(pid, "SIGSTOP");
    const result = await running;
    const tookMs = performance.now() - started;
    assert.equal(result.ok, false, "a frozen carrier cannot have answered");
    if (result.ok) return;
    assert.ok(result.error instanceof TimeoutError, `expected TimeoutError, got ${result.error.name}: ${result.error.message}`);
    assert.equal(result.error.carrierRestarted, true);
    assert.ok(tookMs >= TIMEOUT_MS, `ended after ${tookMs.toFixed(0)} ms, before its limit`);
    assert.ok(await eventually(() => !isRunning(pid), 10_000), "the frozen carrier was killed");

    assert.equal(await sandbox.eval("typeof mark", RECOVERY), "undefined", "the next eval runs on a fresh carrier");
    try {
      process.kill(pid, "SIGCONT");
    } catch {
      // gone and reaped: nothing to wake
    }
    assert.equal(await sandbox.eval("40 + 2", RECOVERY), 42);
    assert.equal(await sandbox.eval("20 + 1", RECOVERY), 21);
  } finally {
    await sandbox.close();
  }
});

test("SIGSTOP while idle: the next eval times out at its deadline and the one after works", async () => {
  const { sandbox, pid } = await sandboxWithPid();
  try {
    process.kill(pid, "SIGSTOP");
    const started = performance.now();
    const result = await sandbox.run("1 + 1");
    assert.ok(!result.ok && result.error instanceof TimeoutError, "a frozen carrier times out");
    assert.ok(performance.now() - started >= TIMEOUT_MS + KILL_GRACE_MS - 5, "not before the host's deadline");
    assert.equal(await sandbox.eval("2 + 2", RECOVERY), 4);
  } finally {
    await sandbox.close();
  }
});

test("SIGSTOP on one carrier of two: evals on the other go on", async () => {
  const before = new Set(childPids());
  const sandbox = await Sandbox.create({ timeoutMs: TIMEOUT_MS, carriers: 2 });
  try {
    const [frozen] = childPids().filter((pid) => !before.has(pid));
    assert.ok(frozen !== undefined);
    process.kill(frozen, "SIGSTOP");
    const results = await Promise.all(Array.from({ length: 6 }, (_, index) => sandbox.run(`${index} + 1`)));
    const values = results.filter((result) => result.ok).length;
    // On the frozen carrier, the first eval past its deadline gets the TimeoutError and the kill;
    // the others there fail with it, as CarrierCrashedError.
    const timeouts = results.filter((result) => !result.ok && result.error instanceof TimeoutError).length;
    const collateral = results.filter((result) => !result.ok && result.error instanceof CarrierCrashedError).length;
    assert.equal(values + timeouts + collateral, 6, "each eval has a value, a TimeoutError or CarrierCrashedError");
    assert.ok(timeouts >= 1, "the frozen carrier's evals time out");
    assert.ok(values >= 1, "the carrier that was not frozen answered");
    assert.equal(await sandbox.eval("'after'", RECOVERY), "after");
  } finally {
    await sandbox.close();
  }
});
