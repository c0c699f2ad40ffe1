/**
 * Hostile category 2: poisoning later evals.
 *
 * Every eval gets a fresh realm, and the outer objects all realms share are meant to be deep-frozen,
 * so nothing one eval does to built-ins, Web APIs or globals may be seen by the next one (unless
 * the sandbox is persistent). Nor may work an eval leaves behind (timers, pending promises, event
 * listeners, stream callbacks) run while a later eval does: it would steal that eval's time, blame
 * it for a timeout, or observe it.
 */
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Sandbox, TimeoutError, type RunResult } from "../../src/index.js";
import { assertAnswers, childPids, describeResult, evalOk, sleep, withSandbox } from "./harness.js";
import { LONG_TIMEOUT_MS } from "../timing.js";

let shared: Sandbox;
before(async () => {
  shared = await Sandbox.create({ timeoutMs: 3_000, memoryMb: 128 });
});
after(async () => {
  await shared.close();
});

/**
 * [what is poisoned, code of the poisoning eval, code of the next eval that must evaluate to true].
 * Poisoning code wraps each attempt in try/catch: a frozen target may throw, which is fine.
 */
const POISONS: Array<[string, string, string]> = [
  ["Array.prototype.push (assignment)", "Array.prototype.push = function () { return -1; }", "[].push(1) === 1"],
  ["Array.prototype.push (accessor)", "Object.defineProperty(Array.prototype, 'push', { get() { throw new Error('poisoned'); } })", "[].push(1) === 1"],
  ["Array.prototype[Symbol.iterator]", "Array.prototype[Symbol.iterator] = function* () { yield 'poisoned'; }", "[...[1, 2]].join() === '1,2'"],
  ["Array[Symbol.species]", "Object.defineProperty(Array, Symbol.species, { get() { return function () { return { poisoned: true }; }; } })", "Array.isArray([1, 2].map((x) => x))"],
  ["Object.prototype.toString", "Object.prototype.toString = () => 'poisoned'", "({}).toString() === '[object Object]' && String({}) === '[object Object]'"],
  ["Object.prototype properties", "Object.prototype.polluted = 'yes'; Object.defineProperty(Object.prototype, 'then', { value: (r) => r('poisoned'), enumerable: false, configurable: true })", "({}).polluted === undefined && !('then' in {})"],
  ["Object.prototype.__proto__ setter", "Object.defineProperty(Object.prototype, '__proto__', { set() { throw new Error('poisoned'); } })", "(() => { const o = {}; o.__proto__ = Array.prototype; return Array.isArray(o) === false && o instanceof Array; })()"],
  ["JSON.parse", "JSON.parse = () => 'poisoned'", "JSON.parse('{\"a\":1}').a === 1"],
  ["JSON.stringify", "JSON.stringify = () => 'poisoned'", "JSON.stringify({ a: 1 }) === '{\"a\":1}'"],
  ["Promise.prototype.then", "Promise.prototype.then = function () { return 'poisoned'; }", "(async () => (await Promise.resolve(5)) === 5 && typeof Promise.resolve().then(() => 1).then === 'function')()"],
  ["Promise.resolve", "Promise.resolve = () => 'poisoned'", "typeof Promise.resolve(1).then === 'function'"],
  ["Function.prototype.call/apply/bind", "Function.prototype.call = () => 'poisoned'; Function.prototype.apply = () => 'poisoned'; Function.prototype.bind = () => () => 'poisoned'", "Math.max.call(null, 1, 2) === 2 && Math.max.apply(null, [1, 3]) === 3 && Math.max.bind(null, 4)() === 4"],
  ["String.prototype.replace and RegExp.prototype.exec", "String.prototype.replace = () => 'poisoned'; RegExp.prototype.exec = () => null", "'abc'.replace('b', 'x') === 'axc' && /b/.exec('abc')[0] === 'b'"],
  ["Math.random and Date.now", "Math.random = () => 4; Date.now = () => 0", "Math.random() < 1 && Date.now() > 1e12"],
  ["Error.prepareStackTrace and stackTraceLimit", "Error.prepareStackTrace = () => 'poisoned'; Error.stackTraceLimit = 0", "(() => { const s = new Error('x').stack; return typeof s === 'string' && s.startsWith('Error: x') && s.includes('\\n'); })()"],
  ["URL.prototype.href", "try { Object.defineProperty(URL.prototype, 'href', { get() { return 'poisoned'; } }); } catch {} try { URL.prototype.toString = () => 'poisoned'; } catch {}", "new URL('http://a.example/x').href === 'http://a.example/x' && String(new URL('http://a.example/')) === 'http://a.example/'"],
  ["URL static methods", "try { URL.canParse = () => 'poisoned'; } catch {} try { Object.defineProperty(URL, 'parse', { value: () => 'poisoned' }); } catch {}", "URL.canParse('http://a.example/') === true && URL.parse('http://a.example/').host === 'a.example'"],
  ["TextEncoder.prototype.encode", "try { TextEncoder.prototype.encode = () => new Uint8Array(0); } catch {} try { Object.defineProperty(TextEncoder.prototype, 'encode', { value: () => 'poisoned' }); } catch {}", "new TextEncoder().encode('é').length === 2"],
  ["TextDecoder.prototype.decode", "try { TextDecoder.prototype.decode = () => 'poisoned'; } catch {}", "new TextDecoder().decode(new Uint8Array([104, 105])) === 'hi'"],
  ["crypto.subtle.digest", "try { crypto.subtle.digest = async () => new ArrayBuffer(0); } catch {} try { Object.getPrototypeOf(crypto.subtle).digest = async () => new ArrayBuffer(0); } catch {} try { SubtleCrypto.prototype.digest = async () => new ArrayBuffer(0); } catch {}",
    "(async () => { const d = new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode('abc'))); return [...d].map((b) => b.toString(16).padStart(2, '0')).join('') === 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad'; })()"],
  ["crypto.getRandomValues and randomUUID", "try { crypto.getRandomValues = (a) => a; } catch {} try { Crypto.prototype.randomUUID = () => 'poisoned'; } catch {}", "crypto.randomUUID().length === 36 && crypto.getRandomValues(new Uint8Array(32)).some((b) => b !== 0)"],
  ["Response.prototype.json", "try { Response.prototype.json = async () => 'poisoned'; } catch {} try { Object.defineProperty(Response.prototype, 'json', { value: async () => 'poisoned' }); } catch {}", "(async () => (await new Response('{\"a\":1}').json()).a === 1)()"],
  ["Response.json and Headers.prototype.get", "try { Response.json = () => 'poisoned'; } catch {} try { Headers.prototype.get = () => 'poisoned'; } catch {}", "Response.json({}).headers.get('content-type') === 'application/json'"],
  ["EventTarget.prototype.dispatchEvent", "try { EventTarget.prototype.dispatchEvent = () => false; } catch {}", "(() => { let hit = false; const t = new EventTarget(); t.addEventListener('x', () => { hit = true; }); t.dispatchEvent(new Event('x')); return hit; })()"],
  ["AbortSignal statics", "try { AbortSignal.abort = () => 'poisoned'; } catch {} try { AbortSignal.timeout = () => 'poisoned'; } catch {}", "AbortSignal.abort().aborted === true"],
  ["atob, btoa, structuredClone (globals)", "atob = () => 'poisoned'; btoa = () => 'poisoned'; structuredClone = () => 'poisoned'", "atob(btoa('hi')) === 'hi' && structuredClone({ a: 1 }).a === 1"],
  ["performance.now", "try { performance.now = () => -1; } catch {} try { Object.getPrototypeOf(performance).now = () => -1; } catch {}", "performance.now() >= 0"],
  ["console.log", "console.log = () => {}", "(() => { console.log('still captured'); return true; })()"],
  ["setTimeout", "setTimeout = () => 0; globalThis.clearTimeout = () => {}", "new Promise((resolve) => setTimeout(() => resolve(true), 1))"],
  ["fetch", "fetch = async () => new Response('poisoned')", "fetch('http://a.example/').then(() => false, (e) => e.name === 'PolicyError')"],
  ["WebAssembly.instantiate", "WebAssembly.instantiate = async () => 'poisoned'", "WebAssembly.instantiate(new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0])).then((r) => r.instance instanceof WebAssembly.Instance)"],
  ["Intl.DateTimeFormat.prototype.format", "Intl.DateTimeFormat.prototype.format = () => 'poisoned'", "new Intl.DateTimeFormat('en-US', { timeZone: 'UTC' }).format(new Date(0)) === '1/1/1970'"],
  // Outer-realm prototypes reached through values the Web APIs hand out: these are shared by every realm.
  ["the outer Object.prototype (via structuredClone)", "try { Object.getPrototypeOf(structuredClone({})).polluted = 'yes'; } catch {} try { Object.defineProperty(Object.getPrototypeOf(structuredClone({})), 'toString', { value: () => 'poisoned' }); } catch {}", "structuredClone({}).polluted === undefined && Object.prototype.toString.call(structuredClone({})) === '[object Object]' && String(structuredClone({})) === '[object Object]'"],
  ["the outer Array.prototype (via structuredClone)", "try { Object.getPrototypeOf(structuredClone([])).push = () => -1; } catch {}", "structuredClone([]).push(1) === 1"],
  ["the outer Promise.prototype (via crypto.subtle.digest)", "try { Object.getPrototypeOf(crypto.subtle.digest('SHA-256', new Uint8Array(1))).then = () => 'poisoned'; } catch {}", "crypto.subtle.digest('SHA-256', new Uint8Array(1)).then((d) => d.byteLength === 32)"],
  ["the outer Error.prototype (via a URL error)", "try { new URL('bad'); } catch (e) { try { Object.getPrototypeOf(Object.getPrototypeOf(e)).toString = () => 'poisoned'; } catch {} try { Object.getPrototypeOf(e).polluted = 1; } catch {} }", "(() => { try { new URL('bad'); } catch (e) { return String(e).startsWith('TypeError') && e.polluted === undefined; } return false; })()"],
  ["the outer Uint8Array.prototype (via TextEncoder)", "try { Object.getPrototypeOf(new TextEncoder().encode('a')).polluted = 1; } catch {} try { Object.getPrototypeOf(Object.getPrototypeOf(new TextEncoder().encode('a'))).slice = () => 'poisoned'; } catch {}", "new TextEncoder().encode('ab').slice(1).length === 1 && new TextEncoder().encode('a').polluted === undefined"],
  ["the outer array iterator prototype", "try { Object.getPrototypeOf(structuredClone([]).values()).next = () => ({ done: true }); } catch {}", "[...structuredClone([1, 2]).values()].length === 2"],
  ["the Headers iterator prototype", "try { Object.getPrototypeOf(new Headers().entries()).next = function () { return { done: true, value: undefined }; }; } catch {}", "[...new Headers({ a: '1', b: '2' })].length === 2"],
  ["the URLSearchParams iterator prototype", "try { Object.getPrototypeOf(new URLSearchParams().entries()).next = function () { return { done: true, value: undefined }; }; } catch {}", "[...new URLSearchParams('a=1&b=2')].length === 2"],
  ["the FormData iterator prototype", "try { Object.getPrototypeOf(new FormData().entries()).next = function () { return { done: true, value: undefined }; }; } catch {}", "(() => { const f = new FormData(); f.append('a', '1'); return [...f].length === 1; })()"],
  ["the ReadableStream async iterator prototype", "try { Object.getPrototypeOf(new ReadableStream().values()).next = async function () { return { done: true, value: undefined }; }; } catch {}", "(async () => { const out = []; for await (const chunk of new Response('xy').body) out.push(chunk); return out.length > 0; })()"],
  ["the outer iterator-helper prototype", "try { Object.getPrototypeOf(structuredClone([1]).values().map((x) => x)).next = () => ({ done: true }); } catch {}", "structuredClone([1, 2]).values().map((x) => x * 2).toArray().join() === '2,4'"],
  ["the outer wrap-for-valid-iterator prototype", "try { const OuterIterator = Object.getPrototypeOf(Object.getPrototypeOf(structuredClone([]).values())).constructor; Object.getPrototypeOf(OuterIterator.from({ next() { return { done: true }; } })).next = () => ({ done: false, value: 'poisoned' }); } catch {}",
    "(() => { const OuterIterator = Object.getPrototypeOf(Object.getPrototypeOf(structuredClone([]).values())).constructor; let n = 0; const it = OuterIterator.from({ next() { return n++ < 2 ? { done: false, value: n } : { done: true, value: undefined }; } }); return [...it].join() === '1,2'; })()"],
  ["a marker on the Headers iterator prototype", "try { Object.getPrototypeOf(new Headers().entries()).leak = 'from an earlier eval'; } catch {}", "Object.getPrototypeOf(new Headers().entries()).leak === undefined"],
  ["a marker on the ReadableStream async iterator prototype", "try { Object.getPrototypeOf(new ReadableStream().values()).leak = 'from an earlier eval'; } catch {}", "Object.getPrototypeOf(new ReadableStream().values()).leak === undefined"],
];

