/**
 * Hostile: attacks on the membrane between a realm and the carrier's outer realm (see
 * src/carrier/web/membrane.ts).
 *
 * Every value that crosses — callback arguments and `this`, trap arguments of user proxies, what
 * getters and conversion hooks receive, thrown and rejected values, results — is examined inside
 * the sandbox: it and its members (two levels deep, and a view's buffer) must be of the realm,
 * which the in-sandbox `examine` checks by walking prototypes up to the realm's Object.prototype
 * (the same idea as escape.test.ts). Built-ins a realm may replace are replaced by recorders that
 * examine what they are called with, so a membrane that calls user code with an outer object, or
 * with one of its own internal functions, is caught. Each attack must also name nothing of the
 * host, leave the sandbox answering, and leave the next eval pristine.
 */
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Sandbox, type RunResult } from "../../src/index.js";
import { assertAnswers, assertResultHasNoHostDetail, clip, describeResult, safeJson } from "./harness.js";
import { LONG_TIMEOUT_MS } from "../timing.js";

/**
 * In-sandbox harness. It captures every intrinsic it uses before the attack runs (attacks replace
 * built-ins), so it keeps working whatever the attack did. `examine(label, value)` records `label`
 * as reached and, if `value` or anything under it is not of this realm, as an outer object.
 * `examineFn` also records functions that are neither native, nor the user's (their source is not
 * in the eval's code), nor a Web API member: the membrane's internals.
 */
const HARNESS = String.raw`
const harness = (() => {
  const getPrototypeOf = Reflect.getPrototypeOf, ownKeys = Reflect.ownKeys, gopd = Reflect.getOwnPropertyDescriptor;
  const apply = Reflect.apply, defineProperty = Reflect.defineProperty, hasOwn = Object.hasOwn;
  const fnToString = Function.prototype.toString, includes = String.prototype.includes, slice = String.prototype.slice;
  const StringOf = String, isView = ArrayBuffer.isView, isArray = Array.isArray;
  const TypedArrayPrototype = getPrototypeOf(Uint8Array.prototype);
  const typedArrayBuffer = gopd(TypedArrayPrototype, "buffer").get, dataViewBuffer = gopd(DataView.prototype, "buffer").get;
  const typedArrayTag = gopd(TypedArrayPrototype, Symbol.toStringTag).get;
  const isTypedArray = (v) => apply(typedArrayTag, v, []) !== undefined;
  const WeakSetOf = WeakSet, weakAdd = WeakSet.prototype.add, weakHas = WeakSet.prototype.has;
  const realmObjectPrototype = Object.prototype;
  const outer = [], reached = [], internals = [];
  const reachedSet = new WeakSetOf();
  const mineSet = new WeakSetOf(), known = new WeakSetOf(), examined = new WeakSetOf();
  const add = (list, value) => { defineProperty(list, list.length, { __proto__: null, value, writable: true, enumerable: true, configurable: true }); };
  const reachedLabels = {};
  const reach = (label) => { if (!hasOwn(reachedLabels, label)) { defineProperty(reachedLabels, label, { __proto__: null, value: true, writable: true, enumerable: true, configurable: true }); add(reached, label); } };
  const isObject = (v) => (typeof v === "object" && v !== null) || typeof v === "function";
  /** Whether v's prototype chain reaches this realm's Object.prototype (a user proxy that throws is the user's own). */
  const isRealm = (v) => {
    let p = v;
    for (let i = 0; i < 200; i++) {
      if (p === null) return false;
      if (p === realmObjectPrototype) return true;
      try { p = getPrototypeOf(p); } catch { return true; }
    }
    return true;
  };
  const examine = (label, value, depth = 0) => {
    reach(label);
    if (!isObject(value) || apply(weakHas, mineSet, [value]) || apply(weakHas, examined, [value])) return;
    apply(weakAdd, examined, [value]);
    if (!isRealm(value)) { add(outer, label); return; }
    if (isView(value)) {
      let buffer;
      try { buffer = isTypedArray(value) ? apply(typedArrayBuffer, value, []) : apply(dataViewBuffer, value, []); } catch {}
      examine(label + ".buffer", buffer, depth + 1);
      return;
    }
    if (depth >= 2) return;
    let keys;
    try { keys = ownKeys(value); } catch { return; }
    for (let i = 0; i < keys.length && i < 60; i++) {
      const key = keys[i];
      let d;
      try { d = gopd(value, key); } catch { continue; }
      if (!d) continue;
      const sub = label + "." + StringOf(key);
      if (hasOwn(d, "value")) examine(sub, d.value, depth + 1);
      else { examine(sub + " (get)", d.get, depth + 1); examine(sub + " (set)", d.set, depth + 1); }
    }
  };
  const examineFn = (label, fn) => {
    examine(label, fn);
    if (typeof fn !== "function" || apply(weakHas, known, [fn]) || apply(weakHas, mineSet, [fn])) return;
    let source;
    try { source = apply(fnToString, fn, []); } catch { return; }
    if (apply(includes, source, ["[native code]"]) || apply(includes, USER_SOURCE, [source])) return;
    add(internals, label + ": " + apply(slice, source, [0, 120]));
  };
  /** What a replaced built-in was called with. */
  const spyCall = (label, self, args) => {
    examineFn(label + " this", self);
    for (let i = 0; i < args.length; i++) examineFn(label + " argument " + i, args[i]);
  };
  const mine = (v) => { if (isObject(v)) apply(weakAdd, mineSet, [v]); return v; };
  // Functions that Web APIs hand out on purpose (members of the realm's interfaces and globals).
  const knowMembers = (object) => {
    if (!isObject(object)) return;
    let keys;
    try { keys = ownKeys(object); } catch { return; }
    for (let i = 0; i < keys.length; i++) {
      const d = gopd(object, keys[i]);
      if (!d) continue;
      for (const f of [d.value, d.get, d.set]) if (typeof f === "function") apply(weakAdd, known, [f]);
    }
  };
  const globals = ownKeys(globalThis);
  knowMembers(globalThis);
  for (let i = 0; i < globals.length; i++) {
    const d = gopd(globalThis, globals[i]);
    if (!d || !hasOwn(d, "value") || !isObject(d.value)) continue;
    knowMembers(d.value);
    if (typeof d.value === "function" && isObject(d.value.prototype)) knowMembers(d.value.prototype);
  }
  for (const object of [Object.getPrototypeOf(new Headers().entries()), Object.getPrototypeOf(new URLSearchParams().entries()),
    Object.getPrototypeOf(new FormData().entries()), Object.getPrototypeOf(new ReadableStream().values()), console, crypto, crypto.subtle, performance,
    EventTarget.prototype]) knowMembers(object);
  const report = () => ({ outer, internals, reached });
  return { examine, examineFn, spyCall, mine, report, isRealm, apply, defineProperty, gopd };
})();
const { examine, examineFn, spyCall, mine } = harness;
const hex = (b) => [...new Uint8Array(b)].map((x) => x.toString(16).padStart(2, "0")).join("");
`;

/**
 * A workload that drives the membrane through every kind of crossing and returns what it got.
 * Run in a clean realm it sets the baseline; run after an attack replaced built-ins it must give
 * the same answers (the membrane still works) and reach nothing outer.
 */
