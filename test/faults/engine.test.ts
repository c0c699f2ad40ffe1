/**
 * A broken engine (PADDOCK_DENO): missing, not executable, not Deno, exiting at once, printing
 * garbage, silent forever, or a real Deno whose process goes wrong later (floods stderr, closes its
 * output). Each must end in a typed error that names the problem, within the ready timeout, with no
 * unhandled rejection (this suite runs under --unhandled-rejections=strict) and no process left.
 */
import { test, describe, before, after, afterEach } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { Sandbox, CarrierCrashedError, CarrierStartError, configurePool } from "../../src/index.js";
import { childPids, eventually } from "../processes.js";
import { hostRssMb } from "../helpers.js";
import { Engines } from "./faults.js";
import { SETPRIV } from "../../src/host/deno-binary.js";

/** The host's ready timeout is 15 s; a failing start must be reported by then (plus a busy machine's slack). */
const REPORTED_WITHIN_MS = 15_000 + 5_000;
/** Runs a helper process that dies with the engine process (where setpriv exists). */
const DIES_WITH_PARENT = SETPRIV ? `${SETPRIV} --pdeathsig KILL --` : "";

let engines: Engines;
before(() => {
  configurePool({ size: 0 });
  engines = new Engines();
});
after(() => {
  configurePool({ size: 2 });
  engines.remove();
});
afterEach(() => {
  delete process.env.PADDOCK_DENO;
});

async function expectStartFailure(engine: string, message: RegExp): Promise<void> {
  process.env.PADDOCK_DENO = engine;
  const started = performance.now();
  const error = await Sandbox.create({ carriers: 2 }).then(
    (sandbox) => {
      void sandbox.close();
      return undefined;
    },
    (reason: unknown) => reason,
  );
  const tookMs = performance.now() - started;
  assert.ok(error instanceof CarrierStartError, `expected CarrierStartError, got ${String(error)}`);
  assert.ok(error instanceof CarrierCrashedError, "a start failure is a kind of CarrierCrashedError");
  assert.match(error.message, message);
  assert.ok(!error.message.includes(engines.dir), `the message names no host path: ${error.message}`);
  assert.ok(tookMs < REPORTED_WITHIN_MS, `reported after ${tookMs.toFixed(0)} ms`);
  assert.ok(await eventually(() => childPids().length === 0, 10_000), `no process left behind: ${childPids().join(", ")}`);
  // Once the engine is right again, sandboxes start.
  delete process.env.PADDOCK_DENO;
  const sandbox = await Sandbox.create();
  assert.equal(await sandbox.eval("1 + 1"), 2);
  await sandbox.close();
}

describe("an engine that cannot start: Sandbox.create rejects with CarrierStartError naming the problem", () => {
  test("missing", () => expectStartFailure(join(engines.dir, "no-such-deno"), /PADDOCK_DENO does not exist/));

  test("not executable", () => expectStartFailure(engines.notExecutable(), /PADDOCK_DENO is not executable/));

  test("a directory", () => expectStartFailure(engines.dir, /not executable|Permission denied|Deno 2\.9/));

  test("not Deno: prints its usage and exits", () =>
    expectStartFailure(engines.script(`echo "usage: notdeno [file]" >&2; exit 2`), /exited before it was ready \(code 2\).*Deno 2\.9.*it printed: usage: notdeno/));

  test("exits at once without a word", () => expectStartFailure(engines.script("exit 0"), /exited before it was ready \(code 0\)/));

  test("killed by a signal while starting", () => expectStartFailure(engines.script("kill -9 $$"), /killed \(SIGKILL\) before it was ready/));

  test("prints garbage instead of the protocol", () =>
    expectStartFailure(engines.script(`exec yes "garbage from a program that is not Deno"`), /not the carrier protocol.*Deno 2\.9/));

  test("says nothing, ever: the ready timeout ends it", () => expectStartFailure(engines.script("exec sleep 600"), /did not start within 15 s/));
});

describe("a real engine whose process goes wrong mid-eval", () => {
  test("a flood on stderr is cut off: the carrier is killed, the host keeps its memory", async () => {
    const flag = join(engines.dir, "flood-now");
    process.env.PADDOCK_DENO = engines.script(
      `${DIES_WITH_PARENT} sh -c 'while [ ! -e "$0" ]; do sleep 0.02; done; exec yes "stderr noise from a broken engine, stderr noise from a broken engine"' "${flag}" >&2 &\nexec "$DENO" "$@"`,
    );
    const sandbox = await Sandbox.create({ timeoutMs: 120_000 });
    try {
      const rssBefore = hostRssMb();
      const started = performance.now();
      const running = sandbox.run("await new Promise((resolve) => setTimeout(resolve, 60_000)); 'not reached'");
      writeFileSync(flag, "");
      const result = await running;
      assert.ok(!result.ok && result.error instanceof CarrierCrashedError, `expected CarrierCrashedError, got ${result.ok ? "a value" : result.error.name}`);
      assert.match(result.error.message, /more than \d+ bytes of diagnostics/);
      assert.ok(performance.now() - started < 60_000, "ended by the flood, not by a timer");
      assert.ok(hostRssMb() - rssBefore < 64, `host RSS grew by ${(hostRssMb() - rssBefore).toFixed(0)} MB`);
      delete process.env.PADDOCK_DENO;
      assert.equal(await sandbox.eval("1 + 1", { timeoutMs: 60_000 }), 2, "the next eval runs on a good carrier");
    } finally {
      await sandbox.close();
    }
  });

  test("a carrier whose output closes is killed at once, not at its eval's deadline", async () => {
    const flag = join(engines.dir, "close-now");
    // The carrier writes into a FIFO; the process the host started relays the FIFO to the host and
    // stops relaying (closing the host's end) when the flag appears. The carrier lives on.
    const fifo = `${flag}.fifo`;
    process.env.PADDOCK_DENO = engines.script(
      [
        `rm -f "${fifo}"; mkfifo "${fifo}"`,
        `exec 3<&0`,
        `${DIES_WITH_PARENT} "$DENO" "$@" <&3 >"${fifo}" 3<&- &`,
        `exec 3<&-`,
        `exec ${DIES_WITH_PARENT} sh -c 'cat <"$1" & relay=$!; while [ ! -e "$0" ]; do sleep 0.02; done; kill $relay; exec sleep 600 >/dev/null' "${flag}" "${fifo}"`,
      ].join("\n"),
    );
    const sandbox = await Sandbox.create({ timeoutMs: 120_000 });
    try {
      assert.equal(await sandbox.eval("2 + 2"), 4, "the relay passes the protocol through");
      const started = performance.now();
      const running = sandbox.run("await new Promise((resolve) => setTimeout(resolve, 60_000)); 'not reached'");
      writeFileSync(flag, "");
      const result = await running;
      assert.ok(!result.ok && result.error instanceof CarrierCrashedError, `expected CarrierCrashedError, got ${result.ok ? "a value" : result.error.name}`);
      assert.match(result.error.message, /closed its output/);
      assert.ok(performance.now() - started < 60_000, "ended by the closed output, not by a timer");
      delete process.env.PADDOCK_DENO;
      assert.equal(await sandbox.eval("1 + 1", { timeoutMs: 60_000 }), 2);
    } finally {
      await sandbox.close();
    }
  });
});
