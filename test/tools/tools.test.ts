/**
 * Host tools: functions of the host that sandboxed code calls as `tools.<name>(input)`, on real
 * carriers. Inputs are checked against their schemas on the host, results come back as the realm's
 * own values, failures are errors the code can catch, and every limit ends in a typed error.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { z } from "zod";
import {
  Sandbox, tool, toolDeclarations, ResourceLimitError, ScriptError, TimeoutError, type ToolCallRecord, type ToolTree,
} from "../../src/index.js";
import { withSandbox, errorOf } from "../helpers.js";

const weather: ToolTree = {
  getWeather: {
    description: "Current weather for a city",
    inputSchema: {
      type: "object",
      properties: { city: { type: "string" }, units: { enum: ["c", "f"] } },
      required: ["city"],
      additionalProperties: false,
    },
    outputSchema: { type: "object", properties: { tempC: { type: "number" } }, required: ["tempC"] },
    execute: async (input: { city: string }) => ({ tempC: input.city.length }),
  },
};

/** A promise and the function that settles it, for handlers that wait on the test. */
function signalled<T = void>(): { promise: Promise<T>; settle: (value: T) => void } {
  let settle!: (value: T) => void;
  const promise = new Promise<T>((resolve) => (settle = resolve));
  return { promise, settle };
}

describe("calling host tools", () => {
  test("a tool's result comes back as the realm's own value", () =>
    withSandbox({ tools: weather }, async (sandbox) => {
      assert.equal(await sandbox.eval(`const w = await tools.getWeather({ city: "Oslo" }); w.tempC`), 4);
      // The result is the realm's: its prototypes are the realm's Object and Promise.
      assert.deepEqual(await sandbox.eval(`const p = tools.getWeather({ city: "Oslo" }); const w = await p; [p instanceof Promise, w.constructor === Object, Object.keys(w)]`), [true, true, ["tempC"]]);
    }));

  test("nested namespaces, null-prototype and frozen", () =>
    withSandbox({ tools: { github: { issues: { create: { execute: (input: { title: string }) => ({ id: 7, title: input.title }) } } } } }, async (sandbox) => {
      assert.deepEqual(await sandbox.eval(`await tools.github.issues.create({ title: "bug" })`), { id: 7, title: "bug" });
      assert.deepEqual(
        await sandbox.eval(`[Object.getPrototypeOf(tools), Object.isFrozen(tools), Object.isFrozen(tools.github), Object.keys(tools.github), typeof tools.github.issues.create, tools.github.issues.create.name]`),
        [null, true, true, ["issues"], "function", "create"],
      );
      // Code cannot swap a tool out from under other code of the same eval.
      assert.equal(await sandbox.eval(`"use strict"; try { tools.github = 1; "assigned" } catch (e) { e instanceof TypeError }`), true);
    }));

  test("structured values cross both ways: Map, Date, typed arrays, undefined", () =>
    withSandbox(
      {
        tools: {
          roundTrip: { execute: (input: unknown) => input },
          nothing: { execute: () => undefined },
        },
      },
      async (sandbox) => {
        const value = await sandbox.eval(`
          const r = await tools.roundTrip({ m: new Map([[1, "a"]]), d: new Date(5), b: new Uint8Array([1, 2]), n: null });
          [r.m instanceof Map, r.m.get(1), r.d instanceof Date, r.d.getTime(), r.b instanceof Uint8Array, [...r.b], r.n, await tools.nothing()]`);
        assert.deepEqual(value, [true, "a", true, 5, true, [1, 2], null, undefined]);
      },
    ));

  test("a tool without an input schema takes any value, or none", () =>
    withSandbox({ tools: { count: { execute: (input: unknown) => (input === undefined ? "none" : typeof input) } } }, async (sandbox) => {
      assert.deepEqual(await sandbox.eval(`[await tools.count(), await tools.count(3), await tools.count("x")]`), ["none", "number", "string"]);
    }));

  test("the handler gets its signal, its name and the sandbox", async () => {
    let seen: { tool: string; aborted: boolean; same: boolean } | undefined;
    const sandbox: Sandbox = await Sandbox.create({
      tools: { ns: { probe: { execute: (_input: unknown, context) => void (seen = { tool: context.tool, aborted: context.signal.aborted, same: context.sandbox === sandbox }) } } },
    });
    try {
      await sandbox.eval(`await tools.ns.probe()`);
      assert.deepEqual(seen, { tool: "ns.probe", aborted: false, same: true });
    } finally {
      await sandbox.close();
    }
  });

  test("a persistent sandbox keeps its variables between evals that call tools", () =>
    withSandbox({ persistent: true, tools: weather }, async (sandbox) => {
      await sandbox.eval(`var total = 0`);
      await sandbox.eval(`total += (await tools.getWeather({ city: "Oslo" })).tempC`);
      await sandbox.eval(`total += (await tools.getWeather({ city: "Rome" })).tempC`);
      assert.equal(await sandbox.eval(`total`), 8);
    }));

  test("a sandbox without tools has no `tools` global", () =>
    withSandbox({}, async (sandbox) => {
      assert.deepEqual(await sandbox.eval(`[typeof tools, typeof ToolError]`), ["undefined", "undefined"]);
    }));

  test("tools named like Object.prototype members are tools like any other", () =>
    withSandbox(
      {
        tools: {
          constructor: { execute: () => "constructor" },
          toString: { execute: () => "toString" },
          hasOwnProperty: { execute: () => "hasOwnProperty" },
          ["__proto__"]: { execute: () => "__proto__" },
        } as ToolTree,
      },
      async (sandbox) => {
        assert.deepEqual(
          await sandbox.eval(`[await tools.constructor(), await tools.toString(), await tools.hasOwnProperty(), await tools.__proto__(), Object.getPrototypeOf(tools)]`),
          ["constructor", "toString", "hasOwnProperty", "__proto__", null],
        );
      },
    ));

  test("several carriers each get the tools", () =>
    withSandbox({ carriers: 2, tools: weather }, async (sandbox) => {
      const values = await Promise.all(Array.from({ length: 6 }, (_, i) => sandbox.eval(`(await tools.getWeather({ city: "x".repeat(${i}) })).tempC`)));
      assert.deepEqual(values, [0, 1, 2, 3, 4, 5]);
    }));
});