const WORKLOAD = String.raw`
const work = async () => {
  const results = [];
  const u = new URL("https://a.example/p?q=1");
  u.searchParams.append("r", "2");
  examine("workload: URL", u);
  results.push(u.href);
  const h = new Headers({ a: "1", b: "2" });
  examine("workload: headers entries", h.entries());
  examine("workload: headers next()", h.entries().next());
  results.push(JSON.stringify([...h]), h.entries().toArray().length);
  results.push(new TextDecoder().decode(new TextEncoder().encode("héllo")));
  const into = new TextEncoder().encodeInto("ab", new Uint8Array(4));
  examine("workload: encodeInto", into);
  results.push(into.written);
  const form = new FormData();
  form.append("f", new Blob(["x"]), "n.txt");
  results.push(form.get("f").name, await new Blob(["blob"]).text());
  results.push(await new Response(new Blob(["wrapped argument"])).text());
  const chunk = { c: 1 };
  const read = await new ReadableStream({ start(c) { examine("workload: controller", c); c.enqueue(chunk); c.close(); } }).getReader().read();
  examine("workload: read result", read);
  results.push(read.value === chunk);
  const pulled = await new ReadableStream({ async pull(c) { c.enqueue(7); c.close(); } }).getReader().read();
  results.push(pulled.value);
  const byob = new ReadableStream({ type: "bytes", pull(c) { const view = c.byobRequest.view; examine("workload: byob view", view); view[0] = 9; c.byobRequest.respond(1); } });
  const byobRead = await byob.getReader({ mode: "byob" }).read(new Uint8Array(2));
  examine("workload: byob result", byobRead);
  results.push([...byobRead.value]);
  const ts = new TransformStream({ transform(x, c) { c.enqueue(x * 2); } });
  const writer = ts.writable.getWriter();
  writer.write(21);
  writer.close();
  for await (const x of ts.readable) results.push(x);
  const target = new EventTarget();
  let got;
  target.addEventListener("x", (e) => { examine("workload: event", e); got = [e.type, e.target === target]; });
  target.dispatchEvent(new Event("x"));
  results.push(got);
  const controller = new AbortController();
  controller.abort("why");
  results.push(controller.signal.reason);
  results.push(hex(await crypto.subtle.digest("SHA-256", new Uint8Array(1))).slice(0, 8));
  const key = await crypto.subtle.generateKey({ name: "HMAC", hash: "SHA-256" }, true, ["sign"]);
  const jwk = await crypto.subtle.exportKey("jwk", key);
  examine("workload: jwk", jwk);
  results.push(jwk.kty, jwk.key_ops.length);
  const cloned = structuredClone({ x: new Blob(["x"]), m: new Map([[1, new Blob(["m"])]]), s: new Set([new Blob(["s"])]), arr: [new File(["f"], "f.txt")], d: new Date(0) });
  examine("workload: clone", cloned);
  results.push(cloned.x instanceof Blob, cloned.m.get(1) instanceof Blob, [...cloned.s][0] instanceof Blob, cloned.arr[0].name, cloned.d.getTime());
  results.push(structuredClone(new Date(3)).getTime(), structuredClone(new Map([[1, 2]])).get(1));
  results.push((await Response.json({ k: [1] }).json()).k[0], await new Response("body").text());
  try { new URL("bad"); } catch (e) { examine("workload: URL error", e); results.push(e instanceof TypeError); }
  try { atob("*"); } catch (e) { examine("workload: atob error", e); results.push(e instanceof DOMException && e.name); }
  results.push(await crypto.subtle.digest("nope", new Uint8Array(1)).catch((e) => { examine("workload: rejection", e); return e.name; }));
  return results;
};
`;

/** What a fresh realm looks like: what the attacks replace is native again, and nothing was added. */
const FINGERPRINT = String.raw`(() => {
  const native = (f) => typeof f === "function" && Function.prototype.toString.call(f).includes("[native code]");
  const typed = Object.getPrototypeOf(Uint8Array.prototype);
  return [
    native(Array.prototype.push), native(Array.prototype.map), native(Array.prototype.some), native(Array.isArray), native(Reflect.apply),
    native(WeakMap.prototype.get), native(Function.prototype.call), native(Function.prototype.apply), native(Promise.prototype.then),
    native(Object.defineProperty), native(Array.prototype[Symbol.iterator]), native(typed.set), native(Map), native(Set), native(Date), native(Symbol),
    Object.getOwnPropertyNames(Object.prototype).sort().join(), Object.getOwnPropertyNames(Array.prototype).length, Object.getOwnPropertyNames(Function.prototype).sort().join(),
    new URL("http://a/").href, typeof structuredClone(new Set([1])), Array.isArray(new Headers().entries().toArray()),
  ];
})()`;

let shared: Sandbox;
let baseline: unknown;
let fingerprint: unknown;

before(async () => {
  shared = await Sandbox.create({ timeoutMs: LONG_TIMEOUT_MS, memoryMb: 256 });
  fingerprint = (await runOk(shared, FINGERPRINT, "the fingerprint of a fresh realm")).value;
  const clean = await attack(shared, `${WORKLOAD}\nreturn await work();`, "the workload in a clean realm");
  baseline = clean.value;
});
after(async () => {
  await shared.close();
});

interface AttackReport {
  outer: string[];
  internals: string[];
  reached: string[];
  value: unknown;
}

async function runOk(sandbox: Sandbox, code: string, what: string): Promise<RunResult & { ok: true }> {
  const result = await sandbox.run(code, { filename: "attack.js" });
  assertResultHasNoHostDetail(result, what);
  if (!result.ok) assert.fail(`${what}: expected a value, got ${describeResult(result)}\n${clip(result.error.stack ?? "", 2000)}`);
  return result as RunResult & { ok: true };
}

/**
 * Runs `body` (the inside of an async function, with the harness in scope; its return value comes
 * back as `value`) and returns the harness's report.
 */
async function attack(sandbox: Sandbox, body: string, what: string): Promise<AttackReport> {
  // (Not \`await (async () => …)()\`: a script may call a function named await, so the host would not see top-level await.)
  const code = `${HARNESS}\n${WORKLOAD}\nconst attackBody = async () => {\n${body}\n};\nconst value = await attackBody();\n({ ...harness.report(), value })`;
  const result = await runOk(sandbox, `const USER_SOURCE = ${JSON.stringify(code)};\n${code}`, what);
  return result.value as AttackReport;
}

/** Asserts that nothing outer and no membrane internal reached the realm, and that `labels` were reached. */
function assertContained(report: AttackReport, what: string, labels: readonly string[] = []): void {
  assert.deepEqual(
    { outer: report.outer, internals: report.internals },
    { outer: [], internals: [] },
    `${what}: objects of the carrier's outer realm (outer: where they were found) or functions of the membrane (internals) reached user code`,
  );
  const missing = labels.filter((label) => !report.reached.includes(label));
  assert.deepEqual(missing, [], `${what}: the attack did not exercise these paths (reached: ${clip(safeJson(report.reached), 1500)})`);
}

/** The sandbox still answers, its next eval is a fresh realm, and the membrane still works there. */
async function assertPristine(sandbox: Sandbox, what: string): Promise<void> {
  await assertAnswers(sandbox, what);
  const next = await runOk(sandbox, FINGERPRINT, `${what}: the next eval`);
  assert.deepEqual(next.value, fingerprint, `${what}: the next eval does not see a fresh realm`);
  const again = await attack(sandbox, `${WORKLOAD}\nreturn await work();`, `${what}: the workload afterwards`);
  assertContained(again, `${what}: the workload afterwards`);
  assert.deepEqual(again.value, baseline, `${what}: the Web APIs work differently afterwards`);
}

/**
 * Runs an attack in the shared sandbox and asserts it was contained; with `expected`, the attack's
 * value is compared in the same assertion (so a failure shows both what leaked and what broke).
 */
async function contained(body: string, what: string, labels: readonly string[] = [], ...expected: [] | [unknown]): Promise<AttackReport> {
  const report = await attack(shared, body, what);
  try {
    if (expected.length > 0) {
      assert.deepEqual(
        { outer: report.outer, internals: report.internals, value: report.value },
        { outer: [], internals: [], value: expected[0] },
        `${what}: objects of the carrier's outer realm (outer) or functions of the membrane (internals) reached user code, or the Web APIs misbehaved (value)`,
      );
    }
    assertContained(report, what, labels);
  } finally {
    await assertPristine(shared, what);
  }
  return report;
}

test("the workload itself reaches nothing outer (the baseline every attack is compared with)", async () => {
  const report = await attack(shared, `${WORKLOAD}\nreturn await work();`, "the workload");
  assertContained(report, "the workload", ["workload: controller", "workload: byob view", "workload: clone", "workload: rejection"]);
  assert.deepEqual(report.value, baseline);
});

