/**
 * Integration: the public API of Sandbox against real carriers. create/eval/run/close, `await using`,
 * option validation, the error classes, log capture, limits named by options, and several carriers.
 */
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { fileURLToPath, pathToFileURL } from "node:url";
import { join } from "node:path";
import {
  Sandbox, SandboxError, ScriptError, TimeoutError, MemoryLimitError, OutputLimitError, ResourceLimitError, PolicyError,
  CarrierCrashedError, SandboxClosedError, type LogEntry, type SandboxOptions, type EvalOptions,
} from "../../src/index.js";
import { expectFailure } from "../helpers.js";
import { LONG_TIMEOUT_MS, SLACK_MS } from "../timing.js";

const root = fileURLToPath(new URL("../../../", import.meta.url));

describe("eval and run", () => {
  let sandbox: Sandbox;
  before(async () => {
    // Evals that test the time limit set a short one of their own; the others (and any that waits
    // for a fresh carrier after a kill) get all the time a busy machine needs.
    sandbox = await Sandbox.create({ timeoutMs: LONG_TIMEOUT_MS });
  });
  after(() => sandbox.close());

  test("eval resolves to the completion value", async () => {
    assert.equal(await sandbox.eval("1 + 1"), 2);
    assert.deepEqual(await sandbox.eval("({ ok: [1, 'two'] })"), { ok: [1, "two"] });
  });

  test("eval rejects with a SandboxError when the code fails", async () => {
    await assert.rejects(sandbox.eval("throw new TypeError('boom')"), (error: unknown) => {
      assert.ok(error instanceof ScriptError);
      assert.ok(error instanceof SandboxError);
      assert.ok(error instanceof Error);
      assert.equal(error.errorName, "TypeError");
      assert.equal(error.message, "TypeError: boom");
      return true;
    });
  });

  test("run returns { ok, value, logs, stats } on success", async () => {
    const result = await sandbox.run("console.log('hi'); 42");
    assert.deepEqual(Object.keys(result).sort(), ["fetches", "files", "imports", "logs", "ok", "stats", "toolCalls", "value"]);
    assert.deepEqual(result.fetches, []);
    assert.deepEqual(result.toolCalls, []);
    assert.equal(result.ok, true);
    if (!result.ok) return;
    assert.equal(result.value, 42);
    assert.equal(result.logs.length, 1);
    assert.equal(result.logs[0]?.level, "log");
    assert.equal(result.logs[0]?.message, "hi");
    assert.equal(typeof result.logs[0]?.time, "number");
    assert.deepEqual(Object.keys(result.stats).sort(), ["cpuMs", "wallMs"]);
    assert.ok(result.stats.wallMs > 0);
    assert.ok(result.stats.cpuMs >= 0);
  });

  test("stats measure the eval", async () => {
    const slow = await sandbox.run("await new Promise((r) => setTimeout(r, 50))");
    assert.ok(slow.stats.wallMs >= 45, `wallMs ${slow.stats.wallMs} for a 50 ms eval`);
    // A fixed amount of work (~50 ms of CPU on an idle machine), so that a busy machine does not change it.
    const busy = await sandbox.run("let x = 0; for (let i = 0; i < 1e7; i++) x = (x + i) % 1000003; x");
    const idle = await sandbox.run("1");
    assert.ok(busy.stats.cpuMs >= 20, `cpuMs ${busy.stats.cpuMs} for ~50 ms of work`);
    assert.ok(busy.stats.cpuMs > idle.stats.cpuMs * 5, `cpuMs ${busy.stats.cpuMs} for work vs ${idle.stats.cpuMs} for \`1\``);
  });

  test("run never throws for failures of the code", async () => {
    const cases: Array<[string, EvalOptions | undefined, abstract new (...args: never[]) => SandboxError]> = [
      ["throw new Error('x')", undefined, ScriptError],
      ["throw 'not an error'", undefined, ScriptError],
      ["let = = 1", undefined, ScriptError],
      ["() => 1", undefined, ScriptError],
      ["import os from 'node:os'", undefined, PolicyError],
      ["await fetch('https://example.com/')", undefined, PolicyError],
      ["while (true) {}", { timeoutMs: 100 }, TimeoutError],
      ["new Promise(() => {})", { timeoutMs: 100 }, TimeoutError],
      ["Promise.reject(new Error('rejected'))", undefined, ScriptError],
    ];
    for (const [code, options, errorClass] of cases) {
      const result = await sandbox.run(code, options);
      assert.equal(result.ok, false, code);
      if (result.ok) continue;
      assert.ok(result.error instanceof errorClass, `${code}: expected ${errorClass.name}, got ${result.error.name}: ${result.error.message}`);
      assert.ok(Array.isArray(result.logs));
      assert.equal(typeof result.stats.wallMs, "number");
    }
    assert.equal(await sandbox.eval("'alive'"), "alive");
  });

  test("eval options: filename shows in stacks; timeoutMs overrides the sandbox's", async () => {
    const error = await expectFailure(sandbox, "\nthrow new Error('where')", ScriptError, { filename: "job.js" });
    assert.equal(error.stack, "Error: where\n    at job.js:2:7");
    const timeout = await expectFailure(sandbox, "while (true) {}", TimeoutError, { timeoutMs: 150 });
    assert.match(timeout.message, /150 ms/);
    assert.equal(await sandbox.eval("'after timeout'"), "after timeout");
  });

  test("code must be a string", async () => {
    await assert.rejects(sandbox.run(42 as unknown as string), TypeError);
    await assert.rejects(sandbox.eval(undefined as unknown as string), TypeError);
  });
});