describe("built-ins, Web APIs and globals are pristine in the next eval", () => {
  for (const [label, poison, check] of POISONS) {
    test(label, async () => {
      // The poisoning eval may fail (a frozen target throws in strict code): that is not the point.
      await shared.run(`${poison};\n0`);
      const result = await shared.run(check);
      assert.ok(result.ok, `the check failed to run after poisoning ${label}: ${describeResult(result)}`);
      assert.equal(result.value, true, `poisoning ${label} is visible in the next eval (check: ${check})`);
      if (label === "console.log") assert.ok(result.logs.some((entry) => entry.message === "still captured"), "console.log of the next eval is not captured");
    });
  }

  test("the sandbox's own objects (console, timers, fetch) are fresh too", async () => {
    await shared.run("console.marker = 1; setTimeout.marker = 1; fetch.marker = 1; performance.marker = 1; crypto.marker = 1; URL.marker = 1; 0");
    const value = await evalOk(shared, "[console.marker, setTimeout.marker, fetch.marker, performance.marker, crypto.marker, URL.marker].every((v) => v === undefined)");
    assert.equal(value, true);
  });
});

describe("an eval cannot spy on a later eval through shared outer objects", () => {
  const spies: Array<[string, string, string]> = [
    [
      "Headers iteration",
      "const proto = Object.getPrototypeOf(new Headers().entries()); const original = proto.next; proto.next = function () { const r = original.call(this); if (!r.done) (proto.next.stash ??= []).push(String(r.value)); return r; };",
      "[...new Headers({ authorization: 'Bearer secret-token-123' })].length",
    ],
    [
      "URLSearchParams iteration",
      "const proto = Object.getPrototypeOf(new URLSearchParams().entries()); const original = proto.next; proto.next = function () { const r = original.call(this); if (!r.done) (proto.next.stash ??= []).push(String(r.value)); return r; };",
      "[...new URLSearchParams('password=secret-token-123')].length",
    ],
    [
      "reading a response body with for await",
      "const proto = Object.getPrototypeOf(new ReadableStream().values()); const original = proto.next; proto.next = async function () { const r = await original.call(this); if (!r.done) (proto.next.stash ??= []).push(new TextDecoder().decode(r.value)); return r; };",
      "(async () => { let n = 0; for await (const chunk of new Response('secret-token-123').body) n += chunk.length; return n; })()",
    ],
  ];
  for (const [label, install, victim] of spies) {
    test(label, async () => {
      await withSandbox({ timeoutMs: 3_000, memoryMb: 128 }, async (sandbox) => {
        await sandbox.run(`try { ${install} } catch {}\n0`);
        const victimResult = await sandbox.run(victim);
        assert.ok(victimResult.ok, `the victim eval failed: ${describeResult(victimResult)}`);
        const stolen = await sandbox.run(
          "[Object.getPrototypeOf(new Headers().entries()), Object.getPrototypeOf(new URLSearchParams().entries()), Object.getPrototypeOf(new ReadableStream().values())].map((p) => JSON.stringify(p.next.stash ?? null)).join(' ')",
        );
        assert.ok(stolen.ok, describeResult(stolen));
        assert.doesNotMatch(String(stolen.value), /secret-token-123/, `a later eval read an earlier eval's data through a shared prototype: ${String(stolen.value)}`);
      });
    });
  }
});

