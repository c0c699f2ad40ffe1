/**
 * Every limit ends in a typed error, and the sandbox keeps working afterwards. Timing bounds are
 * generous (the limit plus SLACK_MS, for a busy machine): the precise overshoot is measured by the
 * benchmark. Evals that test another limit get a time limit far above their work (LONG_TIMEOUT_MS),
 * and so does an eval after a kill, which waits for a fresh carrier's start.
 */
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import {
  Sandbox, TimeoutError, MemoryLimitError, OutputLimitError, ResourceLimitError, ScriptError, SandboxClosedError, CarrierCrashedError,
} from "../../src/index.js";
import { expectFailure, hostRssMb, withSandbox } from "../helpers.js";
import { LONG_TIMEOUT_MS, SLACK_MS } from "../timing.js";

const LIMIT_MS = 400;

describe("timeoutMs", () => {
  let sandbox: Sandbox;
  before(async () => {
    sandbox = await Sandbox.create({ timeoutMs: LIMIT_MS });
  });
  after(() => sandbox.close());

  const cases: Array<[string, string, boolean]> = [
    ["a synchronous loop", "while (true) {}", false],
    ["a promise that never settles", "await new Promise(() => {})", false],
    // Work on the realm's own microtask queue runs under V8's interrupt too: no kill needed.
    ["a loop after await", "await null; for (;;) {}", false],
    ["a loop inside a microtask", "queueMicrotask(() => { for (;;) {} }); await new Promise(() => {})", false],
    ["a microtask loop", "const spin = () => Promise.resolve().then(spin); spin(); await new Promise(() => {})", false],
    // A timer callback is called by the carrier itself: only the host's kill stops it.
    ["a loop inside setTimeout", "setTimeout(() => { for (;;) {} }, 0); await new Promise(() => {})", true],
  ];
  for (const [name, code, killsCarrier] of cases) {
    test(`stops ${name}`, async () => {
      const started = performance.now();
      const result = await sandbox.run(code);
      const elapsed = performance.now() - started;
      assert.equal(result.ok, false);
      if (result.ok) return;
      // A microtask loop may instead exhaust memory first; either way it is a typed limit error.
      assert.ok(result.error instanceof TimeoutError || result.error instanceof MemoryLimitError, `${result.error.name}: ${result.error.message}`);
      assert.ok(elapsed < LIMIT_MS + SLACK_MS, `took ${elapsed} ms`);
      if (result.error instanceof TimeoutError) {
        assert.equal(result.error.carrierRestarted, killsCarrier);
        if (killsCarrier) assert.match(result.error.message, /fresh carrier/);
      }
      assert.equal(await sandbox.eval("1 + 1", { timeoutMs: LONG_TIMEOUT_MS }), 2, "the sandbox answers again");
    });
  }

  test("a per-eval timeout overrides the sandbox's", async () => {
    const started = performance.now();
    const error = await expectFailure(sandbox, "while (true) {}", TimeoutError, { timeoutMs: 50 });
    // The message names the limit that ended it: the wall clock of a busy machine cannot tell 50 ms from 400.
    assert.match(error.message, /within 50 ms/);
    assert.ok(performance.now() - started < 50 + SLACK_MS);
  });

  test("a slow but finishing eval is not cut short", async () => {
    // A second of waiting under a 5 s limit: far enough from it for a busy machine.
    await withSandbox({ timeoutMs: 5_000 }, async (patient) => {
      assert.equal(await patient.eval("await new Promise((r) => setTimeout(() => r('late'), 1_000))"), "late");
    });
  });
});

describe("memoryMb", () => {
  test("4 GB of ArrayBuffers under 128 MB ends in MemoryLimitError and the host does not grow", async () => {
    await withSandbox({ memoryMb: 128, timeoutMs: LONG_TIMEOUT_MS }, async (sandbox) => {
      const before = hostRssMb();
      const error = await expectFailure(
        sandbox,
        "const kept = []; for (let i = 0; i < 16; i++) { const b = new Uint8Array(256 * 1024 * 1024); b.fill(1); kept.push(b); } kept.length",
        MemoryLimitError,
      );
      assert.equal(error.carrierRestarted, true);
      assert.match(error.message, /128 MB/);
      assert.ok(hostRssMb() - before < 64, "the host's RSS stays where it was");
      assert.equal(await sandbox.eval("'still here'"), "still here");
    });
  });

  test("growing the V8 heap ends in MemoryLimitError", async () => {
    await withSandbox({ memoryMb: 64, timeoutMs: LONG_TIMEOUT_MS }, async (sandbox) => {
      await expectFailure(sandbox, "const a = []; for (;;) a.push({ n: Math.random(), s: 'x'.repeat(64) + Math.random() })", MemoryLimitError);
      assert.equal(await sandbox.eval("1"), 1);
    });
  });

  test("WebAssembly memory growth ends in MemoryLimitError", async () => {
    await withSandbox({ memoryMb: 64, timeoutMs: LONG_TIMEOUT_MS }, async (sandbox) => {
      await expectFailure(sandbox, "const m = new WebAssembly.Memory({ initial: 1, maximum: 65536 }); for (;;) { m.grow(256); new Uint8Array(m.buffer).fill(1) }", MemoryLimitError);
    });
  });
});