describe("invalid options", () => {
  const badSandboxOptions: Array<[string, Record<string, unknown>]> = [
    ["timeoutMs", { timeoutMs: 0 }],
    ["timeoutMs", { timeoutMs: "100" }],
    ["timeoutMs", { timeoutMs: 1.5 }],
    ["memoryMb", { memoryMb: 1 }],
    ["memoryMb", { memoryMb: "big" }],
    ["persistent", { persistent: "yes" }],
    ["globals", { globals: 5 }],
    ["carriers", { carriers: 0 }],
    ["carriers", { carriers: 100 }],
    ["maxResultBytes", { maxResultBytes: 1 }],
    ["maxLogBytes", { maxLogBytes: -1 }],
    ["maxTimers", { maxTimers: 1.5 }],
    ["maxSourceBytes", { maxSourceBytes: 0 }],
    ["onLog", { onLog: "print" }],
    ["bogus", { bogus: true }],
  ];
  for (const [name, options] of badSandboxOptions) {
    test(`Sandbox.create(${JSON.stringify(options)}) is a TypeError naming ${name}`, async () => {
      await assert.rejects(Sandbox.create(options as SandboxOptions), (error: unknown) => {
        assert.ok(error instanceof TypeError, `got ${String(error)}`);
        assert.ok(error.message.includes(name), `message names ${name}: ${error.message}`);
        return true;
      });
    });
  }

  test("options that are not an object", async () => {
    await assert.rejects(Sandbox.create("fast" as unknown as SandboxOptions), TypeError);
  });

  const badEvalOptions: Array<[string, Record<string, unknown>]> = [
    ["timeoutMs", { timeoutMs: -5 }],
    ["filename", { filename: "../etc/passwd" }],
    ["filename", { filename: "" }],
    ["language", { language: "python" }],
    ["globals", { globals: "x" }],
    ["onLog", { onLog: 1 }],
    ["zzz", { zzz: 1 }],
  ];
  test("eval and run with bad options are TypeErrors naming the option", async () => {
    await using sandbox = await Sandbox.create({ timeoutMs: LONG_TIMEOUT_MS });
    for (const [name, options] of badEvalOptions) {
      for (const call of [() => sandbox.eval("1", options as EvalOptions), () => sandbox.run("1", options as EvalOptions)]) {
        await assert.rejects(call(), (error: unknown) => {
          assert.ok(error instanceof TypeError, `${JSON.stringify(options)}: got ${String(error)}`);
          assert.ok(error.message.includes(name), `message names ${name}: ${error.message}`);
          return true;
        });
      }
    }
    assert.equal(await sandbox.eval("'still fine'"), "still fine");
  });
});