describe("poisoning that survives in a carrier stays with its sandbox", () => {
  test("another sandbox, made before or after, never sees it", async () => {
    const marker = "Object.getPrototypeOf(new Headers().entries()).crossSandbox";
    await withSandbox({ timeoutMs: 2_000, memoryMb: 128 }, async (before) => {
      await withSandbox({ timeoutMs: 2_000, memoryMb: 128 }, async (poisoner) => {
        await poisoner.run(`try { ${marker} = 'poisoned'; Object.getPrototypeOf(new URLSearchParams().entries()).crossSandbox = 'poisoned'; } catch {}\n0`);
        assert.equal(await evalOk(before, `typeof ${marker}`), "undefined", "a sandbox made earlier sees another sandbox's poison");
        await withSandbox({ timeoutMs: 2_000, memoryMb: 128 }, async (after) => {
          assert.equal(await evalOk(after, `typeof ${marker}`), "undefined", "a sandbox made later sees another sandbox's poison");
        });
      });
      // After the poisoner closed, a new sandbox gets a never-used carrier.
      await withSandbox({ timeoutMs: 2_000, memoryMb: 128 }, async (next) => {
        assert.equal(await evalOk(next, `typeof ${marker} + typeof Object.getPrototypeOf(new URLSearchParams().entries()).crossSandbox`), "undefinedundefined");
      });
    });
  });
});