describe("callbacks that Web APIs call receive only the realm's objects", () => {
  test("underlying source: start, pull, cancel, and a strategy's size", async () => {
    await contained(String.raw`
      const source = mine({
        start(c) { examine("start this", this); examine("start controller", c); examine("start arguments", arguments); c.enqueue(mine({})); },
        pull(c) { examine("pull this", this); examine("pull controller", c); c.enqueue(mine({})); c.close(); },
      });
      const strategy = mine({ highWaterMark: 2, size(chunk) { examine("size this", this); examine("size chunk", chunk); return 1; } });
      const reader = new ReadableStream(source, strategy).getReader();
      examine("read result", await reader.read());
      examine("read result 2", await reader.read());
      examine("closed", await reader.closed);
      const cancelled = new ReadableStream(mine({ cancel(reason) { examine("cancel this", this); examine("cancel reason", reason); } }));
      examine("cancel result", await cancelled.cancel(mine({ why: 1 })));
      const failing = new ReadableStream(mine({ start(c) { c.error(mine(new Error("e"))); } }));
      await failing.getReader().read().catch((e) => examine("read rejection", e));
      for await (const x of new ReadableStream(mine({ start(c) { c.enqueue(1); c.close(); } }))) examine("for await chunk", x);
      const it = new ReadableStream().values();
      examine("async iterator", it);
      examine("async iterator return", await it.return(mine({})));
    `, "underlying source callbacks", ["start this", "start controller", "pull controller", "size chunk", "cancel reason", "read result", "read rejection", "async iterator return"]);
  });

  test("byte source: controller, byobRequest, its view, autoAllocateChunkSize", async () => {
    await contained(String.raw`
      const s = new ReadableStream(mine({
        type: "bytes",
        start(c) { examine("byte start controller", c); },
        pull(c) {
          examine("byte pull controller", c);
          const request = c.byobRequest;
          examine("byobRequest", request);
          const view = request.view;
          examine("byobRequest view", view);
          view[0] = 1;
          request.respond(1);
        },
      }));
      const reader = s.getReader({ mode: "byob" });
      const result = await reader.read(new Uint8Array(4));
      examine("byob result", result);
      const auto = new ReadableStream(mine({
        type: "bytes",
        autoAllocateChunkSize: 8,
        pull(c) { const view = c.byobRequest.view; examine("auto view", view); view[0] = 2; c.byobRequest.respondWithNewView(new Uint8Array(view.buffer, view.byteOffset, 1)); },
      }));
      examine("auto result", await auto.getReader().read());
      const enqueued = new ReadableStream(mine({ type: "bytes", start(c) { c.enqueue(new Uint8Array([1, 2])); c.close(); } }));
      examine("enqueued result", await enqueued.getReader({ mode: "byob" }).read(new Uint8Array(8)));
    `, "byte source callbacks", ["byte start controller", "byobRequest", "byobRequest view", "byob result", "auto view", "auto result"]);
  });

  test("underlying sink: start, write, close, abort, and the controller's signal", async () => {
    await contained(String.raw`
      const sink = mine({
        start(c) { examine("sink start controller", c); examine("sink signal", c.signal); c.signal.addEventListener("abort", (e) => examine("sink abort event", e)); },
        write(chunk, c) { examine("write this", this); examine("write chunk", chunk); examine("write controller", c); },
        close() { examine("close this", this); examine("close arguments", arguments); },
      });
      const writer = new WritableStream(sink).getWriter();
      examine("writer", writer);
      examine("write result", await writer.write(mine({})));
      examine("ready", await writer.ready);
      await writer.close();
      let abortController;
      const aborted = new WritableStream(mine({ start(c) { abortController = c; }, abort(reason) { examine("abort reason", reason); examine("abort this", this); } }));
      await aborted.abort(mine({ r: 1 }));
      examine("signal reason after abort", abortController.signal.reason);
      const failing = new WritableStream(mine({ write() { throw mine(new RangeError("w")); } })).getWriter();
      await failing.write(1).catch((e) => examine("write rejection", e));
      await failing.closed.catch((e) => examine("closed rejection", e));
    `, "underlying sink callbacks", ["sink start controller", "sink signal", "write chunk", "write controller", "close this", "abort reason", "write rejection"]);
  });

  test("transformer: start, transform, flush, cancel", async () => {
    await contained(String.raw`
      const ts = new TransformStream(mine({
        start(c) { examine("transform start controller", c); },
        transform(chunk, c) { examine("transform this", this); examine("transform chunk", chunk); examine("transform controller", c); c.enqueue(mine({ out: chunk })); },
        flush(c) { examine("flush controller", c); c.enqueue("end"); },
      }), mine({ highWaterMark: 1, size(x) { examine("writable size chunk", x); return 1; } }), mine({ highWaterMark: 1, size(x) { examine("readable size chunk", x); return 1; } }));
      const writer = ts.writable.getWriter();
      writer.write(mine({ in: 1 }));
      writer.close();
      for await (const x of ts.readable) examine("transformed chunk", x);
      const cancelled = new TransformStream(mine({ cancel(reason) { examine("transformer cancel reason", reason); } }));
      await cancelled.readable.cancel(mine({ why: 1 }));
    `, "transformer callbacks", ["transform start controller", "transform chunk", "transform controller", "flush controller", "transformed chunk", "writable size chunk"]);
  });

  test("event listeners: functions, { handleEvent } objects, options with getters, the global", async () => {
    await contained(String.raw`
      const t = new EventTarget();
      t.addEventListener("x", function (e) {
        examine("listener this", this); examine("listener event", e); examine("event target", e.target); examine("event currentTarget", e.currentTarget);
        examine("composedPath", e.composedPath()); examine("srcElement", e.srcElement); examine("timeStamp", e.timeStamp);
      }, mine({ get capture() { examine("options getter this", this); examine("options getter arguments", arguments); return false; } }));
      const handler = mine({ handleEvent(e) { examine("handleEvent this", this); examine("handleEvent event", e); } });
      t.addEventListener("x", handler);
      const getterHandler = mine({ get handleEvent() { examine("handleEvent getter this", this); return (e) => examine("handleEvent from a getter", e); } });
      t.addEventListener("x", getterHandler);
      examine("dispatch result", t.dispatchEvent(new CustomEvent("x", { detail: mine({}) })));
      class Sub extends EventTarget {}
      const sub = new Sub();
      sub.addEventListener("y", (e) => examine("subclass event target", e.target));
      sub.dispatchEvent(new Event("y"));
      addEventListener("z", function (e) { examine("global listener this", this); examine("global listener event", e); examine("global event target", e.target); });
      dispatchEvent(new Event("z"));
      const message = new MessageEvent("m", { data: mine({}), ports: [] });
      examine("message event ports", message.ports);
      examine("message event data", message.data);
    `, "event listeners", ["listener this", "listener event", "composedPath", "options getter this", "handleEvent this", "handleEvent getter this", "handleEvent from a getter", "global listener event", "message event ports"]);
  });

  test("AbortSignal: onabort, abort listeners, timeout, any, reasons", async () => {
    await contained(String.raw`
      const c = new AbortController();
      c.signal.onabort = function (e) { examine("onabort this", this); examine("onabort event", e); };
      examine("onabort read back", c.signal.onabort);
      c.signal.addEventListener("abort", (e) => examine("abort listener event", e));
      c.abort();
      examine("default reason", c.signal.reason);
      try { c.signal.throwIfAborted(); } catch (e) { examine("throwIfAborted", e); }
      const timed = AbortSignal.timeout(1);
      examine("timeout signal", timed);
      await new Promise((resolve) => { timed.onabort = (e) => { examine("timeout event", e); resolve(); }; });
      examine("timeout reason", timed.reason);
      const any = AbortSignal.any([new AbortController().signal, AbortSignal.abort(mine({ r: 1 }))]);
      examine("any signal", any);
      examine("any reason", any.reason);
      const lazy = new AbortController();
      const follower = AbortSignal.any([lazy.signal]);
      follower.addEventListener("abort", (e) => examine("any abort event", e));
      lazy.abort(mine(new Error("mine")));
      examine("abort() reason", AbortSignal.abort().reason);
    `, "AbortSignal", ["onabort this", "onabort event", "abort listener event", "default reason", "timeout event", "timeout reason", "any reason", "any abort event"]);
  });

  test("conversion hooks and getters on arguments: Symbol.toPrimitive, toString, valueOf, iterators", async () => {
    await contained(String.raw`
      const hook = (label, value) => mine({
        [Symbol.toPrimitive](hint) { examine(label + " toPrimitive this", this); examine(label + " toPrimitive arguments", arguments); return value; },
      });
      const stringy = (label, value) => mine({
        toString() { examine(label + " toString this", this); examine(label + " toString arguments", arguments); return value; },
        valueOf() { examine(label + " valueOf this", this); return value; },
      });
      new URL(hook("URL input", "http://a.example/"));
      new URL("/x", stringy("URL base", "http://b.example/"));
      new TextEncoder().encode(stringy("encode input", "t"));
      btoa(stringy("btoa input", "ab"));
      new TextDecoder(stringy("decoder label", "utf-8"));
      new Headers(mine({ get a() { examine("headers getter this", this); examine("headers getter arguments", arguments); return stringy("header value", "1"); } }));
      new Request(stringy("request url", "http://c.example/"), mine({ get method() { examine("RequestInit getter this", this); return "POST"; }, body: "x" }));
      await crypto.subtle.digest(mine({ get name() { examine("algorithm getter this", this); return "SHA-256"; } }), new Uint8Array(1));
      new Blob([stringy("blob part", "p")], mine({ get type() { examine("blob options getter", this); return "t/t"; } }));
      new Event("x", mine({ get bubbles() { examine("EventInit getter this", this); return true; } }));
      new EventTarget().addEventListener(stringy("event type", "x"), () => {}, mine({ get once() { examine("listener options getter", this); return true; } }));
      new Response("x", mine({ get status() { examine("ResponseInit getter", this); return 201; }, get headers() { return mine({ get h() { examine("nested headers getter", this); return "v"; } }); } }));
      AbortSignal.any(mine({ *[Symbol.iterator]() { examine("signals iterator this", this); yield AbortSignal.abort(); } }));
      new URLSearchParams(mine({ *[Symbol.iterator]() { examine("pairs iterator this", this); yield mine({ *[Symbol.iterator]() { yield "a"; yield "1"; } }); } }));
      new Headers(mine({ [Symbol.iterator]() { examine("headers iterator this", this); let done = false; return mine({ next() { examine("headers iterator next this", this); examine("headers iterator next arguments", arguments); const r = { done, value: ["k", "v"] }; done = true; return r; } }); } }));
      structuredClone(1, mine({ get transfer() { examine("clone options getter", this); return []; } }));
      new CountQueuingStrategy(mine({ get highWaterMark() { examine("strategy init getter", this); return 1; } }));
      crypto.getRandomValues(new Uint8Array(stringy("length", 2)));
      new DOMException(stringy("DOMException message", "m"), stringy("DOMException name", "AbortError"));
    `, "conversion hooks", ["URL input toPrimitive this", "URL input toPrimitive arguments", "URL base toString arguments", "headers getter this", "header value toString this",
      "RequestInit getter this", "algorithm getter this", "blob part toString this", "EventInit getter this", "event type toString this", "listener options getter",
      "ResponseInit getter", "nested headers getter", "signals iterator this", "pairs iterator this", "headers iterator next this", "clone options getter", "strategy init getter"]);
  });

  test("console.log and friends: custom-inspect hooks, getters, proxies, platform objects", async () => {
    const report = await contained(String.raw`
      const hooked = mine({
        [Symbol.for("Deno.customInspect")](...args) { examine("Deno.customInspect this", this); examine("Deno.customInspect arguments", args); return "custom"; },
        [Symbol.for("nodejs.util.inspect.custom")](...args) { examine("nodejs inspect this", this); examine("nodejs inspect arguments", args); return "custom"; },
      });
      const traps = mine({
        get(t, k, r) { examine("console proxy get", [t, r]); return Reflect.get(t, k, r); },
        ownKeys(t) { examine("console proxy ownKeys", t); return Reflect.ownKeys(t); },
        getOwnPropertyDescriptor(t, k) { examine("console proxy gopd", t); return Reflect.getOwnPropertyDescriptor(t, k); },
        getPrototypeOf(t) { examine("console proxy getPrototypeOf", t); return Reflect.getPrototypeOf(t); },
      });
      console.log(hooked);
      console.log({ nested: hooked }, [hooked]);
      console.log("%o %O %s %d %j %c", hooked, hooked, hooked, hooked, hooked, hooked);
      console.dir(hooked);
      console.table([hooked]);
      console.error(new Proxy(mine({ a: 1 }), traps));
      console.warn(new Proxy(hooked, traps));
      console.log(new URL("http://a/"), new Headers({ a: "1" }), new ReadableStream(), new DOMException("m"), AbortSignal.abort(), crypto.subtle, performance, mine({ u: new URL("http://a/") }));
      console.log(mine({ get g() { examine("console getter this", this); examine("console getter arguments", arguments); return 1; } }));
      console.log(Object.defineProperty(mine({}), Symbol.toStringTag, { get() { examine("toStringTag getter", this); return "T"; } }));
      class Weird { get [Symbol.toStringTag]() { examine("class toStringTag getter", this); return "W"; } constructor() { mine(this); } }
      console.log(new Weird());
      const label = mine({ toString() { examine("label toString this", this); examine("label toString arguments", arguments); return "l"; } });
      console.count(label);
      console.time(label);
      console.timeEnd(label);
      console.assert(false, hooked);
      console.trace(hooked);
      const error = mine(new Error("e"));
      Object.defineProperty(error, "stack", { get() { examine("error stack getter", this); return "stack"; } });
      console.log(error);
      return "logged";
    `, "console", ["label toString this"]);
    assert.equal(report.value, "logged");
  });
});