describe("closing", () => {
  test("a closed sandbox refuses evals with SandboxClosedError", async () => {
    const sandbox = await Sandbox.create();
    assert.equal(sandbox.isClosed, false);
    await sandbox.close();
    assert.equal(sandbox.isClosed, true);
    await assert.rejects(sandbox.eval("1"), SandboxClosedError);
    const result = await sandbox.run("1");
    assert.equal(result.ok, false);
    if (!result.ok) {
      assert.ok(result.error instanceof SandboxClosedError);
      assert.ok(result.error instanceof SandboxError);
    }
    await sandbox.close(); // idempotent
  });

  test("closing fails the evals that are running with SandboxClosedError", async () => {
    const sandbox = await Sandbox.create({ timeoutMs: 5_000 });
    const running = sandbox.eval("await new Promise((r) => setTimeout(r, 2_000)); 'finished'").then(
      (value) => ({ value }),
      (error: unknown) => ({ error }),
    );
    await new Promise((r) => setTimeout(r, 50));
    await sandbox.close();
    const outcome = await running;
    assert.ok("error" in outcome, `the eval finished with ${JSON.stringify(outcome)}`);
    assert.ok(outcome.error instanceof SandboxClosedError, `got ${String(outcome.error)}`);
  });

  test("await using closes the sandbox at the end of the block", async () => {
    let outer: Sandbox | undefined;
    {
      await using sandbox = await Sandbox.create();
      outer = sandbox;
      assert.equal(await sandbox.eval("6 * 7"), 42);
    }
    assert.equal(outer.isClosed, true);
    await assert.rejects(outer.eval("1"), SandboxClosedError);
  });

  test("close() resolves even when nothing else keeps the host's event loop alive", async () => {
    const script = [
      `import { Sandbox } from ${JSON.stringify(pathToFileURL(join(root, "dist/src/index.js")).href)};`,
      "const sandbox = await Sandbox.create();",
      "await sandbox.eval('1');",
      "await sandbox.close();",
      "console.log('closed');",
    ].join("\n");
    const { stdout, failure } = await new Promise<{ stdout: string; failure: string | undefined }>((resolve) => {
      // A new node process that starts carriers: slow on a busy machine; the timeout only catches a hang.
      execFile(process.execPath, ["--input-type=module", "-e", script], { timeout: 120_000 }, (error, out, err) =>
        resolve({ stdout: out, failure: error ? `exit ${String(error.code)}: ${err}` : undefined }));
    });
    assert.equal(failure, undefined);
    assert.equal(stdout.trim(), "closed");
  });
});

describe("error classes", () => {
  test("every exported error class extends SandboxError and has its own name", () => {
    const errors: Array<[SandboxError, string]> = [
      [new SandboxError("m"), "SandboxError"],
      [new ScriptError("m", { errorName: "TypeError" }), "ScriptError"],
      [new TimeoutError("m"), "TimeoutError"],
      [new MemoryLimitError("m"), "MemoryLimitError"],
      [new OutputLimitError("m"), "OutputLimitError"],
      [new ResourceLimitError("m"), "ResourceLimitError"],
      [new PolicyError("m"), "PolicyError"],
      [new CarrierCrashedError("m"), "CarrierCrashedError"],
      [new SandboxClosedError("m"), "SandboxClosedError"],
    ];
    for (const [error, name] of errors) {
      assert.ok(error instanceof SandboxError, name);
      assert.ok(error instanceof Error, name);
      assert.equal(error.name, name);
    }
  });

  test("errors from real evals are instances of the exported classes", async () => {
    await using sandbox = await Sandbox.create({ timeoutMs: LONG_TIMEOUT_MS, maxLogBytes: 10, maxTimers: 1 });
    await expectFailure(sandbox, "null.x", ScriptError);
    await expectFailure(sandbox, "while (true) {}", TimeoutError, { timeoutMs: 100 });
    await expectFailure(sandbox, "console.log('more than ten bytes')", OutputLimitError);
    await expectFailure(sandbox, "setTimeout(() => {}, 1000); setTimeout(() => {}, 1000)", ResourceLimitError);
    await expectFailure(sandbox, "import x from 'y'", PolicyError);
    const policy = await expectFailure(sandbox, "await fetch('https://example.com/')", PolicyError);
    assert.equal(policy.name, "PolicyError");
  });
});

describe("console capture", () => {
  test("sandbox onLog and eval onLog both receive every entry, in order", async () => {
    const sandboxSeen: LogEntry[] = [];
    const evalSeen: LogEntry[] = [];
    await using sandbox = await Sandbox.create({ onLog: (entry) => sandboxSeen.push(entry) });
    const result = await sandbox.run("console.log('one'); console.warn('two'); 3", { onLog: (entry) => evalSeen.push(entry) });
    assert.ok(result.ok);
    assert.deepEqual(evalSeen.map((e) => [e.level, e.message]), [["log", "one"], ["warn", "two"]]);
    assert.deepEqual(sandboxSeen, evalSeen);
    assert.deepEqual(result.logs, evalSeen);
    await sandbox.eval("console.error('three')");
    assert.deepEqual(sandboxSeen.map((e) => e.message), ["one", "two", "three"]);
  });
});