describe("work left behind by an eval does not run during the next one", () => {
  /** Busy for 10 s; logs first, so a leaked log would show too. */
  const BURN = "function burn() { console.log('left behind'); const end = Date.now() + 10_000; while (Date.now() < end) {} }";
  /**
   * The next eval allocates and waits a little (letting GC and the event loop run). It gets all the
   * time it needs, and must take well under one burn: a few hundred ms, or a few seconds on a busy
   * machine, never the 10 s of work left behind.
   */
  const NEXT = "let junk = []; for (let i = 0; i < 3e5; i++) junk.push({ i }); junk = null; await new Promise((resolve) => setTimeout(resolve, 200)); await crypto.subtle.digest('SHA-256', new Uint8Array(8)); 42";
  const NEXT_OPTIONS = { timeoutMs: LONG_TIMEOUT_MS };
  const NEXT_BOUND_MS = 5_000;
  /**
   * A carrier killed at the first eval's limit took any work left behind with it; the next eval must
   * not be timed while it waits for the replacement's start (seconds on a busy machine).
   */
  async function whenReplaced(sandbox: Sandbox, first: RunResult): Promise<void> {
    if (!first.ok && first.error instanceof TimeoutError && first.error.carrierRestarted) await evalOk(sandbox, "0", NEXT_OPTIONS);
  }

  /** Vectors whose timing depends on the GC or on V8's platform tasks: reported, but not counted as failures. */
  const nondeterministic = new Set(["Atomics.waitAsync with a timeout", "a FinalizationRegistry callback"]);
  const leftovers: Array<[string, string]> = [
    ["a setTimeout", "setTimeout(burn, 50)"],
    ["a setInterval", "setInterval(burn, 50)"],
    ["a timer set from a timer", "setTimeout(() => setTimeout(burn, 10), 10)"],
    ["a queued microtask", "queueMicrotask(burn)"],
    ["a promise continuation", "Promise.resolve().then(burn)"],
    ["a rejection handler", "Promise.reject(new Error('x')).catch(burn)"],
    ["an unawaited async function", "(async () => { await null; await null; burn(); })()"],
    ["a microtask that sets a timer", "Promise.resolve().then(() => setTimeout(burn, 10))"],
    ["a crypto.subtle continuation", "crypto.subtle.digest('SHA-256', new Uint8Array(1)).then(burn)"],
    ["a body-reading continuation", "new Response('x').text().then(burn)"],
    ["a WebAssembly.compile continuation", "WebAssembly.compile(new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0])).then(burn)"],
    ["an AbortSignal.timeout listener", "AbortSignal.timeout(50).addEventListener('abort', burn)"],
    ["an AbortSignal.timeout onabort", "AbortSignal.timeout(50).onabort = burn"],
    ["a ReadableStream pull", "new ReadableStream({ pull() { burn(); } }, { highWaterMark: 0 }).getReader().read()"],
    ["a stream pipe", "new Blob(['abc']).stream().pipeTo(new WritableStream({ write() { burn(); } }))"],
    ["a pending fetch", "fetch('http://a.example/').finally(burn)"],
    ["Atomics.waitAsync with a timeout", "Atomics.waitAsync(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50).value.then(burn)"],
    ["a FinalizationRegistry callback", "const registry = new FinalizationRegistry(burn); for (let i = 0; i < 1e5; i++) registry.register({ i }, i); globalThis.keepRegistry = registry"],
  ];
  for (const [label, leave] of leftovers) {
    const options = nondeterministic.has(label) ? { todo: "depends on GC or platform-task timing; seen failing" } : {};
    test(label, options, async () => {
      await withSandbox({ timeoutMs: 1_500, memoryMb: 128 }, async (sandbox) => {
        const first = await sandbox.run(`${BURN}\n${leave};\n1`);
        // Work an eval queues for itself runs on that eval's time or never: either the eval
        // returns 1 (the work was dropped with its realm) or the work made it time out. Either
        // way the work must not reach the next eval.
        assert.ok(
          (first.ok && first.value === 1) || (!first.ok && first.error instanceof TimeoutError),
          `the eval that leaves work behind should return 1 or time out: ${describeResult(first)}`,
        );
        await whenReplaced(sandbox, first);
        await sleep(100);
        const started = performance.now();
        const next = await sandbox.run(NEXT, NEXT_OPTIONS);
        const elapsed = performance.now() - started;
        assert.ok(next.ok, `work left behind by ${label} ran during the next eval, which failed: ${describeResult(next)}`);
        assert.equal(next.value, 42);
        assert.ok(elapsed < NEXT_BOUND_MS, `work left behind by ${label} delayed the next eval to ${Math.round(elapsed)} ms`);
        assert.ok(!next.logs.some((entry) => entry.message.includes("left behind")), "a log of the earlier eval showed up in the next one");
        await assertAnswers(sandbox, label);
      });
    });
  }

  test("a timed-out eval's timers and intervals are gone afterwards", async () => {
    await withSandbox({ timeoutMs: 500, memoryMb: 128 }, async (sandbox) => {
      const first = await sandbox.run(`${BURN}\nsetInterval(() => {}, 0); setTimeout(burn, 600); await new Promise(() => {})`);
      assert.ok(!first.ok && first.error instanceof TimeoutError, `expected a TimeoutError, got ${describeResult(first)}`);
      await whenReplaced(sandbox, first);
      const started = performance.now();
      const next = await sandbox.run(NEXT, NEXT_OPTIONS);
      assert.ok(next.ok && next.value === 42, `after a timeout, the next eval failed: ${describeResult(next)}`);
      assert.ok(performance.now() - started < NEXT_BOUND_MS, `the next eval took ${Math.round(performance.now() - started)} ms`);
    });
  });

  test("a failed eval's timers are gone afterwards", async () => {
    await withSandbox({ timeoutMs: 1_500, memoryMb: 128 }, async (sandbox) => {
      const first = await sandbox.run(`${BURN}\nsetTimeout(burn, 50); setInterval(burn, 60); throw new Error('fail')`);
      assert.equal(first.ok, false);
      await whenReplaced(sandbox, first);
      await sleep(100);
      const started = performance.now();
      const next = await sandbox.run(NEXT, NEXT_OPTIONS);
      assert.ok(next.ok && next.value === 42, `after a failed eval, the next eval failed: ${describeResult(next)}`);
      assert.ok(performance.now() - started < NEXT_BOUND_MS, `work left behind delayed the next eval to ${Math.round(performance.now() - started)} ms`);
    });
  });
});