describe("thrown and rejected values cross back as themselves", () => {
  test("errors thrown from callbacks, getters and hooks, and rethrown by Deno", async () => {
    const report = await contained(String.raw`
      const makeErrors = () => {
        const getterError = mine(new TypeError("g"));
        Object.defineProperty(getterError, "message", { get() { examine("message getter this", this); examine("message getter arguments", arguments); return "m"; } });
        Object.defineProperty(getterError, "name", { get() { examine("name getter this", this); return "TypeError"; } });
        return [
          ["an Error", mine(new Error("e"))],
          ["a plain object", mine({ message: "plain" })],
          ["a Proxy", new Proxy(mine({}), mine({ get(t, k, r) { examine("thrown proxy get", [t, r]); return Reflect.get(t, k, r); }, getPrototypeOf(t) { examine("thrown proxy getPrototypeOf", t); return Reflect.getPrototypeOf(t); } }))],
          ["an error with getters", getterError],
          ["a DOMException", mine(new DOMException("d", "AbortError"))],
          ["a URL", mine(new URL("http://a/"))],
          ["a number", 5],
          ["a symbol", Symbol("s")],
        ];
      };
      const identity = {};
      for (const [label, thrown] of makeErrors()) {
        const outcomes = [];
        const expect = async (how, fn) => {
          try { await fn(); outcomes.push(how + ": no error"); }
          catch (e) { examine(label + " via " + how, e); if (e !== thrown) outcomes.push(how + ": another value"); }
        };
        await expect("start", () => new ReadableStream({ start() { throw thrown; } }));
        await expect("pull", () => new ReadableStream({ pull() { throw thrown; } }).getReader().read());
        await expect("async pull", () => new ReadableStream({ async pull() { throw thrown; } }).getReader().read());
        await expect("size", () => new ReadableStream({ start(c) { c.enqueue(1); } }, { size() { throw thrown; } }));
        await expect("write", () => new WritableStream({ write() { throw thrown; } }).getWriter().write(1));
        await expect("transform", async () => { const t = new TransformStream({ transform() { throw thrown; } }); const read = t.readable.getReader().read(); read.catch(() => {}); await t.writable.getWriter().write(1); await read; });
        await expect("toString", () => new URL({ toString() { throw thrown; } }));
        await expect("Symbol.toPrimitive", () => btoa({ [Symbol.toPrimitive]() { throw thrown; } }));
        await expect("dictionary getter", () => new Response("x", { get status() { throw thrown; } }));
        await expect("iterator", () => AbortSignal.any({ [Symbol.iterator]() { throw thrown; } }));
        await expect("controller.error", () => new ReadableStream({ start(c) { c.error(thrown); } }).getReader().read());
        await expect("abort reason", () => { const c = new AbortController(); c.abort(thrown); c.signal.throwIfAborted(); });
        await expect("cancel", async () => { let reason; await new ReadableStream({ cancel(r) { reason = r; } }).cancel(thrown); throw reason; });
        identity[label] = outcomes;
      }
      return identity;
    `, "thrown values", ["an Error via start", "a Proxy via pull", "an error with getters via dictionary getter", "a DOMException via write", "a URL via transform"]);
    const identity = report.value as Record<string, string[]>;
    for (const [label, outcomes] of Object.entries(identity)) assert.deepEqual(outcomes, [], `${label}: thrown through a Web API, it came back changed`);
  });
});