describe("input checks", () => {
  test("JSON Schema: each problem named by its path, with what was given", () =>
    withSandbox({ tools: weather }, async (sandbox) => {
      const message = async (input: string) =>
        sandbox.eval(`try { await tools.getWeather(${input}); "accepted" } catch (e) { (e instanceof TypeError ? "TypeError: " : "other: ") + e.message }`);
      assert.equal(await message(`{ city: 42 }`), "TypeError: tools.getWeather: invalid input: input.city must be string (got number 42)");
      assert.equal(await message(`{}`), `TypeError: tools.getWeather: invalid input: input is missing the required property "city"`);
      assert.equal(await message(`{ city: "Oslo", town: "x" }`), `TypeError: tools.getWeather: invalid input: input has a property the schema does not allow: "town"`);
      assert.equal(await message(`{ city: "Oslo", units: "k" }`), `TypeError: tools.getWeather: invalid input: input.units must be one of "c", "f" (got string "k")`);
      assert.equal(await message(`"Oslo"`), `TypeError: tools.getWeather: invalid input: input must be object (got string "Oslo")`);
    }));

  test("zod (a Standard Schema): its messages, and its output is what the handler gets", () =>
    withSandbox(
      {
        tools: {
          create: tool({
            inputSchema: z.object({ title: z.string().min(3), labels: z.array(z.string()).default([]) }),
            execute: (input) => ({ title: input.title.toUpperCase(), labels: input.labels }),
          }),
        },
      },
      async (sandbox) => {
        assert.deepEqual(await sandbox.eval(`await tools.create({ title: "bug" })`), { title: "BUG", labels: [] });
        const message = (await sandbox.eval(`try { await tools.create({ title: "x", labels: [1] }) } catch (e) { e.message }`)) as string;
        assert.match(message, /^tools\.create: invalid input: input\.title: .*>=3/);
        assert.match(message, /input\.labels\[0\]: .*expected string/);
      },
    ));

  test("an uncaught invalid-input TypeError fails the eval as a ScriptError at the calling line", () =>
    withSandbox({ tools: weather }, async (sandbox) => {
      const error = errorOf(await sandbox.run(`const a = 1;\nawait tools.getWeather({ city: 1 });`));
      assert.ok(error instanceof ScriptError);
      assert.equal(error.errorName, "TypeError");
      assert.match(error.message, /input\.city must be string/);
    }));

  test("an input that cannot be cloned is refused in the sandbox, naming where", () =>
    withSandbox({ tools: { echo: { execute: (input: unknown) => input } } }, async (sandbox) => {
      const message = async (input: string) => sandbox.eval(`try { await tools.echo(${input}); "sent" } catch (e) { e.name + ": " + e.message }`);
      assert.match((await message(`{ city: "x", run() {} }`)) as string, /^TypeError: tools\.echo: input\.run is a function, so it cannot be sent/);
      assert.match((await message(`new Proxy({}, {})`)) as string, /^TypeError: tools\.echo: /);
      assert.match((await message(`{ get boom() { throw new Error("getter") } }`)) as string, /^TypeError: tools\.echo: /);
      // A getter is read as structured clone reads it: once, in the sandbox.
      assert.deepEqual(await sandbox.eval(`await tools.echo({ get v() { return 5 } })`), { v: 5 });
    }));

  test("__proto__ and constructor keys arrive as plain own properties: no prototype pollution on the host", async () => {
    let received: unknown;
    await withSandbox({ tools: { take: { execute: (input: unknown) => void (received = input) } } }, async (sandbox) => {
      await sandbox.eval(`await tools.take(JSON.parse('{"__proto__": {"polluted": true}, "constructor": {"prototype": {"polluted": true}}}'))`);
    });
    const input = received as Record<string, unknown>;
    assert.equal(Object.getPrototypeOf(input), Object.prototype);
    assert.ok(Object.hasOwn(input, "__proto__"));
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
    assert.equal((Object.prototype as Record<string, unknown>).polluted, undefined);
  });
});