describe("globals", () => {
  test("globalThis.x, var, function, let and class do not survive into the next eval", async () => {
    await evalOk(shared, "globalThis.x = 1; var y = 2; function f() {} let z = 3; class C {} Object.defineProperty(globalThis, 'w', { value: 4 }); 0");
    const value = await evalOk(shared, "[typeof x, typeof y, typeof f, typeof z, typeof C, typeof w].join()");
    assert.equal(value, "undefined,undefined,undefined,undefined,undefined,undefined");
  });

  test("deleting or shadowing a global does not carry over", async () => {
    await shared.run("delete globalThis.URL; delete globalThis.Array; globalThis.Object = null; var JSON = 1; 0");
    const value = await evalOk(shared, "typeof URL === 'function' && typeof Array === 'function' && typeof Object === 'function' && typeof JSON.parse === 'function'");
    assert.equal(value, true);
  });

  test("a persistent sandbox keeps its globals, and keeps them to itself", async () => {
    await withSandbox({ persistent: true, timeoutMs: 2_000, memoryMb: 128 }, async (persistent) => {
      await evalOk(persistent, "globalThis.x = 1; var y = 2; function f() { return 3; } Array.prototype.poisoned = true; 0");
      assert.equal(await evalOk(persistent, "x + y + f()"), 6);
      assert.equal(await evalOk(persistent, "[].poisoned"), true);
      // Another sandbox, and the shared non-persistent one, see none of it.
      await withSandbox({ timeoutMs: 2_000, memoryMb: 128 }, async (other) => {
        assert.equal(await evalOk(other, "[typeof x, typeof y, typeof f, [].poisoned].join()"), "undefined,undefined,undefined,");
      });
      assert.equal(await evalOk(shared, "[typeof x, [].poisoned].join()"), "undefined,");
    });
  });

  test("mutating a sandbox-wide global does not change it for the next eval", async () => {
    await withSandbox({ timeoutMs: 2_000, memoryMb: 128, globals: { config: { list: [1, 2, 3], n: 1, nested: { k: "v" }, map: new Map([["a", 1]]) } } }, async (sandbox) => {
      await evalOk(sandbox, "config.list.push(4); config.n = 99; delete config.nested.k; config.map.set('b', 2); Object.getPrototypeOf(config).polluted = 1; config.list.__proto__.push = null; 0");
      const value = await evalOk(sandbox, "JSON.stringify({ list: config.list, n: config.n, nested: config.nested, map: [...config.map], polluted: config.polluted ?? null })");
      assert.equal(value, JSON.stringify({ list: [1, 2, 3], n: 1, nested: { k: "v" }, map: [["a", 1]], polluted: null }));
    });
  });

  test("per-eval globals do not leak into the next eval", async () => {
    await evalOk(shared, "secret.length", { globals: { secret: "s3cr3t" } });
    assert.equal(await evalOk(shared, "typeof secret"), "undefined");
  });

  test("concurrent evals in one sandbox do not see each other's poisoning", async () => {
    // The poisoner stays running for a second: the checker runs meanwhile, even on a busy machine.
    const poisoner = shared.run("Array.prototype.push = () => -1; Object.prototype.polluted = 1; globalThis.shared = 'x'; await new Promise((r) => setTimeout(r, 1_000)); [].push(1)");
    await sleep(50);
    const checker = await evalOk(shared, "[[].push(1), ({}).polluted, typeof shared].join()");
    assert.equal(checker, "1,,undefined");
    const poisoned = await poisoner;
    assert.ok(poisoned.ok && poisoned.value === -1, `the poisoning eval sees its own poison: ${describeResult(poisoned)}`);
  });
});

describe("after all of the above", () => {
  test("the shared sandbox still answers and no carrier process leaked", async () => {
    await assertAnswers(shared, "the shared sandbox");
    const count = childPids().length;
    // Shared sandbox's carrier + warm pool carriers (2 per memory size) + slack.
    assert.ok(count <= 8, `${count} child processes are alive`);
  });
});