describe("user proxies crossing the membrane", () => {
  /** Traps that examine every argument they get, and functions that examine theirs. */
  const PROXIES = String.raw`
    const traps = (label) => mine({
      get(t, k, r) { examine(label + " get target", t); examine(label + " get receiver", r); return Reflect.get(t, k, r); },
      has(t, k) { examine(label + " has target", t); return Reflect.has(t, k); },
      ownKeys(t) { examine(label + " ownKeys target", t); return Reflect.ownKeys(t); },
      getOwnPropertyDescriptor(t, k) { examine(label + " gopd target", t); return Reflect.getOwnPropertyDescriptor(t, k); },
      getPrototypeOf(t) { examine(label + " getPrototypeOf target", t); return Reflect.getPrototypeOf(t); },
      set(t, k, v, r) { examine(label + " set value", v); examine(label + " set receiver", r); return Reflect.set(t, k, v, r); },
      defineProperty(t, k, d) { examine(label + " defineProperty descriptor", d); return Reflect.defineProperty(t, k, d); },
      apply(t, self, args) { examine(label + " apply this", self); examine(label + " apply arguments", args); return Reflect.apply(t, self, args); },
      construct(t, args, newTarget) { examine(label + " construct arguments", args); examine(label + " construct newTarget", newTarget); return Reflect.construct(t, args, newTarget); },
    });
    const proxied = (label, target) => new Proxy(mine(target), traps(label));
  `;

  test("a Proxy as underlying source, sink, transformer and strategy", async () => {
    await contained(String.raw`${PROXIES}
      const reader = new ReadableStream(proxied("source", {
        start(c) { examine("proxied source start this", this); examine("proxied source start controller", c); c.enqueue(1); },
        pull(c) { examine("proxied source pull controller", c); c.close(); },
      }), proxied("strategy", { highWaterMark: 1, size(chunk) { examine("proxied strategy size", chunk); return 1; } })).getReader();
      await reader.read();
      const writer = new WritableStream(proxied("sink", { write(chunk, c) { examine("proxied sink write controller", c); } })).getWriter();
      await writer.write(1);
      const ts = new TransformStream(proxied("transformer", { transform(chunk, c) { examine("proxied transformer controller", c); c.enqueue(chunk); } }));
      const read = ts.readable.getReader().read();
      await ts.writable.getWriter().write(1);
      await read;
    `, "proxies as stream dictionaries", ["source get target", "proxied source start controller", "proxied source pull controller", "proxied strategy size", "proxied sink write controller", "proxied transformer controller"]);
  });

  test("a Proxy function as listener, handler, callback and size", async () => {
    await contained(String.raw`${PROXIES}
      const t = new EventTarget();
      t.addEventListener("x", proxied("listener", function (e) { examine("proxied listener event", e); examine("proxied listener this", this); }));
      t.addEventListener("x", proxied("handleEvent object", { handleEvent(e) { examine("proxied handleEvent event", e); } }));
      t.dispatchEvent(new Event("x"));
      const c = new AbortController();
      c.signal.onabort = proxied("onabort", function (e) { examine("proxied onabort event", e); });
      c.abort();
      new ReadableStream({ start: proxied("start function", function (controller) { examine("proxied start function controller", controller); }) });
      await new Promise((resolve) => setTimeout(proxied("timer", function (...args) { examine("proxied timer arguments", args); resolve(); }), 0, mine({})));
      await new Promise((resolve) => queueMicrotask(proxied("microtask", function () { examine("proxied microtask this", this); resolve(); })));
      new ReadableStream({ start(ctrl) { ctrl.enqueue(1); } }, { size: proxied("size function", function (chunk) { examine("proxied size chunk", chunk); return 1; }) });
      new Headers({ a: "1" }).forEach(proxied("forEach callback", function (v, k, o) { examine("proxied forEach arguments", [v, k, o]); }));
    `, "proxy functions as callbacks", ["listener apply this", "listener apply arguments", "proxied listener event", "proxied handleEvent event", "onabort apply arguments",
      "start function apply arguments", "proxied timer arguments", "proxied size chunk", "forEach callback apply arguments"]);
  });

  test("a Proxy as init and dictionary: Headers, URLSearchParams, Request, Response, Event, Blob, algorithms, options", async () => {
    await contained(String.raw`${PROXIES}
      const outcomes = [];
      const tryIt = (label, fn) => { try { examine(label + " result", fn()); outcomes.push(label); } catch (e) { examine(label + " error", e); } };
      tryIt("headers record", () => new Headers(proxied("headers init", { a: "1" })));
      tryIt("headers pairs", () => new Headers(proxied("headers pairs", [proxied("headers pair", ["a", "1"])])));
      tryIt("search params", () => new URLSearchParams(proxied("search params init", { a: "1" })));
      tryIt("request", () => new Request("http://a/", proxied("RequestInit", { method: "POST", body: "x", headers: proxied("RequestInit headers", { h: "1" }) })));
      tryIt("response", () => new Response("x", proxied("ResponseInit", { status: 201 })));
      tryIt("event", () => new Event("x", proxied("EventInit", { bubbles: true })));
      tryIt("custom event", () => new CustomEvent("x", proxied("CustomEventInit", { detail: mine({}) })).detail);
      tryIt("blob", () => new Blob(proxied("blob parts", ["a", "b"]), proxied("BlobPropertyBag", { type: "t/t" })));
      tryIt("signals", () => AbortSignal.any(proxied("signals", [AbortSignal.abort()])));
      tryIt("decoder options", () => new TextDecoder("utf-8", proxied("TextDecoderOptions", { fatal: true })));
      tryIt("listener options", () => addEventListener("x", () => {}, proxied("listener options", { once: true })));
      tryIt("clone", () => structuredClone(proxied("clone value", { a: 1 })));
      tryIt("URL", () => new URL(proxied("URL input", { toString() { return "http://a/"; } })));
      await crypto.subtle.digest(proxied("algorithm", { name: "SHA-256" }), new Uint8Array(1)).then((r) => examine("digest result", r), (e) => examine("digest error", e));
      return outcomes;
    `, "proxies as dictionaries", ["headers init ownKeys target", "headers init get receiver", "RequestInit get target", "EventInit get receiver", "algorithm get receiver"]);
  });

  test("a Proxy of a platform object as `this`, revoked proxies and throwing traps as arguments", async () => {
    await contained(String.raw`${PROXIES}
      const verdicts = [];
      const receivers = [
        ["URL", new URL("http://a/"), [URL.prototype.toString, Object.getOwnPropertyDescriptor(URL.prototype, "href").get]],
        ["Headers", new Headers({ a: "1" }), [Headers.prototype.get, Headers.prototype.entries]],
        ["ReadableStream", new ReadableStream(), [ReadableStream.prototype.getReader, Object.getOwnPropertyDescriptor(ReadableStream.prototype, "locked").get]],
        ["EventTarget", new EventTarget(), [EventTarget.prototype.dispatchEvent]],
        ["Blob", new Blob(["x"]), [Blob.prototype.text, Blob.prototype.slice]],
      ];
      for (const [label, instance, methods] of receivers) {
        for (const method of methods) {
          // A method that returns a promise rejects instead of throwing (WebIDL); either way with the realm's TypeError.
          let outcome;
          try {
            const r = method.call(proxied(label + " as this", instance), new Event("x"));
            examine(label + " proxy this result", r);
            outcome = r instanceof Promise ? await r.then(() => "resolved", (e) => e) : "accepted";
          } catch (e) { outcome = e; }
          examine(label + " proxy this error", outcome);
          verdicts.push(outcome instanceof TypeError ? "TypeError" : label + " " + method.name + ": " + (typeof outcome === "string" ? outcome : String(outcome)));
        }
      }
      const revocable = Proxy.revocable({}, {});
      revocable.revoke();
      const revoked = revocable.proxy;
      const throwing = new Proxy(mine({}), mine(Object.fromEntries(["get", "has", "ownKeys", "getOwnPropertyDescriptor", "getPrototypeOf", "apply"].map((name) => [name, () => { throw mine(new RangeError("trap " + name)); }]))));
      for (const [label, value] of [["revoked", revoked], ["throwing", throwing]]) {
        for (const [use, fn] of [
          ["Headers", () => new Headers(value)], ["URL", () => new URL(value)], ["Event", () => new Event("x", value)], ["ReadableStream", () => new ReadableStream(value)],
          ["structuredClone", () => structuredClone(value)], ["Response", () => new Response("x", value)], ["btoa", () => btoa(value)], ["listener", () => new EventTarget().addEventListener("x", value)],
          ["console", () => console.log(value)], ["Blob", () => new Blob([value])], ["digest", () => crypto.subtle.digest(value, new Uint8Array(1))],
        ]) {
          try { const r = fn(); examine(label + " " + use + " result", r); if (r && typeof r.catch === "function") await r.catch((e) => examine(label + " " + use + " rejection", e)); }
          catch (e) { examine(label + " " + use + " error", e); }
        }
      }
      return verdicts;
    `, "proxies as this (the value: a method called on a Proxy of a platform object fails its brand check with the realm's TypeError)",
      ["URL proxy this error", "revoked Headers error", "throwing URL error"], Array(9).fill("TypeError"));
  });
});