describe("output and resource caps", () => {
  test("a result over maxResultBytes is an OutputLimitError", async () => {
    await withSandbox({ maxResultBytes: 64 * 1024 }, async (sandbox) => {
      const error = await expectFailure(sandbox, "new Uint8Array(100 * 1024)", OutputLimitError);
      assert.match(error.message, /limit is 65536 bytes/);
      assert.equal((await sandbox.eval<Uint8Array>("new Uint8Array(1000)")).length, 1000);
    });
  });

  test("a result of few bytes but many values (a sparse array of length 2³²−1) is an OutputLimitError", () =>
    withSandbox({}, async (sandbox) => {
      const error = await expectFailure(sandbox, `const x = []; x.length = 2 ** 32 - 1; x[5] = 1; x`, OutputLimitError);
      assert.match(error.message, /holds more than \d+ values .*an array counts its length/);
      assert.equal(await sandbox.eval("[1, , 3].length"), 3);
    }));

  test("console output over maxLogBytes is an OutputLimitError, with the logs up to the limit", async () => {
    await withSandbox({ maxLogBytes: 10_000 }, async (sandbox) => {
      const result = await sandbox.run("for (let i = 0; i < 1e6; i++) console.log('0123456789')");
      assert.equal(result.ok, false);
      assert.ok(!result.ok && result.error instanceof OutputLimitError);
      assert.ok(result.logs.length > 0 && result.logs.length <= 1000);
    });
  });

  test("a console flood caught by the code still fails the eval", async () => {
    await withSandbox({ maxLogBytes: 1000 }, async (sandbox) => {
      await expectFailure(sandbox, "try { for (;;) console.log('x'.repeat(100)) } catch {} 'swallowed'", OutputLimitError);
    });
  });

  test("more than maxTimers pending timers is a ResourceLimitError", async () => {
    await withSandbox({ maxTimers: 100 }, async (sandbox) => {
      await expectFailure(sandbox, "for (let i = 0; i < 1000; i++) setTimeout(() => {}, 10_000)", ResourceLimitError);
      assert.equal(await sandbox.eval("for (let i = 0; i < 100; i++) setTimeout(() => {}, 10_000); 'ok'"), "ok");
    });
  });

  test("source over maxSourceBytes is a ResourceLimitError", async () => {
    await withSandbox({ maxSourceBytes: 1000 }, async (sandbox) => {
      await expectFailure(sandbox, `"${"x".repeat(2000)}"`, ResourceLimitError);
    });
  });

  test("evals beyond maxConcurrentEvals are refused", async () => {
    await withSandbox({ maxConcurrentEvals: 2, timeoutMs: LONG_TIMEOUT_MS }, async (sandbox) => {
      const results = await Promise.all([1, 2, 3].map(() => sandbox.run("await new Promise((r) => setTimeout(r, 200)); 1")));
      assert.equal(results.filter((r) => r.ok).length, 2);
      assert.ok(results.some((r) => !r.ok && r.error instanceof ResourceLimitError));
    });
  });

  test("stack overflow is a ScriptError (RangeError)", async () => {
    await withSandbox({}, async (sandbox) => {
      const error = await expectFailure(sandbox, "function f() { return f() + 1 } f()", ScriptError);
      assert.equal(error.errorName, "RangeError");
    });
  });
});

describe("carriers after a limit", () => {
  test("a kill fails the other evals running on that carrier with CarrierCrashedError, then the sandbox recovers", async () => {
    await withSandbox({ timeoutMs: 300 }, async (sandbox) => {
      const bystander = sandbox.run("await new Promise((r) => setTimeout(r, 5000))", { timeoutMs: 10_000 });
      const killer = await sandbox.run("setTimeout(() => { for (;;) {} }, 0); await new Promise(() => {})");
      assert.ok(!killer.ok && killer.error instanceof TimeoutError && killer.error.carrierRestarted);
      const collateral = await bystander;
      assert.ok(!collateral.ok && collateral.error instanceof CarrierCrashedError, "the other eval on the killed carrier fails too");
      assert.equal(await sandbox.eval("2 + 2", { timeoutMs: LONG_TIMEOUT_MS }), 4);
    });
  });

  test("closing a sandbox fails its running evals with SandboxClosedError", async () => {
    const sandbox = await Sandbox.create({ timeoutMs: 10_000 });
    const running = sandbox.run("await new Promise(() => {})");
    await new Promise((resolve) => setTimeout(resolve, 50));
    await sandbox.close();
    const result = await running;
    assert.ok(!result.ok && result.error instanceof SandboxClosedError);
    await assert.rejects(sandbox.eval("1"), SandboxClosedError);
  });

  test("a sandbox burning its CPU limit does not stall another sandbox", async () => {
    await withSandbox({ timeoutMs: 3000 }, async (burner) => {
      await withSandbox({}, async (neighbour) => {
        let burnerEnded = false;
        const burning = burner.run("while (true) {}").finally(() => (burnerEnded = true));
        await new Promise((resolve) => setTimeout(resolve, 100));
        // Only answers given while the burner burns count (on a busy machine 100 evals may outlast it).
        const latencies: number[] = [];
        for (let i = 0; i < 100 && !burnerEnded; i++) {
          const started = performance.now();
          assert.equal(await neighbour.eval("6 * 7"), 42);
          if (!burnerEnded) latencies.push(performance.now() - started);
        }
        latencies.sort((a, b) => a - b);
        assert.ok(latencies.length >= 10, `only ${latencies.length} answers while the burner burned`);
        // One core is taken by the burner; the neighbour still answers in milliseconds, not seconds
        // (a machine whose every core is busy gets some slack).
        const median = latencies[Math.floor(latencies.length / 2)]!;
        assert.ok(median < 250, `median ${Math.round(median)} ms over ${latencies.length} answers`);
        const burnt = await burning;
        assert.ok(!burnt.ok && burnt.error instanceof TimeoutError);
      });
    });
  });
});