describe("hostile inputs cost the host no more than their size", () => {
  test("a sparse array of length 2³²−1 (30 bytes) is refused before any schema walks it", () =>
    withSandbox(
      {
        tools: {
          json: { inputSchema: { type: "object", properties: { ids: { type: "array", items: { type: "string" } } } }, execute: () => "ran" },
          zod: tool({ inputSchema: z.object({ ids: z.array(z.string()) }), execute: () => "ran" }),
        },
      },
      async (sandbox) => {
        for (const name of ["json", "zod"]) {
          const message = await sandbox.eval(`const ids = []; ids.length = 2 ** 32 - 1; try { await tools.${name}({ ids }) } catch (e) { e.name + ": " + e.message }`);
          assert.match(message as string, new RegExp(`^ResourceLimitError: tools\\.${name}: the input holds more than \\d+ values`));
        }
      },
    ));

  test("a schema pattern runs in linear time (RE2): no catastrophic backtracking; unsupported syntax is refused at create", async () => {
    await withSandbox({ tools: { check: { inputSchema: { type: "string", pattern: "^(a+)+$" }, execute: () => "ran" } } }, async (sandbox) => {
      assert.equal(await sandbox.eval(`try { await tools.check("a".repeat(5000) + "!") } catch (e) { e.message }`), `tools.check: invalid input: input must match pattern "^(a+)+$"`);
      assert.equal(await sandbox.eval(`await tools.check("aaa")`), "ran");
    });
    await assert.rejects(Sandbox.create({ tools: { bad: { inputSchema: { type: "string", pattern: "(?=x)" }, execute: () => 1 } } }), /tools\.bad\.inputSchema is not a valid JSON Schema: .*regexp/);
  });

  test("uniqueItems compares items as JSON values, once each", () =>
    withSandbox({ tools: { set: { inputSchema: { type: "array", uniqueItems: true }, execute: (input: unknown[]) => input.length } } }, async (sandbox) => {
      assert.equal(await sandbox.eval(`try { await tools.set([{ a: 1, b: 2 }, { b: 2, a: 1 }]) } catch (e) { e.message }`), "tools.set: invalid input: input must not have duplicate items");
      assert.equal(await sandbox.eval(`await tools.set(Array.from({ length: 30000 }, (_, i) => ({ i })))`), 30000);
    }));

  test("a result's own __proto__ key stays data in the realm", () =>
    withSandbox({ tools: { parse: { execute: () => JSON.parse('{"__proto__": {"isAdmin": true}, "a": 1}') } } }, async (sandbox) => {
      assert.deepEqual(await sandbox.eval(`const r = await tools.parse(); [Object.getPrototypeOf(r) === Object.prototype, r.isAdmin, Object.keys(r)]`), [true, undefined, ["__proto__", "a"]]);
    }));
});