describe("unusual objects as arguments", () => {
  test("frozen objects as dictionaries, sources, listeners and sequences", async () => {
    await contained(String.raw`
      new ReadableStream(Object.freeze(mine({ start(c) { examine("frozen source start controller", c); examine("frozen source start this", this); } })));
      await new WritableStream(Object.freeze(mine({ write(chunk, c) { examine("frozen sink write controller", c); } }))).getWriter().write(1);
      const t = new EventTarget();
      let listenerThis;
      const listener = Object.freeze(mine({ handleEvent(e) { examine("frozen handleEvent event", e); listenerThis = this; } }));
      t.addEventListener("x", listener);
      t.dispatchEvent(new Event("x"));
      const readonly = mine({});
      Object.defineProperty(readonly, "start", { value(c) { examine("non-writable start controller", c); }, enumerable: true });
      new ReadableStream(readonly);
      const works = [];
      const c1 = new AbortController();
      try { const req = new Request("http://a/", Object.freeze({ signal: c1.signal })); c1.abort("r"); works.push(req.signal.aborted); } catch (e) { examine("frozen RequestInit error", e); works.push(String(e)); }
      const c2 = new AbortController();
      let calls = 0;
      try { t.addEventListener("y", () => calls++, Object.freeze({ signal: c2.signal })); c2.abort(); t.dispatchEvent(new Event("y")); works.push(calls === 0); } catch (e) { examine("frozen options error", e); works.push(String(e)); }
      works.push(await new Blob(Object.freeze([new Blob(["inner"])])).text());
      try { works.push(AbortSignal.any(Object.freeze([AbortSignal.abort("x")])).reason); } catch (e) { examine("frozen signals error", e); works.push(String(e)); }
      works.push(new Response("x", Object.freeze({ headers: new Headers({ a: "1" }) })).headers.get("a"));
      const detail = mine({});
      works.push(new CustomEvent("x", Object.freeze({ detail })).detail === detail);
      works.push(listenerThis === listener);
      return works;
    `, "frozen objects (the value: frozen dictionaries and sequences must work like any others)", ["frozen source start controller", "frozen sink write controller",
      "frozen handleEvent event", "non-writable start controller"], [true, true, "inner", "x", "1", true, true]);
  });

  test("objects with a null prototype", async () => {
    await contained(String.raw`
      const works = [];
      const r = await new ReadableStream(mine({ __proto__: null, start(c) { examine("null-proto source controller", c); c.enqueue(1); c.close(); } })).getReader().read();
      works.push(r.value);
      works.push(new Headers(mine(Object.assign(Object.create(null), { a: "1" }))).get("a"));
      works.push(new Event("x", mine({ __proto__: null, bubbles: true })).bubbles);
      const t = new EventTarget();
      t.addEventListener("x", mine({ __proto__: null, handleEvent(e) { examine("null-proto handleEvent event", e); works.push("handled"); } }));
      t.dispatchEvent(new Event("x"));
      works.push(hex(await crypto.subtle.digest(mine({ __proto__: null, name: "SHA-1" }), new Uint8Array(0))).slice(0, 8));
      const cloned = structuredClone(mine({ __proto__: null, a: 1 }));
      examine("null-proto clone", cloned);
      works.push(Object.getPrototypeOf(cloned) === Object.prototype, cloned.a);
      const detail = mine({ __proto__: null });
      works.push(new CustomEvent("x", { detail }).detail === detail);
      return works;
    `, "null-prototype objects", ["null-proto source controller", "null-proto handleEvent event", "null-proto clone"], [1, "1", true, "handled", "da39a3ee", true, 1, true]);
  });

  test("functions where dictionaries are expected, and Function.prototype members", async () => {
    await contained(String.raw`
      const works = [];
      let started = false;
      new ReadableStream(mine(Object.assign(function () {}, { start(c) { started = true; examine("function source start controller", c); } })));
      works.push(started);
      works.push(new Event("x", mine(Object.assign(() => {}, { bubbles: true }))).bubbles);
      works.push(new Headers(mine(Object.assign(function () {}, { a: "1" }))).get("a"));
      Function.prototype.start = function (c) { examine("Function.prototype.start this", this); examine("Function.prototype.start controller", c); };
      try { new ReadableStream(function () {}); } finally { delete Function.prototype.start; }
      Object.defineProperty(Function.prototype, "bubbles", { get() { examineFn("Function.prototype getter this", this); return true; }, configurable: true });
      try { new Event("x", function () {}); } finally { delete Function.prototype.bubbles; }
      return works;
    `, "functions as dictionaries (the value: a function is an object, its properties are a dictionary's members)",
      ["function source start controller", "Function.prototype.start controller", "Function.prototype getter this"], [true, true, "1"]);
  });

  test("objects whose prototype is a Proxy see the keys the carrier looks up, and nothing outer", async () => {
    await contained(String.raw`
      const spy = new Proxy(mine({}), mine({
        get(t, k, r) { examine("prototype proxy get receiver", r); if (k === "start") return function (c) { examine("prototype proxy start controller", c); }; return undefined; },
        has(t, k) { examine("prototype proxy has target", t); return false; },
      }));
      new ReadableStream(mine(Object.create(spy)));
      new Event("x", mine(Object.create(spy)));
      new Headers(mine(Object.create(spy)));
      const dict = mine({ bubbles: true });
      new Event("x", dict);
      Object.setPrototypeOf(dict, spy);
      // A dictionary Deno has seen, as the receiver of platform methods: each must fail with the realm's TypeError.
      for (const C of [Event, URL, ReadableStream, Headers, Blob, AbortSignal, EventTarget]) {
        for (const key of Reflect.ownKeys(C.prototype)) {
          const d = Object.getOwnPropertyDescriptor(C.prototype, key);
          const fn = typeof d.value === "function" && key !== "constructor" ? d.value : d.get;
          if (typeof fn !== "function") continue;
          try { const r = fn.call(dict); examine("dictionary as this result", r); if (r && typeof r.catch === "function") await r.catch((e) => examine("dictionary as this rejection", e)); }
          catch (e) { examine("dictionary as this error", e); }
        }
      }
    `, "prototype proxies", ["prototype proxy get receiver", "prototype proxy start controller", "dictionary as this error"]);
  });
});

describe("wrong receivers and reshaped platform objects", () => {
  test("every member called on plain objects, other interfaces' instances, proxies, the global and primitives", async () => {
    const report = await contained(String.raw`
      const names = ["URL", "URLSearchParams", "URLPattern", "TextEncoder", "TextDecoder", "TextEncoderStream", "TextDecoderStream", "Blob", "File", "FormData",
        "AbortController", "AbortSignal", "Event", "EventTarget", "CustomEvent", "ErrorEvent", "MessageEvent", "ProgressEvent", "PromiseRejectionEvent", "CloseEvent",
        "DOMException", "ReadableStream", "ReadableStreamDefaultReader", "ReadableStreamBYOBReader", "ReadableStreamBYOBRequest", "ReadableStreamDefaultController",
        "ReadableByteStreamController", "WritableStream", "WritableStreamDefaultWriter", "WritableStreamDefaultController", "TransformStream",
        "TransformStreamDefaultController", "ByteLengthQueuingStrategy", "CountQueuingStrategy", "CompressionStream", "DecompressionStream", "Headers", "Request",
        "Response", "Crypto", "SubtleCrypto", "CryptoKey"];
      const prototypes = names.map((n) => [n, globalThis[n].prototype]);
      prototypes.push(["Headers iterator", Object.getPrototypeOf(new Headers().entries())], ["stream iterator", Object.getPrototypeOf(new ReadableStream().values())]);
      const receivers = [
        ["a plain object", () => mine({})], ["another interface's instance", () => mine(new Blob([]))], ["a URL", () => mine(new URL("http://a/"))],
        ["a Proxy of a URL", () => new Proxy(mine(new URL("http://a/")), mine({}))], ["the global", () => globalThis], ["a number", () => 1], ["a string", () => "s"],
        ["undefined", () => undefined], ["null", () => null], ["a function", () => mine(function () {})],
      ];
      let calls = 0;
      for (const [name, proto] of prototypes) {
        for (const key of Reflect.ownKeys(proto)) {
          if (key === "constructor") continue;
          const d = Object.getOwnPropertyDescriptor(proto, key);
          for (const [kind, fn] of [["method", d.value], ["getter", d.get], ["setter", d.set]]) {
            if (typeof fn !== "function") continue;
            for (const [label, make] of receivers) {
              const where = name + "." + String(key) + " " + kind + " on " + label;
              calls++;
              try {
                const r = Reflect.apply(fn, make(), kind === "setter" ? ["x"] : []);
                examine(where + " result", r);
                if (r && typeof r === "object" && typeof r.then === "function") await Promise.resolve(r).then((v) => examine(where + " resolved", v), (e) => examine(where + " rejection", e));
              } catch (e) { examine(where + " error", e); }
            }
          }
        }
      }
      return calls;
    `, "wrong receivers");
    assert.ok((report.value as number) > 2000, `only ${String(report.value)} calls were made`);
  });

  test("Reflect.construct with another new.target, and Object.setPrototypeOf on platform objects", async () => {
    await contained(String.raw`
      const out = [];
      const spy = new Proxy(mine({}), mine({ get(t, k, r) { examine("new.target prototype get receiver", r); return Reflect.get(t, k, r); } }));
      function Other() {}
      Other.prototype = mine(Object.create(spy));
      const u = Reflect.construct(URL, ["http://a/"], Other);
      examine("constructed with another new.target", u);
      out.push(Object.getPrototypeOf(u) === Other.prototype, URL.prototype.toString.call(u));
      Reflect.construct(ReadableStream, [mine({ start(c) { examine("constructed stream start controller", c); } })], Other);
      const target = Reflect.construct(EventTarget, [], Other);
      EventTarget.prototype.addEventListener.call(target, "x", (e) => { examine("constructed target event", e); out.push(e.target === target); });
      EventTarget.prototype.dispatchEvent.call(target, new Event("x"));
      const proxyNewTarget = new Proxy(function () {}, mine({ get(t, k, r) { examine("new.target proxy get target", t); examine("new.target proxy get receiver", r); return Reflect.get(t, k, r); } }));
      examine("constructed with a proxy new.target", Reflect.construct(Headers, [{ a: "1" }], proxyNewTarget));
      const asBlob = Reflect.construct(URL, ["http://b/"], Blob);
      try { await asBlob.text(); out.push("a URL read as a Blob"); } catch (e) { examine("URL as Blob error", e); out.push(e instanceof TypeError); }
      const v = new URL("http://c/");
      Object.setPrototypeOf(v, Blob.prototype);
      try { await v.text(); } catch (e) { examine("reshaped URL error", e); out.push(e instanceof TypeError); }
      out.push(URL.prototype.toString.call(v));
      Object.setPrototypeOf(v, null);
      out.push(Object.getOwnPropertyDescriptor(URL.prototype, "href").get.call(v));
      Object.setPrototypeOf(v, spy);
      out.push(new Request(v).url);
      const h = new Headers({ a: "1" });
      Object.setPrototypeOf(h, URLSearchParams.prototype);
      try { h.get("a"); out.push("Headers read as URLSearchParams"); } catch (e) { examine("reshaped Headers error", e); out.push(e instanceof TypeError); }
      const it = new Headers({ a: "1" }).entries();
      Object.setPrototypeOf(it, spy);
      try { Object.getPrototypeOf(new Headers().entries()).next.call(it); out.push("ok"); } catch (e) { examine("reshaped iterator error", e); out.push(String(e)); }
      Object.setPrototypeOf(URL.prototype, spy);
      out.push(new URL("http://d/").href);
      return out;
    `, "reshaped objects", ["constructed with another new.target", "constructed stream start controller", "constructed target event", "constructed with a proxy new.target", "URL as Blob error"],
      [true, "http://a/", true, true, true, "http://c/", "http://c/", "http://c/", true, "ok", "http://d/"]);
  });
});

