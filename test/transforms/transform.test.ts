/**
 * Transforms on real carriers: a function compiled once, called on every message; ordering,
 * dropping, versions, state, isolation, and one bad message never stopping the others.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Transform, ScriptError, TimeoutError, SandboxClosedError, type TransformOptions, type TransformResult, type TransformJsonResult, type TransformLog } from "../../src/index.js";

const FLAG = `export default (msg) => msg.amount > 100 ? { ...msg, flagged: true } : undefined`;

async function withTransform<T>(options: TransformOptions, body: (transform: Transform) => Promise<T>): Promise<T> {
  const transform = await Transform.create(options);
  try {
    return await body(transform);
  } finally {
    await transform.close();
  }
}

function failed<R extends TransformResult | TransformJsonResult>(result: R | undefined): Extract<R, { ok: false }> {
  if (!result || result.ok) assert.fail(`expected a failed message, got ${JSON.stringify(result)}`);
  return result as Extract<R, { ok: false }>;
}

describe("transforms", () => {
  test("call, callMany: results in order, undefined dropped as undefined, version and index on each", () =>
    withTransform({ code: FLAG }, async (transform) => {
      assert.deepEqual(await transform.call({ amount: 150 }), { amount: 150, flagged: true });
      assert.equal(await transform.call({ amount: 5 }), undefined);
      const messages = Array.from({ length: 2500 }, (_, i) => ({ amount: i % 200, i }));
      const results = await transform.callMany(messages);
      assert.equal(results.length, 2500);
      results.forEach((result, i) => {
        assert.equal(result.index, i);
        assert.equal(result.version, 1);
        assert.ok(result.ok);
        assert.deepEqual(result.value, i % 200 > 100 ? { amount: i % 200, i, flagged: true } : undefined);
      });
      const stats = transform.stats();
      assert.equal(stats.messagesIn, 2502);
      assert.equal(stats.messagesOut, 1 + messages.filter((m) => m.amount > 100).length);
      assert.equal(stats.dropped, 2502 - stats.messagesOut);
      assert.ok(stats.batches >= 4);
      assert.ok(stats.p50Us > 0 && stats.p99Us >= stats.p50Us);
    }));

  test("TypeScript, module state that persists across messages, and errors located in the user's source", () =>
    withTransform({ code: `let seen: number = 0;\ninterface M { n: number }\nexport default function count(m: M): number {\n  seen++;\n  if (m.n < 0) throw new RangeError("negative: " + m.n);\n  return seen * 100 + m.n;\n}\n`, filename: "count.ts" }, async (transform) => {
      const results = await transform.callMany([{ n: 1 }, { n: -1 }, { n: 2 }]);
      assert.deepEqual(results.map((r) => (r.ok ? r.value : null)), [101, null, 302]);
      const bad = failed(results[1]);
      assert.equal(bad.error.name, "RangeError");
      assert.equal(bad.error.message, "negative: -1");
      assert.equal(bad.error.line, 5);
      assert.match(bad.error.stack!, /at count \(count\.ts:5:/);
      assert.deepEqual(bad.input, { n: -1 });
      assert.equal(bad.index, 1);
      const error = await transform.call({ n: -5 }).catch((e: unknown) => e);
      assert.ok(error instanceof ScriptError);
      assert.equal(error.errorName, "RangeError");
    }));

  test("code that does not compile, or whose default export is not a function, fails create with a located error", async () => {
    const syntax = await Transform.create({ code: "export default (m) => {\n  return m +;\n}" }).catch((e: unknown) => e);
    assert.ok(syntax instanceof ScriptError);
    assert.equal(syntax.errorName, "SyntaxError");
    assert.equal(syntax.line, 2);
    const notFunction = await Transform.create({ code: "export default 42" }).catch((e: unknown) => e);
    assert.ok(notFunction instanceof ScriptError);
    assert.match(notFunction.message, /must `export default` a function/);
    await assert.rejects(Transform.create({ code: FLAG, timeoutMsPerMessag: 5 } as unknown as TransformOptions), /timeoutMsPerMessag/);
  });

  test("one throwing and one looping message at the start, middle and end of 10,000: exactly those fail", () =>
    withTransform({ code: `export default (m) => { if (m.bad === "throw") throw new TypeError("bad " + m.i); if (m.bad === "loop") { for (;;) {} } return m.i * 2; }`, timeoutMsPerMessage: 100 }, async (transform) => {
      const bad = new Map<number, string>([[0, "throw"], [1, "loop"], [5000, "throw"], [5001, "loop"], [9998, "loop"], [9999, "throw"]]);
      const messages = Array.from({ length: 10_000 }, (_, i) => ({ i, bad: bad.get(i) }));
      const results = await transform.callMany(messages);
      results.forEach((result, i) => {
        const kind = bad.get(i);
        if (!kind) return assert.deepEqual(result, { ok: true, value: i * 2, index: i, version: 1 });
        const failure = failed(result);
        assert.equal(failure.error.name, kind === "throw" ? "TypeError" : "TimeoutError", `message ${i}`);
        assert.deepEqual(failure.input, messages[i]);
      });
      assert.deepEqual(transform.stats().failed, { TypeError: 3, TimeoutError: 3 });
      assert.equal(transform.stats().carrierRestarts, 0, "a synchronous loop is stopped without killing the carrier");
    }));

  test("a message that blows the memory limit at the start, middle and end of 10,000 fails alone; the carrier is replaced and the rest get their real results", () =>
    withTransform({ code: `const state = []; export default (m) => { if (m.bomb) { const a = []; for (;;) a.push(new Array(100000).fill(m.i)); } state.push(m.i); return m.i + 1; }`, memoryMb: 64, timeoutMsPerMessage: 20_000, batchSize: 10_000 }, async (transform) => {
      const bombs = new Set([0, 5000, 9999]);
      const messages = Array.from({ length: 10_000 }, (_, i) => ({ i, bomb: bombs.has(i) }));
      const results = await transform.callMany(messages);
      results.forEach((result, i) => {
        if (!bombs.has(i)) return assert.deepEqual(result, { ok: true, value: i + 1, index: i, version: 1 }, `message ${i}`);
        assert.equal(failed(result).error.name, "MemoryLimitError", `message ${i}`);
      });
      // Each bomb costs one death at full speed and one in the careful replay that names it; a
      // loaded machine can add a death (the memory watch may catch a replay's carrier first), so
      // the count is bounded rather than exact: what must hold exactly is the results above.
      const restarts = transform.stats().carrierRestarts;
      assert.ok(restarts >= 3 && restarts <= 12, `carrier restarts: ${restarts}`);
      assert.deepEqual(await transform.call({ i: 7 }), 8, "the transform goes on");
    }));

  test("an asynchronous message that never yields is found and fails alone", () =>
    withTransform({ code: `export default async (m) => { if (m.spin) { for (;;) await null; } return m.i; }`, timeoutMsPerMessage: 100 }, async (transform) => {
      const results = await transform.callMany([{ i: 0 }, { i: 1, spin: true }, { i: 2 }]);
      assert.deepEqual(results[0], { ok: true, value: 0, index: 0, version: 1 });
      assert.equal(failed(results[1]).error.name, "TimeoutError");
      assert.deepEqual(results[2], { ok: true, value: 2, index: 2, version: 1 });
    }));

  test("results that cannot leave: functions, cycles, BigInts, oversized; messages JSON cannot carry", () =>
    withTransform({ code: `export default (m) => { switch (m.kind) { case "fn": return () => 1; case "cycle": { const o = {}; o.o = o; return o; } case "big": return 10n; case "huge": return "x".repeat(2000000); default: return m; } }`, maxResultBytes: 1024 * 1024 }, async (transform) => {
      const results = await transform.callMany([{ kind: "fn" }, { kind: "cycle" }, { kind: "big" }, { kind: "huge" }, { kind: "ok" }, undefined, 10n]);
      assert.equal(failed(results[0]).error.name, "TypeError");
      assert.match(failed(results[1]).error.message, /cannot be encoded as JSON.*circular/i);
      assert.match(failed(results[2]).error.message, /BigInt/);
      assert.equal(failed(results[3]).error.name, "OutputLimitError");
      assert.deepEqual(results[4], { ok: true, value: { kind: "ok" }, index: 4, version: 1 });
      assert.match(failed(results[5]).error.message, /message 5 cannot be sent/);
      assert.match(failed(results[6]).error.message, /message 6 cannot be sent.*BigInt/);
    }));

  test("logs are per message; a flood of logs fails only the message that floods", async () => {
    const logs: TransformLog[] = [];
    await withTransform({ code: `export default (m) => { if (m.flood) for (;;) console.log("spam ".repeat(100)); console.log("message", m.i); return m.i; }`, maxLogBytes: 4096, onLog: (entry) => logs.push(entry) }, async (transform) => {
      const results = await transform.callMany([{ i: 0 }, { i: 1, flood: true }, { i: 2 }]);
      assert.deepEqual(results.map((r) => r.ok), [true, false, true]);
      assert.equal(failed(results[1]).error.name, "OutputLimitError");
      const quiet = logs.filter((entry) => !entry.message.startsWith("spam"));
      assert.deepEqual(quiet.map((entry) => [entry.index, entry.message]), [[0, "message 0"], [2, "message 2"]]);
      assert.ok(logs.every((entry) => entry.index !== 1 || entry.message.startsWith("spam")));
    });
  });

  test("code that poisons its globals and prototypes does not corrupt how messages and results cross", () =>
    withTransform({ code: `JSON.parse = () => "poisoned"; JSON.stringify = () => "poisoned"; Array.prototype.push = () => 0; Array.prototype.join = () => "poisoned"; Object.defineProperty(Object.prototype, "amount", { set() { throw new Error("setter ran"); }, configurable: true }); String.prototype.split = () => []; export default (m) => ({ amount: m.amount, list: [1, 2] });` }, async (transform) => {
      const results = await transform.callMany([{ amount: 1 }, { amount: 2 }]);
      assert.deepEqual(results.map((r) => (r.ok ? r.value : r.error)), [{ amount: 1, list: [1, 2] }, { amount: 2, list: [1, 2] }]);
    }));

  test("two transforms never share state", async () => {
    await withTransform({ code: `globalThis.owner ??= "a"; export default () => globalThis.owner + ":" + (globalThis.count = (globalThis.count ?? 0) + 1)` }, async (a) => {
      await withTransform({ code: `export default () => String(globalThis.owner) + ":" + String(globalThis.count)` }, async (b) => {
        assert.equal(await a.call(1), "a:1");
        assert.equal(await a.call(1), "a:2");
        assert.equal(await b.call(1), "undefined:undefined");
      });
    });
  });

  test("update() mid-stream: every message runs once, in order, old version before new", () =>
    withTransform({ code: `export default (m) => ({ v: 1, i: m })`, carriers: 2, batchSize: 500 }, async (transform) => {
      const seen: number[] = [];
      const versions: number[] = [];
      let updated: Promise<void> | undefined;
      for await (const result of transform.stream(Array.from({ length: 20_000 }, (_, i) => i))) {
        assert.ok(result.ok);
        seen.push(result.index);
        versions.push(result.version);
        assert.deepEqual(result.value, { v: result.version, i: result.index });
        if (result.index === 5000) updated = transform.update(`export default (m) => ({ v: 2, i: m })`);
      }
      await updated;
      assert.deepEqual(seen, Array.from({ length: 20_000 }, (_, i) => i));
      const firstNew = versions.indexOf(2);
      assert.ok(firstNew > 5000, "batches already running finish with the old version");
      assert.ok(versions.slice(firstNew).every((v) => v === 2) && versions.slice(0, firstNew).every((v) => v === 1));
      assert.deepEqual(await transform.call(7), { v: 2, i: 7 });
      await assert.rejects(transform.update("export default ("), ScriptError);
      assert.deepEqual(await transform.call(8), { v: 2, i: 8 }, "a failed update changes nothing");
    }));

  test("a long batch holds up neither the batch queued behind it nor an update compiling on the same carrier", () =>
    withTransform({ code: `export default (m) => { const until = performance.now() + 3; while (performance.now() < until); return m; }`, timeoutMsPerMessage: 100, initTimeoutMs: 300, batchSize: 150, maxInFlight: 2 }, async (transform) => {
      // Each batch takes ~450 ms, far more than one message's limit (and than the host waits in
      // silence for a carrier: 1.5 × 100 ms + grace); the second waits behind the first.
      const running = transform.callMany(Array.from({ length: 300 }, (_, i) => i));
      await new Promise((resolve) => setTimeout(resolve, 50));
      await transform.update(`export default (m) => -m`);
      const results = await running;
      assert.deepEqual(results.map((r) => (r.ok ? r.value : r.error.name)), Array.from({ length: 300 }, (_, i) => i));
      assert.equal(transform.stats().carrierRestarts, 0);
      assert.equal(await transform.call(5), -5);
    }));

  test("a message that dies takes no innocent message of the batch queued behind it down with it", () =>
    withTransform({ code: `export default (m) => { if (m.bomb) { const a = []; for (;;) a.push(new Array(100000).fill(1)); } return m.i; }`, memoryMb: 64, timeoutMsPerMessage: 20_000, batchSize: 5, maxInFlight: 2 }, async (transform) => {
      const results = await transform.callMany(Array.from({ length: 10 }, (_, i) => ({ i, bomb: i === 2 })));
      assert.deepEqual(results.map((r) => (r.ok ? r.value : r.error.name)), [0, 1, "MemoryLimitError", 3, 4, 5, 6, 7, 8, 9]);
    }));

  test("an async message that logs, then waits: its logs arrive with it, and nothing is killed", async () => {
    const logs: TransformLog[] = [];
    await withTransform({ code: `export default async (m) => { console.log("got", m); await new Promise((r) => setTimeout(r, 80)); return m; }`, onLog: (entry) => logs.push(entry) }, async (transform) => {
      assert.deepEqual((await transform.callMany([0, 1, 2])).map((r) => r.ok && r.value), [0, 1, 2]);
      assert.deepEqual(logs.map((entry) => [entry.index, entry.message]), [[0, "got 0"], [1, "got 1"], [2, "got 2"]]);
      assert.equal(transform.stats().carrierRestarts, 0);
    });
  });

  test("work a message leaves running ends with it: its timers neither fire during the next message nor count against it", () =>
    withTransform({ code: `export default (m) => { if (m === 0) setTimeout(() => { for (;;) {} }, 0); setTimeout(() => {}, 60000); return m; }`, maxTimers: 3, timeoutMsPerMessage: 200 }, async (transform) => {
      const results = await transform.callMany(Array.from({ length: 10 }, (_, i) => i));
      assert.deepEqual(results.map((r) => (r.ok ? r.value : r.error.name)), Array.from({ length: 10 }, (_, i) => i));
      assert.equal(transform.stats().carrierRestarts, 0);
    }));

  test("user code cannot drive the batch machinery: the entry point, a promise's own then", () =>
    withTransform({
      code: `const calls = {};
export default (m) => {
  calls[m.i] = (calls[m.i] ?? 0) + 1;
  if (m.kind === "entry" && calls[m.i] === 1) return (async () => { await 0; $paddock$batch(); return "entry"; })();
  if (m.kind === "then") { const p = Promise.resolve("then"); p.then = () => undefined; return p; }
  if (m.kind === "loop") { const p = Promise.resolve("loop"); p.then = () => { for (;;) {} }; return p; }
  return m.i + ":" + calls[m.i];
};`,
      timeoutMsPerMessage: 200,
    }, async (transform) => {
      const results = await transform.callMany([{ i: 0, kind: "entry" }, { i: 1 }, { i: 2, kind: "then" }, { i: 3, kind: "loop" }, { i: 4 }]);
      assert.deepEqual(results.map((r) => (r.ok ? r.value : r.error.name)), ["entry", "1:1", "then", "loop", "4:1"]);
      assert.equal(transform.stats().carrierRestarts, 0);
    }));

  test("stream(): bad options are refused; a source's error comes after the results already made; break returns at once from an idle source", async () =>
    withTransform({ code: `export default (m) => m * 2` }, async (transform) => {
      for (const options of [{ batchSize: 0 }, { maxInFlight: 0 }, { batchSize: 1.5 }, { lingerMs: -1 }, { batch: 10 }]) {
        await assert.rejects(async () => {
          for await (const _ of transform.stream([1], options as never)) void _;
        }, TypeError);
      }
      async function* breaking(): AsyncGenerator<number> {
        yield 1;
        yield 2;
        yield 3;
        throw new Error("source broke");
      }
      const seen: unknown[] = [];
      await assert.rejects(async () => {
        for await (const result of transform.stream(breaking(), { batchSize: 3 })) seen.push(result.ok && result.value);
      }, /source broke/);
      assert.deepEqual(seen, [2, 4, 6]);
      async function* idle(): AsyncGenerator<number> {
        yield 1;
        await new Promise((resolve) => setTimeout(resolve, 60_000).unref());
      }
      const started = performance.now();
      for await (const result of transform.stream(idle(), { lingerMs: 1 })) {
        assert.equal(result.ok && result.value, 2);
        break;
      }
      assert.ok(performance.now() - started < 30_000, "break does not wait for the source's next message");
    }));

  test("callManyJson splits large inputs into batches", () =>
    withTransform({ code: `export default (m) => m + 1`, batchSize: 100 }, async (transform) => {
      const results = await transform.callManyJson(Array.from({ length: 1050 }, (_, i) => String(i)));
      assert.deepEqual(results.map((r) => r.ok && r.json), Array.from({ length: 1050 }, (_, i) => String(i + 1)));
      assert.deepEqual(results.map((r) => r.index), Array.from({ length: 1050 }, (_, i) => i));
      assert.ok(transform.stats().batches >= 11);
    }));

  test("an update whose module takes far longer than a message's limit, while batches run, fails nothing", () =>
    withTransform({ code: `export default (m) => m`, timeoutMsPerMessage: 100, initTimeoutMs: 5000, batchSize: 50 }, async (transform) => {
      const slowModule = `const until = performance.now() + 600; while (performance.now() < until); export default (m) => -m;`;
      let updated: Promise<void> | undefined;
      const seen: unknown[] = [];
      for await (const result of transform.stream(Array.from({ length: 3000 }, (_, i) => i + 1))) {
        seen.push(result.ok ? Math.abs(result.value as number) : result.error.name);
        if (result.index === 100) updated = transform.update(slowModule);
      }
      await updated;
      assert.deepEqual(seen, Array.from({ length: 3000 }, (_, i) => i + 1));
      assert.equal(transform.stats().carrierRestarts, 0);
      assert.equal(await transform.call(4), -4);
    }));

  test("work a message leaves on the microtask queue cannot log or fail in a later message's name", async () => {
    const logs: TransformLog[] = [];
    await withTransform({ code: `export default (m) => { if (m === 0) { Promise.resolve().then(() => console.log("x".repeat(700))); queueMicrotask(() => { throw new Error("left behind"); }); } console.log("message " + m); return m; }`, maxLogBytes: 1024, onLog: (entry) => logs.push(entry) }, async (transform) => {
      const results = await transform.callMany([0, 1, 2]);
      assert.deepEqual(results.map((r) => (r.ok ? r.value : r.error.message)), [0, 1, 2]);
      assert.deepEqual(logs.map((entry) => [entry.index, entry.message]), [[0, "message 0"], [1, "message 1"], [2, "message 2"]]);
    });
  });

  test("a message that is not JSON and slower to parse than its limit fails alone", () =>
    withTransform({ code: `export default (m) => m`, timeoutMsPerMessage: 20 }, async (transform) => {
      const results = await transform.callManyJson(["1", "[" + "1,".repeat(4_000_000) + "x]", "3"]);
      assert.ok(!results[1]!.ok && ["TimeoutError", "TypeError"].includes(results[1]!.error.name));
      // (A 20 ms limit is what makes the parse outlast it; on a loaded machine even "1" may take
      // longer than that, so the neighbours are only checked to be theirs.)
      for (const i of [0, 2]) {
        const result = results[i]!;
        assert.ok(result.ok ? result.json === String(i + 1) : result.error.name === "TimeoutError", JSON.stringify(result));
      }
      assert.equal(transform.stats().carrierRestarts, 0);
    }));

  test("close() while messages run: the calls reject with SandboxClosedError, at once", async () => {
    const transform = await Transform.create({ code: `export default (m) => { const until = performance.now() + 5; while (performance.now() < until); return m; }` });
    const running = transform.callMany(Array.from({ length: 5000 }, (_, i) => i)).then(() => "resolved", (error: unknown) => error);
    await new Promise((resolve) => setTimeout(resolve, 100));
    const started = performance.now();
    await transform.close();
    assert.ok((await running) instanceof SandboxClosedError);
    await assert.rejects(transform.call(1), SandboxClosedError);
    assert.ok(performance.now() - started < 10_000);
  });

  test("a message too large for the carrier's memory fails alone, not the messages sent with it", () =>
    withTransform({ code: `export default (m) => typeof m === "string" ? m.length : m`, memoryMb: 64 }, async (transform) => {
      const results = await transform.callMany([1, "x".repeat(60_000_000), 3]);
      assert.deepEqual(results[0], { ok: true, value: 1, index: 0, version: 1 });
      assert.equal(failed(results[1]).error.name, "MemoryLimitError");
      assert.deepEqual(results[2], { ok: true, value: 3, index: 2, version: 1 });
    }));

  test("stream() holds at most maxInFlight batches: a slow consumer slows the reading of a 1,000,000-message source", () =>
    withTransform({ code: `export default (m) => m % 3 === 0 ? undefined : { n: m }`, carriers: 2 }, async (transform) => {
      let pulled = 0;
      function* source(): Generator<number> {
        for (let i = 0; i < 1_000_000; i++) {
          pulled++;
          yield i;
        }
      }
      let consumed = 0;
      let maxAhead = 0;
      const rssBefore = process.memoryUsage().rss;
      for await (const result of transform.stream(source(), { batchSize: 1000, maxInFlight: 3 })) {
        assert.equal(result.index, consumed);
        consumed++;
        maxAhead = Math.max(maxAhead, pulled - consumed);
        if (consumed % 50_000 === 0) await new Promise((resolve) => setTimeout(resolve, 5));
      }
      assert.equal(consumed, 1_000_000);
      assert.ok(maxAhead <= 3 * 1000, `read ${maxAhead} messages ahead of the consumer`);
      assert.ok(process.memoryUsage().rss - rssBefore < 200 * 1024 * 1024, "host memory stays bounded");
      const stats = transform.stats();
      assert.equal(stats.messagesIn, 1_000_000);
      assert.equal(stats.dropped, 333_334);
    }));

  test("an async source is batched as it comes: a partial batch goes after lingerMs", () =>
    withTransform({ code: `export default (m) => m * 2` }, async (transform) => {
      async function* trickle(): AsyncGenerator<number> {
        for (let i = 0; i < 5; i++) {
          yield i;
          await new Promise((resolve) => setTimeout(resolve, 30));
        }
      }
      const values: unknown[] = [];
      for await (const result of transform.stream(trickle(), { batchSize: 1000, lingerMs: 1 })) values.push(result.ok && result.value);
      assert.deepEqual(values, [0, 2, 4, 6, 8]);
      assert.ok(transform.stats().batches >= 3, "a slow source does not wait for a full batch");
    }));

  test("callManyJson and streamJson hand JSON texts through without parsing them on the host", () =>
    withTransform({ code: FLAG }, async (transform) => {
      const results = await transform.callManyJson(['{"amount":500}', '{"amount":1}', "not json", '{"amount":101}\n{"amount":102}']);
      assert.deepEqual(results[0], { ok: true, json: '{"amount":500,"flagged":true}', index: 0, version: 1 });
      assert.deepEqual(results[1], { ok: true, json: undefined, index: 1, version: 1 });
      assert.match(failed(results[2]).error.message, /not JSON/);
      assert.equal(failed(results[2]).input, "not json");
      assert.match(failed(results[3]).error.message, /not a line of JSON/);
      const streamed: unknown[] = [];
      for await (const result of transform.streamJson(['{"amount":200}'])) streamed.push(result);
      assert.deepEqual(streamed, [{ ok: true, json: '{"amount":200,"flagged":true}', index: 0, version: 1 }]);
    }));

  test("preview: each sample's value or error with its logs and time, optionally for code not yet swapped in", () =>
    withTransform({ code: `export default (m) => { console.log("saw", m); return m + 1; }` }, async (transform) => {
      const [one, two] = await transform.preview([1, 2]);
      assert.deepEqual({ ...one, ms: 0 }, { ok: true, value: 2, logs: [{ level: "log", message: "saw 1" }], ms: 0 });
      assert.ok(typeof two!.ms === "number" && two!.ms >= 0);
      const draft = await transform.preview([1, "x"], { code: `export default (m: number) => { if (typeof m !== "number") throw new TypeError("not a number"); return m * 10; }` });
      assert.deepEqual(draft[0]!.value, 10);
      assert.equal(draft[1]!.ok, false);
      assert.equal(draft[1]!.error!.name, "TypeError");
      assert.equal(await transform.call(1), 2, "the live function is unchanged");
      assert.equal(transform.stats().messagesIn, 1, "previews are not counted");
    }));

  test("async functions, and host tools called from a transform", () =>
    withTransform({
      code: `export default async (m) => ({ ...m, region: await tools.region({ city: m.city }) })`,
      tools: { region: { inputSchema: { type: "object", properties: { city: { type: "string" } }, required: ["city"] }, execute: (input: { city: string }) => (input.city === "Oslo" ? "eu" : "other") } },
    }, async (transform) => {
      const results = await transform.callMany([{ city: "Oslo" }, { city: 3 }, { city: "Lima" }]);
      assert.deepEqual(results[0], { ok: true, value: { city: "Oslo", region: "eu" }, index: 0, version: 1 });
      assert.equal(failed(results[1]).error.name, "TypeError", "the tool's schema refused the input");
      assert.deepEqual(results[2], { ok: true, value: { city: "Lima", region: "other" }, index: 2, version: 1 });
    }));

  test("a message over timeoutMsPerMessage while awaiting fails with a TimeoutError, the rest go on", () =>
    withTransform({ code: `export default (m) => m.wait ? new Promise(() => {}) : m.i`, timeoutMsPerMessage: 100 }, async (transform) => {
      const results = await transform.callMany([{ i: 0 }, { i: 1, wait: true }, { i: 2 }]);
      assert.deepEqual(results.map((r) => r.ok), [true, false, true]);
      const error = await transform.call({ wait: true }).catch((e: unknown) => e);
      assert.ok(error instanceof TimeoutError);
    }));
});

describe("paddock transform", () => {
  const root = fileURLToPath(new URL("../../../", import.meta.url));
  test("NDJSON in, results out, dead letters to --errors; null and undefined dropped", async () => {
    const dir = mkdtempSync(join(tmpdir(), "paddock-transform-test-"));
    try {
      const fn = join(dir, "fn.ts");
      writeFileSync(fn, `export default (m: { n: number }) => m.n < 0 ? (() => { throw new Error("negative " + m.n); })() : m.n === 0 ? null : m.n % 2 ? { odd: m.n } : undefined;\n`);
      const input = ['{"n":1}', '{"n":2}', "", '{"n":0}', "oops", '{"n":-4}', '{"n":3}'].join("\n") + "\n";
      const errorsFile = join(dir, "errors.ndjson");
      const result = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
        const child = execFile(process.execPath, [join(root, "bin", "paddock.js"), "transform", fn, "--errors", errorsFile, "--batch", "2"], { cwd: root, timeout: 120_000 }, (error, stdout, stderr) => {
          resolve({ code: error ? (typeof error.code === "number" ? error.code : -1) : 0, stdout, stderr });
        });
        child.stdin!.end(input);
      });
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stdout, '{"odd":1}\n{"odd":3}\n');
      const letters = readFileSync(errorsFile, "utf8").trim().split("\n").map((line) => JSON.parse(line) as { index: number; input: unknown; error: { name: string; message: string } });
      assert.deepEqual(letters.map((letter) => [letter.index, letter.input, letter.error.name]), [[3, "oops", "TypeError"], [4, { n: -4 }, "Error"]]);
      assert.match(letters[1]!.error.message, /negative -4/);
      assert.match(result.stderr, /2 failed/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