describe("failures", () => {
  test("a handler's error is a ToolError with its message only", () =>
    withSandbox(
      { tools: { fail: { execute: () => { const error = new Error("the city is unknown"); (error as Error & { secret: string }).secret = "s3cr3t"; throw error; } } } },
      async (sandbox) => {
        const value = await sandbox.eval(`try { await tools.fail() } catch (e) { [e instanceof ToolError, e instanceof Error, e.name, e.message, Object.keys(e), String(e.stack).includes("/")] }`);
        assert.deepEqual(value, [true, true, "ToolError", "the city is unknown", [], false]);
      },
    ));

  test("a non-Error thrown, and an empty message, still give a ToolError", () =>
    withSandbox({ tools: { a: { execute: () => Promise.reject("plain words") }, b: { execute: () => { throw new Error(""); } } } }, async (sandbox) => {
      assert.deepEqual(await sandbox.eval(`const m = async (f) => { try { await f() } catch (e) { return e.name + ": " + e.message } }; [await m(tools.a), await m(tools.b)]`), [
        "ToolError: plain words",
        "ToolError: the tool failed",
      ]);
    }));

  test("an uncaught ToolError fails the eval as a ScriptError named ToolError", () =>
    withSandbox({ tools: { fail: { execute: () => { throw new Error("no"); } } } }, async (sandbox) => {
      const error = errorOf(await sandbox.run(`await tools.fail()`));
      assert.ok(error instanceof ScriptError);
      assert.equal(error.errorName, "ToolError");
      assert.equal(error.message, "ToolError: no");
    }));

  test("a result that breaks the output schema, or cannot be cloned, is a ToolError", () =>
    withSandbox(
      {
        tools: {
          wrong: { outputSchema: { type: "object", properties: { n: { type: "number" } }, required: ["n"] }, execute: () => ({ n: "one" }) },
          fn: { execute: () => ({ ok: true, callback: () => 1 }) },
          cyclic: { execute: () => { const a: Record<string, unknown> = { name: "a" }; a.self = a; return a; } },
        },
      },
      async (sandbox) => {
        const message = (call: string) => sandbox.eval(`try { await ${call}; "fine" } catch (e) { e.name + ": " + e.message }`);
        assert.equal(await message("tools.wrong()"), "ToolError: tools.wrong returned a result that does not match its output schema: the result.n must be number (got string \"one\")");
        assert.match((await message("tools.fn()")) as string, /^ToolError: tools\.fn returned what cannot be passed into the sandbox: the result\.callback is a function/);
        // Cycles are structured-cloneable: they arrive as cycles.
        assert.equal(await sandbox.eval(`const c = await tools.cyclic(); c.self === c`), true);
      },
    ));
});