describe("structuredClone of values holding platform objects, proxies and getters", () => {
  test("without patched built-ins", async () => {
    await contained(String.raw`
      const out = [];
      const blob = new Blob(["b"]);
      const graph = mine({ b: blob, again: blob, m: new Map([[new Blob(["k"]), new File(["v"], "v.txt")]]), s: new Set([new Blob(["s"])]), arr: [new Blob(["a"])], nested: { deep: [new Blob(["d"])] } });
      graph.self = graph;
      const c = structuredClone(graph);
      examine("clone of a graph", c);
      out.push(c.b instanceof Blob, c.again === c.b, c.self === c, [...c.m.keys()][0] instanceof Blob, [...c.m.values()][0].name, [...c.s][0] instanceof Blob, c.arr[0] instanceof Blob, c.nested.deep[0] instanceof Blob);
      const withGetter = structuredClone(mine({ get g() { examine("clone getter this", this); examine("clone getter arguments", arguments); return new Blob(["g"]); } }));
      examine("clone of a getter", withGetter);
      out.push(withGetter.g instanceof Blob);
      try { structuredClone(new Proxy(mine({ a: new Blob(["p"]) }), mine({ get(t, k, r) { examine("clone proxy get", [t, r]); return Reflect.get(t, k, r); } }))); out.push("a proxy was cloned"); } catch (e) { examine("clone proxy error", e); out.push(e instanceof DOMException && e.name); }
      try { structuredClone({ u: new URL("http://a/"), f: () => {} }); } catch (e) { examine("clone function error", e); out.push(e instanceof DOMException && e.name); }
      const urlClone = structuredClone({ u: new URL("http://a/") });
      examine("clone of a URL", urlClone);
      const cycle = mine({});
      cycle.self = cycle;
      cycle.b = new Blob(["cyc"]);
      const cc = structuredClone(cycle);
      out.push(cc.self === cc, cc.b instanceof Blob, cc.self.b instanceof Blob);
      return out;
    `, "structuredClone", ["clone of a graph", "clone getter this", "clone proxy error"], [true, true, true, true, "v.txt", true, true, true, true, "DataCloneError", "DataCloneError", true, true, true]);
  });
});

describe("failures inside the membrane", () => {
  test("an attacker's setters on Object.prototype and Array.prototype never see what structuredClone's copies are given", async () => {
    // Unlike the transparent recorders below, these setters keep nothing: a write that reached them
    // would hand them the value. The membrane defines its copies' properties (and makes the copies
    // on the carrier's side), so none is reached; an outer value reaching one would be reported.
    await contained(String.raw`
      for (const key of ["blob", "0"]) {
        Object.defineProperty(Object.prototype, key, { __proto__: null, configurable: true, set(v) { examine("Object.prototype." + key + " setter", v); } });
      }
      try { structuredClone(mine({ blob: new Blob(["x"]), n: 1 })); } catch (e) { examine("clone error", e); }
      try { structuredClone(mine([new Blob(["y"]), 1])); } catch (e) { examine("clone error", e); }
    `, "capturing setters", []);
  });

  test("an error raised while converting a result is the realm's own", async () => {
    await contained(String.raw`
      const out = [];
      const BIG = 128 * 1024;
      for (const [label, make] of [
        ["a DataView", () => new DataView(new ArrayBuffer(2), 1)], ["a view at an offset", () => new Uint16Array(new ArrayBuffer(8), 2, 2)],
        ["a large DataView", () => new DataView(new ArrayBuffer(BIG), 1, 4)], ["a large view at an offset", () => new Uint16Array(new ArrayBuffer(BIG), 2, 2)],
      ]) {
        try { const c = structuredClone(make()); examine(label + " clone", c); out.push([c.byteOffset, c.byteLength]); } catch (e) { examine(label + " conversion error", e); out.push(String(e)); }
      }
      return out;
    `, "conversion errors (the value: structuredClone of views keeps their offsets and lengths)", [], [[1, 1], [2, 4], [1, 4], [2, 4]]);
  });

  test("a promise whose value the membrane cannot convert still settles", async () => {
    const report = await contained(String.raw`
      const settledBy = async (promise, later) => {
        let state = "pending";
        promise.then((value) => { state = "resolved"; examine("late value", value); }, (error) => { state = "rejected"; examine("late error", error); });
        try { await later; } catch {}
        for (let i = 0; i < 10; i++) await null;
        return state;
      };
      const out = [];
      const byob = new ReadableStream({ type: "bytes", start(c) { c.enqueue(new Uint8Array([1, 2])); c.close(); } }).getReader({ mode: "byob" });
      out.push(await settledBy(byob.read(new DataView(new ArrayBuffer(2))), byob.closed));
      Object.defineProperty(Object.prototype, "value", { __proto__: null, configurable: true, get() { return undefined; } });
      try {
        const reader = new ReadableStream({ start(c) { c.enqueue(1); c.close(); } }).getReader();
        out.push(await settledBy(reader.read(), reader.closed));
      } finally { delete Object.prototype.value; }
      return out;
    `, "unconvertible results");
    for (const state of report.value as string[]) assert.notEqual(state, "pending", `a read whose result could not be converted never settled: ${safeJson(report.value)}`);
  });
});

/**
 * Built-ins a realm may replace before it uses Web APIs. Each replacement records what it is
 * called with (spyCall) and then does what the original does, so the Web APIs must work exactly
 * as before; the membrane must not hand a replacement anything outer, nor one of its own functions.
 */