describe("limits named by options", () => {
  test("maxResultBytes", async () => {
    await using sandbox = await Sandbox.create({ maxResultBytes: 2048 });
    await expectFailure(sandbox, "['x'.repeat(5000)]", OutputLimitError);
    await expectFailure(sandbox, "new Uint8Array(4096)", OutputLimitError);
    assert.equal((await sandbox.eval<string>("'x'.repeat(1000)")).length, 1000);
  });

  test("maxResultBytes also applies to a plain string result", async () => {
    await using sandbox = await Sandbox.create({ maxResultBytes: 2048 });
    const result = await sandbox.run<string>("'x'.repeat(5000)");
    assert.equal(result.ok, false, `a 5000-byte string came back (${result.ok ? result.value.length : 0} chars) under maxResultBytes 2048`);
    if (!result.ok) assert.ok(result.error instanceof OutputLimitError, `got ${result.error.name}`);
  });

  test("maxLogBytes", async () => {
    await using sandbox = await Sandbox.create({ maxLogBytes: 100 });
    const error = await expectFailure(sandbox, "for (let i = 0; i < 20; i++) console.log('0123456789')", OutputLimitError);
    assert.match(error.message, /100 bytes/);
    const result = await sandbox.run("console.log('0123456789'); 1");
    assert.ok(result.ok, "output under the limit is fine");
  });

  test("maxTimers", async () => {
    await using sandbox = await Sandbox.create({ maxTimers: 3 });
    await expectFailure(sandbox, "for (let i = 0; i < 5; i++) setTimeout(() => {}, 1000)", ResourceLimitError);
    assert.equal(await sandbox.eval("for (let i = 0; i < 3; i++) setTimeout(() => {}, 1000); 'three is fine'"), "three is fine");
  });

  test("maxSourceBytes", async () => {
    await using sandbox = await Sandbox.create({ maxSourceBytes: 64 });
    const error = await expectFailure(sandbox, `'${"y".repeat(100)}'`, ResourceLimitError);
    assert.match(error.message, /limit is 64 bytes/);
    assert.equal(await sandbox.eval("'short'"), "short");
  });

  test("timeoutMs of the sandbox", async () => {
    await using sandbox = await Sandbox.create({ timeoutMs: 150 });
    const started = Date.now();
    await expectFailure(sandbox, "while (true) {}", TimeoutError);
    assert.ok(Date.now() - started < 150 + SLACK_MS);
    await expectFailure(sandbox, "await new Promise((r) => setTimeout(r, 5_000))", TimeoutError);
    // A carrier killed at its limit is replaced, and the eval that waits for the new one's start
    // needs more than 150 ms on a busy machine.
    assert.equal(await sandbox.eval("1", { timeoutMs: LONG_TIMEOUT_MS }), 1);
  });
});

describe("several carriers", () => {
  test("carriers: 2 gives correct, isolated results for concurrent evals", async () => {
    await using sandbox = await Sandbox.create({ carriers: 2, timeoutMs: 5_000 });
    const results = await Promise.all(
      Array.from({ length: 12 }, (_, i) => sandbox.run(`await new Promise((r) => setTimeout(r, ${(12 - i) * 2}));\nglobalThis.k = (globalThis.k ?? 0) + 1;\nconsole.log('eval ${i}');\n[${i}, k]`)),
    );
    results.forEach((result, i) => {
      assert.ok(result.ok, result.ok ? "" : result.error.message);
      assert.deepEqual(result.value, [i, 1]);
      assert.deepEqual(result.logs.map((entry) => entry.message), [`eval ${i}`]);
    });
  });

  test("carriers: 2 spreads concurrent evals over both carriers", async () => {
    await using sandbox = await Sandbox.create({ carriers: 2, timeoutMs: 5_000 });
    // performance.timeOrigin is the carrier process's start: it tells the carriers apart.
    const origins = await Promise.all(Array.from({ length: 8 }, () => sandbox.eval<number>("await new Promise((r) => setTimeout(r, 30)); performance.timeOrigin")));
    assert.equal(new Set(origins).size, 2, `8 concurrent evals ran on ${new Set(origins).size} carrier(s)`);
  });
});