describe("limits", () => {
  test("maxToolCalls: the next call is a ResourceLimitError; only the first refusal is recorded", () =>
    withSandbox({ maxToolCalls: 3, tools: { ping: { execute: () => "pong" } } }, async (sandbox) => {
      const caught = await sandbox.run(`let n = 0; for (let i = 0; i < 10; i++) { try { await tools.ping(); n++ } catch (e) { if (e.name !== "ResourceLimitError") throw e } } n`);
      assert.equal(caught.ok && caught.value, 3);
      assert.equal(caught.toolCalls.length, 4);
      assert.equal(caught.toolCalls[3]!.ok, false);
      assert.match(caught.toolCalls[3]!.error!, /maxToolCalls/);
      // Uncaught, it fails the eval with the host's ResourceLimitError; the count is per eval.
      const flood = await sandbox.run(`await Promise.all(Array.from({ length: 1000 }, () => tools.ping()))`);
      assert.ok(errorOf(flood) instanceof ResourceLimitError);
      assert.equal(await sandbox.eval(`await tools.ping()`), "pong");
    }));

  test("toolTimeoutMs: a handler that never settles fails its call with a TimeoutError, and its signal aborts", async () => {
    const aborted = signalled<string>();
    await withSandbox(
      { toolTimeoutMs: 150, timeoutMs: 60_000, tools: { hang: { execute: (_input: unknown, { signal }) => new Promise(() => signal.addEventListener("abort", () => aborted.settle(String((signal.reason as Error).name)))) } } },
      async (sandbox) => {
        assert.deepEqual(await sandbox.eval(`try { await tools.hang() } catch (e) { [e.name, e.message] }`), ["TimeoutError", "tools.hang did not finish within 150 ms (toolTimeoutMs)"]);
        assert.equal(await aborted.promise, "TimeoutError");
        const uncaught = errorOf(await sandbox.run(`await tools.hang()`));
        assert.ok(uncaught instanceof TimeoutError, uncaught.message);
      },
    );
  });

  test("a handler still running when its eval times out is aborted; the eval's own limit holds", async () => {
    const aborted = signalled<string>();
    await withSandbox(
      { timeoutMs: 300, tools: { hang: { execute: (_input: unknown, { signal }) => new Promise(() => signal.addEventListener("abort", () => aborted.settle((signal.reason as Error).message))) } } },
      async (sandbox) => {
        const error = errorOf(await sandbox.run(`await tools.hang()`));
        assert.ok(error instanceof TimeoutError);
        assert.match(await aborted.promise, /eval that called tools\.hang has ended/);
        assert.equal(await sandbox.eval(`1 + 1`), 2);
      },
    );
  });

  test("an eval waiting only for a hanging tool ends at its own deadline, answered by its carrier (kept, with its state)", () =>
    withSandbox({ persistent: true, timeoutMs: 400, toolTimeoutMs: 3_600_000, tools: { hang: { execute: () => new Promise(() => {}) } } }, async (sandbox) => {
      await sandbox.eval(`var kept = "state"`);
      const error = errorOf(await sandbox.run(`await tools.hang()`));
      assert.ok(error instanceof TimeoutError, `${error.name}: ${error.message}`);
      assert.equal(error.carrierRestarted, false, error.message);
      assert.equal(await sandbox.eval(`kept`), "state");
    }));

  test("timers and Deno's own async work do not wait for a pending tool call", async () => {
    // `slow` answers only once `release` is called, which the code does from a timer callback, or
    // once a digest is done: a carrier that let either wait for slow's reply would never finish.
    let release: (() => void) | undefined;
    const tools: ToolTree = {
      slow: { execute: () => new Promise<string>((resolve) => (release = () => resolve("slow"))) },
      release: { execute: () => void release?.() },
    };
    await withSandbox({ timeoutMs: 20_000, tools }, async (sandbox) => {
      assert.deepEqual(await sandbox.eval(`const seen = []; const call = tools.slow().then((v) => seen.push(v)); setTimeout(() => { seen.push("timer"); tools.release(); }, 10); await call; seen`), ["timer", "slow"]);
      assert.deepEqual(
        await sandbox.eval(`const seen = []; const call = tools.slow().then((v) => seen.push(v)); crypto.subtle.digest("SHA-256", new Uint8Array(8)).then((d) => { seen.push(d.byteLength); tools.release(); }); await call; seen`),
        [32, "slow"],
      );
    });
  });

  test("console output streams to onLog while a tool call is pending (a tool may wait for it)", async () => {
    let sawReady: (() => void) | undefined;
    const ready = new Promise<void>((resolve) => (sawReady = resolve));
    await withSandbox(
      { timeoutMs: 20_000, onLog: (entry) => entry.message === "ready" && sawReady?.(), tools: { waitForLog: { execute: () => ready.then(() => "seen") } } },
      async (sandbox) => {
        assert.equal(await sandbox.eval(`const seen = tools.waitForLog(); console.log("ready"); await seen`), "seen");
      },
    );
  });

  test("work that finishes through the carrier's event loop is not held up by a call nobody awaits", () =>
    withSandbox({ timeoutMs: 20_000, tools: { never: { execute: () => new Promise(() => {}) } } }, async (sandbox) => {
      const read = `tools.never().catch(() => {}); await new Promise((resolve) => { const reader = new FileReader(); reader.onload = () => resolve(reader.result); reader.readAsText(new Blob(["data"])); })`;
      assert.equal(await sandbox.eval(read), "data");
    }));

  test("a persistent sandbox runs its evals one at a time: each keeps its own async work", async () => {
    let release: ((value: string) => void) | undefined;
    const called = signalled();
    const tools: ToolTree = { hold: { execute: () => new Promise<string>((settle) => { release = settle; called.settle(); }) } };
    await withSandbox({ persistent: true, timeoutMs: 20_000, tools }, async (sandbox) => {
      const first = sandbox.eval(`var order = ["first"]; await tools.hold(); order.push("first resumed"); "first"`);
      const second = sandbox.eval(`order.push("second"); await new Promise((resolve) => { const reader = new FileReader(); reader.onload = () => resolve(reader.result); reader.readAsText(new Blob(["second"])); })`);
      await called.promise;
      release!("done");
      assert.deepEqual(await Promise.all([first, second]), ["first", "second"]);
      assert.deepEqual(await sandbox.eval(`order`), ["first", "first resumed", "second"]);
    });
  });

  test("a call the eval did not wait for is aborted when the eval ends, and recorded as such", async () => {
    const aborted = signalled();
    const started = signalled();
    const recorded = signalled<ToolCallRecord>();
    await withSandbox(
      {
        onToolCall: (record) => recorded.settle(record),
        tools: { slow: { execute: (_input: unknown, { signal }) => { started.settle(); return new Promise(() => signal.addEventListener("abort", () => aborted.settle())); } } },
      },
      async (sandbox) => {
        // The call's frame reaches the host before the eval's answer (one pipe, in order).
        assert.equal(await sandbox.eval(`tools.slow(); "done"`), "done");
        await started.promise;
        await aborted.promise;
        const record = await recorded.promise;
        assert.equal(record.ok, false);
        assert.equal(record.error, "AbortError: tools.slow: the eval that made this call has ended");
      },
    );
  });

  test("a call left pending by an ended eval fails for a later eval that awaits it (persistent realm)", () =>
    withSandbox({ persistent: true, tools: { hang: { execute: () => new Promise(() => {}) }, ping: { execute: () => "pong" } } }, async (sandbox) => {
      await sandbox.eval(`var pending = tools.hang(); 1`);
      assert.deepEqual(await sandbox.eval(`try { await pending; "resolved" } catch (e) { [e.name, e.message] }`), ["AbortError", "the eval that made this call has ended before its reply came"]);
      // A tool function kept from an earlier eval calls in the eval that calls it.
      await sandbox.eval(`var keep = tools.ping`);
      assert.equal(await sandbox.eval(`await keep()`), "pong");
    }));

  test("maxConcurrentToolCalls counts handlers still running after their call timed out", async () => {
    let running = 0;
    let peak = 0;
    const finish: Array<() => void> = [];
    await withSandbox(
      {
        maxConcurrentToolCalls: 2,
        toolTimeoutMs: 100,
        timeoutMs: 60_000,
        // Ignores its signal: runs until the test lets it go, which it does only once a call has
        // been answered with its TimeoutError (never racing the clock).
        tools: { stubborn: { execute: () => { peak = Math.max(peak, ++running); return new Promise<void>((resolve) => finish.push(() => { running--; resolve(); })); } } },
        onToolCall: (record) => {
          if (record.error?.startsWith("TimeoutError")) setImmediate(() => finish.shift()?.());
        },
      },
      async (sandbox) => {
        try {
          assert.deepEqual(await sandbox.eval(`await Promise.all(Array.from({ length: 6 }, () => tools.stubborn().catch((e) => e.name)))`), Array.from({ length: 6 }, () => "TimeoutError"));
        } finally {
          for (const done of finish.splice(0)) done();
        }
        assert.equal(peak, 2);
      },
    );
  });

  test("toolTimeoutMs counts from the handler's start, not the wait for a slot", () =>
    withSandbox(
      { maxConcurrentToolCalls: 1, toolTimeoutMs: 2_000, timeoutMs: 60_000, tools: { step: { execute: () => new Promise((resolve) => setTimeout(() => resolve("ok"), 100)) } } },
      async (sandbox) => {
        // 30 calls of 100 ms one at a time: the last waits ~2.9 s for its slot, and still has its 2 s.
        const results = (await sandbox.eval(`await Promise.all(Array.from({ length: 30 }, () => tools.step().catch((e) => e.name)))`)) as string[];
        assert.deepEqual([...new Set(results)], ["ok"]);
      },
    ));

  test("maxConcurrentToolCalls: more calls wait their turn, and all finish", async () => {
    let running = 0;
    let peak = 0;
    await withSandbox(
      {
        maxConcurrentToolCalls: 2,
        tools: {
          work: {
            execute: async (input: number) => {
              peak = Math.max(peak, ++running);
              await new Promise((resolve) => setTimeout(resolve, 5));
              running--;
              return input * 2;
            },
          },
        },
      },
      async (sandbox) => {
        assert.deepEqual(await sandbox.eval(`await Promise.all([1, 2, 3, 4, 5, 6].map((n) => tools.work(n)))`), [2, 4, 6, 8, 10, 12]);
        assert.equal(peak, 2);
      },
    );
  });

  test("input and result sizes: typed errors, and the sandbox goes on", () =>
    withSandbox(
      { maxToolInputBytes: 64 * 1024, maxToolResultBytes: 64 * 1024, tools: { echo: { execute: (input: unknown) => input }, big: { execute: () => "x".repeat(200_000) } } },
      async (sandbox) => {
        const message = (call: string) => sandbox.eval(`try { await ${call}; "fine" } catch (e) { e.name + ": " + e.message }`);
        assert.match((await message(`tools.echo("y".repeat(100000))`)) as string, /^ResourceLimitError: tools\.echo: the input is \d+ bytes; the limit is 65536 bytes \(maxToolInputBytes\)/);
        assert.match((await message(`tools.big()`)) as string, /^ResourceLimitError: tools\.big returned \d+ bytes; the limit is 65536 bytes \(maxToolResultBytes\)/);
        assert.equal(await sandbox.eval(`(await tools.echo("small")).length`), 5);
      },
    ));

  test("a deeply nested input is refused in the sandbox, not by a crash", () =>
    withSandbox({ tools: { echo: { execute: (input: unknown) => input } } }, async (sandbox) => {
      const value = await sandbox.eval(`let v = []; for (let i = 0; i < 200000; i++) v = [v]; try { await tools.echo(v); "sent" } catch (e) { e.name + ": " + e.message }`);
      assert.match(value as string, /^(TypeError|ResourceLimitError|RangeError): /);
      assert.equal(await sandbox.eval(`await tools.echo(1)`), 1);
    }));
});