const REPLACEMENTS: Array<[string, string]> = [
  ["Array.prototype.push", `{ const original = Array.prototype.push; Array.prototype.push = function push(...args) { spyCall("Array.prototype.push", this, args); return harness.apply(original, this, args); }; }`],
  ["Reflect.apply", `{ const original = Reflect.apply; Reflect.apply = function apply(f, self, args) { spyCall("Reflect.apply", self, [f, args]); return original(f, self, args); }; }`],
  ["WeakMap.prototype.get and set", `{ const get = WeakMap.prototype.get, set = WeakMap.prototype.set;
    WeakMap.prototype.get = function get_(key) { spyCall("WeakMap.prototype.get", this, [key]); return harness.apply(get, this, [key]); };
    WeakMap.prototype.set = function set_(key, value) { spyCall("WeakMap.prototype.set", this, [key, value]); return harness.apply(set, this, [key, value]); }; }`],
  ["Function.prototype.call", `{ const original = Function.prototype.call; Function.prototype.call = function call(self, ...args) { spyCall("Function.prototype.call", this, [self, args]); return harness.apply(this, self, args); }; }`],
  ["Function.prototype.apply", `{ Function.prototype.apply = function apply(self, args) { spyCall("Function.prototype.apply", this, [self, args]); return harness.apply(this, self, args ?? []); }; }`],
  ["Promise.prototype.then", `{ const original = Promise.prototype.then; Promise.prototype.then = function then(onValue, onError) { spyCall("Promise.prototype.then", this, [onValue, onError]); return harness.apply(original, this, [onValue, onError]); }; }`],
  ["Object.defineProperty", `{ const original = Object.defineProperty; Object.defineProperty = function defineProperty(o, k, d) { spyCall("Object.defineProperty", undefined, [o, k, d]); return original(o, k, d); }; }`],
  ["Array.prototype[Symbol.iterator] and %ArrayIteratorPrototype%.next", `{
    const values = Array.prototype[Symbol.iterator];
    Array.prototype[Symbol.iterator] = function values_() { spyCall("Array.prototype[Symbol.iterator]", this, []); return harness.apply(values, this, []); };
    const iteratorPrototype = Object.getPrototypeOf([].values());
    const next = iteratorPrototype.next;
    iteratorPrototype.next = function next_() { const r = harness.apply(next, this, []); spyCall("%ArrayIteratorPrototype%.next", this, [r]); return r; }; }`],
  ["Array.isArray", `{ const original = Array.isArray; Array.isArray = function isArray(v) { spyCall("Array.isArray", undefined, [v]); return original(v); }; }`],
  ["Array.prototype.map, some and forEach", `{ for (const name of ["map", "some", "forEach"]) { const original = Array.prototype[name];
    Array.prototype[name] = function (...args) { spyCall("Array.prototype." + name, this, args); return harness.apply(original, this, args); }; } }`],
  ["the Map, Set and Date constructors", `{ for (const name of ["Map", "Set", "Date"]) { const original = globalThis[name];
    globalThis[name] = new Proxy(original, { construct(t, args, newTarget) { spyCall("new " + name, undefined, args); return Reflect.construct(t, args, newTarget === globalThis[name] ? t : newTarget); },
      apply(t, self, args) { spyCall(name + "()", self, args); return Reflect.apply(t, self, args); } }); } }`],
  ["setters for array indices on Array.prototype", `{ for (let i = 0; i < 4; i++) Object.defineProperty(Array.prototype, i, { __proto__: null, configurable: true, get() { return undefined; },
    set(v) { spyCall("Array.prototype[" + i + "] setter", this, [v]); harness.defineProperty(this, i, { __proto__: null, value: v, writable: true, enumerable: true, configurable: true }); } }); }`],
  ["setters on Object.prototype", `{ for (const key of ["x", "m", "s", "arr", "d", "value", "done", "kty", "key_ops", "read", "written", "a", "b"]) Object.defineProperty(Object.prototype, key, { __proto__: null, configurable: true, get() { return undefined; },
    set(v) { spyCall("Object.prototype." + key + " setter", this, [v]); harness.defineProperty(this, key, { __proto__: null, value: v, writable: true, enumerable: true, configurable: true }); } }); }`],
  ["%TypedArray%.prototype.set", `{ const typed = Object.getPrototypeOf(Uint8Array.prototype); const original = typed.set;
    typed.set = function set(source, offset) { spyCall("%TypedArray%.prototype.set", this, [source, offset]); return harness.apply(original, this, [source, offset]); }; }`],
  ["Uint8Array.prototype.constructor (species lookups)", `{ const original = Uint8Array;
    Object.defineProperty(Uint8Array.prototype, "constructor", { __proto__: null, configurable: true, writable: true, value: undefined });
    Object.defineProperty(Uint8Array.prototype, "constructor", { __proto__: null, configurable: true, get() { spyCall("Uint8Array.prototype.constructor getter", this, []); return original; } }); }`],
  ["Symbol and String", `{ const S = Symbol, Str = String; globalThis.Symbol = function Symbol(d) { spyCall("Symbol()", undefined, [d]); return S(d); };
    for (const key of Reflect.ownKeys(S)) if (key !== "prototype" && key !== "length" && key !== "name") globalThis.Symbol[key] = S[key];
    globalThis.String = function String(v) { spyCall("String()", undefined, [v]); return Str(v); }; }`],
  ["descriptor keys on Object.prototype (get, set, value, writable)", `{ for (const key of ["get", "set", "value", "writable", "enumerable", "configurable"]) Object.defineProperty(Object.prototype, key, {
    __proto__: null, configurable: true, get() { spyCall("Object.prototype." + key + " getter", this, []); return undefined; } }); }`],
];

describe("a realm that replaces built-ins before it uses Web APIs", () => {
  for (const [label, install] of REPLACEMENTS) {
    test(`${label}: one eval`, async () => {
      const report = await attack(shared, `${install}\nreturn await work();`, label);
      try {
        assertContained(report, label);
        assert.deepEqual(report.value, baseline, `${label}: the Web APIs work differently once it is replaced`);
      } finally {
        await assertPristine(shared, label);
      }
    });
  }

  for (const [label, install] of REPLACEMENTS) {
    test(`${label}: a persistent sandbox, replaced in one eval, used in the next two`, async () => {
      const persistent = await Sandbox.create({ timeoutMs: LONG_TIMEOUT_MS, memoryMb: 256, persistent: true });
      try {
        // The harness is declared by the first eval and kept; the replacement is installed there too.
        const code = `${HARNESS}\n${WORKLOAD}\n${install}\n0`;
        await runOk(persistent, `const USER_SOURCE = ${JSON.stringify(code)};\n${code}`, `${label}: installing`);
        for (const round of [1, 2]) {
          const result = await runOk(persistent, "const value_ROUND = await work();\n({ ...harness.report(), value: value_ROUND })".replaceAll("ROUND", String(round)), `${label}: round ${round}`);
          const report = result.value as AttackReport;
          assertContained(report, `${label}, round ${round}`);
          assert.deepEqual(report.value, baseline, `${label}, round ${round}: the Web APIs work differently once it is replaced`);
        }
      } finally {
        await persistent.close();
      }
      // Nothing of it reached another sandbox.
      await assertPristine(shared, `${label} (after the persistent sandbox)`);
    });
  }
});

describe("the membrane is made on first use, after user code ran", () => {
  // Nothing here touches a Web API before the replacements: the membrane, the interface objects and
  // the builders are all made afterwards, and must use only what the realm had when it was made.
  test("intrinsics replaced before any Web API is touched never see an outer value", async () => {
    const result = await shared.run(String.raw`
      const pristine = { getPrototypeOf: Object.getPrototypeOf, ObjectPrototype: Object.prototype, push: Array.prototype.push };
      const seen = [];
      const record = (label, values) => { for (const v of values) if ((typeof v === "object" && v !== null) || typeof v === "function") pristine.push.call(seen, [label, v]); };
      const replace = (holder, key, label) => { const original = holder[key]; holder[key] = function (...args) { record(label, [this, ...args]); return Reflect.apply === replaced ? original.apply(this, args) : original.apply(this, args); }; };
      let replaced;
      for (const key of ["get", "set", "has"]) replace(WeakMap.prototype, key, "WeakMap.prototype." + key);
      for (const key of ["apply", "get", "getPrototypeOf", "construct", "defineProperty", "ownKeys", "getOwnPropertyDescriptor", "setPrototypeOf"]) replace(Reflect, key, "Reflect." + key);
      replaced = Reflect.apply;
      for (const key of ["create", "freeze", "getOwnPropertyNames", "keys"]) replace(Object, key, "Object." + key);
      replace(Array, "isArray", "Array.isArray");
      replace(Map.prototype, "set", "Map.prototype.set");
      const href = new URL("http://a/b").href;
      const bytes = new TextEncoder().encode("abc");
      const digest = await crypto.subtle.digest("SHA-256", bytes);
      const text = await new Response(new Blob(["x"])).text();
      const clone = structuredClone(new Map([[1, new Blob(["y"])]]));
      const isRealm = (v) => { let p = v; for (let i = 0; i < 64 && p !== null && p !== undefined; i++) { if (p === pristine.ObjectPrototype) return true; p = pristine.getPrototypeOf(p); } return false; };
      const outer = seen.filter(([, v]) => !isRealm(v)).map(([label]) => label);
      ({ outer, works: [href, bytes.length, digest.byteLength, text, clone.get(1) instanceof Blob], recorded: seen.length });
    `);
    assert.ok(result.ok, describeResult(result));
    const report = result.value as { outer: string[]; works: unknown[]; recorded: number };
    assert.deepEqual(report.outer, [], "an intrinsic replaced by user code was called with an object of the carrier's outer realm");
    assert.deepEqual(report.works, ["http://a/b", 3, 32, "x", true]);
    await assertAnswers(shared, "intrinsics replaced before first use");
  });
});

describe("the carrier's formatter never calls user code", () => {
  // A custom-inspect method is called by Deno's formatter with Deno's own inspect function and
  // options object: objects of the carrier's realm. The formatter formats user values without them.
  test("custom-inspect hooks in thrown values, reportError and every console path are never called", async () => {
    const persistent = await Sandbox.create({ timeoutMs: LONG_TIMEOUT_MS, persistent: true });
    try {
      await persistent.run(String.raw`
        globalThis.calls = [];
        globalThis.hooked = () => ({ [Symbol.for("Deno.customInspect")](i, o) { calls.push([i, o]); return "x"; }, [Symbol.for("nodejs.util.inspect.custom")](d, o, i) { calls.push([o, i]); return "x"; } });
      `);
      const attempts = [
        "throw hooked()",
        "reportError(hooked()); 1",
        "reportError(new CustomEvent('x', { detail: new Map([[1, hooked()]]) })); 1",
        "console.log(Promise.resolve(hooked())); 1",
        "const a = [1]; a.foo = hooked(); console.log(a); 1",
        "const b = []; b[200] = hooked(); console.log(b); 1",
        "console.log(new Map([[1, hooked()]]).entries()); 1",
        "console.log(new CustomEvent('x', { detail: new Map([[1, hooked()]]) })); 1",
        "console.log(new ErrorEvent('x', { error: Object.assign(new Error('e'), { h: hooked() }) })); 1",
      ];
      for (const code of attempts) await persistent.run(code);
      const result = await persistent.run("calls.length");
      assert.ok(result.ok, describeResult(result));
      assert.equal(result.value, 0, "a custom-inspect hook of user code was called by the carrier's formatter");
    } finally {
      await persistent.close();
    }
  });
});