describe("audit", () => {
  test("run() lists each call; onToolCall (sandbox and eval) hears each; inputs only with auditArguments", async () => {
    const heard: ToolCallRecord[] = [];
    const heardByEval: ToolCallRecord[] = [];
    await withSandbox({ tools: weather, onToolCall: (record) => heard.push(record) }, async (sandbox) => {
      const result = await sandbox.run(`await tools.getWeather({ city: "Oslo" }); await tools.getWeather({ city: 1 }).catch(() => 0)`, { onToolCall: (record) => heardByEval.push(record) });
      assert.equal(result.toolCalls.length, 2);
      const [first, second] = result.toolCalls;
      assert.equal(first!.tool, "getWeather");
      assert.equal(first!.ok, true);
      assert.ok(first!.bytesIn > 0 && first!.bytesOut > 0);
      assert.equal(first!.input, undefined);
      assert.equal(second!.ok, false);
      assert.match(second!.error!, /^TypeError: .*input\.city/);
      assert.deepEqual(heard, result.toolCalls);
      assert.deepEqual(heardByEval, result.toolCalls);
    });
    await withSandbox({ tools: weather, auditArguments: true }, async (sandbox) => {
      const result = await sandbox.run(`await tools.getWeather({ city: "Oslo" })`);
      assert.deepEqual(result.toolCalls[0]!.input, { city: "Oslo" });
    });
  });
});

describe("declarations", () => {
  test("sb.toolDeclarations() and toolDeclarations() describe every tool", async () => {
    const tools: ToolTree = { ...weather, github: { createIssue: tool({ description: "Open an issue", inputSchema: z.object({ title: z.string() }), execute: () => 1 }) } };
    const standalone = await toolDeclarations(tools);
    await withSandbox({ tools }, async (sandbox) => {
      assert.equal(await sandbox.toolDeclarations(), standalone);
    });
    assert.match(standalone, /declare const tools: \{/);
    assert.equal(await toolDeclarations({}), "", "no tools, no declarations (and no `tools` global)");
    assert.match(standalone, /Current weather for a city/);
    assert.match(standalone, /getWeather\(input: \{\n\s+city: string;\n\s+units\?: "c" \| "f";\n\s+\}\): Promise<\{\n\s+tempC: number;/);
    assert.match(standalone, /github: \{[\s\S]*Open an issue[\s\S]*createIssue\(input: \{\n\s+title: string;/);
  });
});

describe("bad tool definitions fail Sandbox.create with a TypeError that names them", () => {
  const cases: Array<[string, unknown, RegExp]> = [
    ["a name that is not an identifier", { "get-weather": { execute: () => 1 } }, /"get-weather".*not a JavaScript identifier/],
    ["an invalid JSON Schema", { bad: { inputSchema: { type: "no-such-type" }, execute: () => 1 } }, /tools\.bad\.inputSchema is not a valid JSON Schema/],
    ["a schema that is neither", { bad: { inputSchema: 42, execute: () => 1 } }, /tools\.bad\.inputSchema must be a JSON Schema object or a Standard Schema/],
    ["a tool that is not an object", { bad: 3 }, /tools\.bad must be a tool/],
  ];
  for (const [what, tools, message] of cases) {
    test(what, async () => {
      await assert.rejects(Sandbox.create({ tools: tools as ToolTree }), (error: Error) => error instanceof TypeError && message.test(error.message));
    });
  }
});

describe("typecheck", () => {
  test("TypeScript is checked against the tools' declarations before it runs; diagnostics come with positions", async () => {
    let ran = false;
    await withSandbox({ typecheck: true, tools: { ...weather, mark: { execute: () => void (ran = true) } } }, async (sandbox) => {
      const error = errorOf(await sandbox.run(`await tools.mark();\nconst w = await tools.getWeather({ town: "Oslo" });\nconst label: string = w.tempC;`, { language: "ts" }));
      assert.ok(error instanceof ScriptError);
      assert.equal(error.errorName, "TypeCheckError");
      assert.equal(error.line, 2);
      assert.match(error.message, /TS2353 at eval\.js:2:\d+: .*'town' does not exist/);
      assert.match(error.message, /TS2322 at eval\.js:3:7: Type 'number' is not assignable to type 'string'/);
      assert.equal(ran, false, "code that does not type-check must not run");
      // Code that type-checks runs; imports and Web APIs are known to the checker.
      assert.equal(await sandbox.eval(`const w = await tools.getWeather({ city: "Oslo" }); const u = new URL("https://example.com/a"); w.tempC + u.pathname.length`, { language: "ts" }), 6);
      // Off for one eval, and never for JavaScript.
      assert.equal(await sandbox.eval(`const n: string = 1; n`, { language: "ts", typecheck: false }), 1);
      assert.equal(await sandbox.eval(`let n = 1; n = "x"; n`, { language: "js" }), "x");
    });
  });
});
