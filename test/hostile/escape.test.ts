/**
 * Hostile category 1: reaching the outer realm or the host.
 *
 * The realm is a first wall, the carrier process the real one. These tests run real carriers and
 * try every way we know to get from what the sandbox receives to the carrier's outer realm (its
 * global, Deno, the stdio channel) or to facts about the host (paths, env): constructor chains,
 * CallSites, hooks that run while the carrier serializes a result or describes a thrown value,
 * hostile thrown values, module loading, and the globals a browser or Deno would have.
 */
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Sandbox, ScriptError, PolicyError, SandboxError, ResourceLimitError, OutputLimitError, type RunResult } from "../../src/index.js";
import {
  assertFailedWith, assertNoHostDetail, hostMarkers, assertResultHasNoHostDetail, assertAnswers, childPids, clip, describeResult, evalOk, safeJson,
  withSandbox,
} from "./harness.js";
import { eventually } from "../processes.js";
import { LONG_TIMEOUT_MS, SLACK_MS } from "../timing.js";

/** Names that only the outer realm (or a runtime with host access) has. */
const OUTER_SIGNS = ["Deno", "process", "require", "Buffer", "addEventListener", "reportError", "navigator", "location", "close", "Worker"];

/**
 * In-sandbox library: collects everything the sandbox can get its hands on, follows constructor
 * chains from each, and tries to compile `return globalThis` with every Function-like constructor
 * it finds. Reports what it reached; anything with an OUTER_SIGNS name is an escape.
 */
const PROBE_LIBRARY = String.raw`
const OUTER_SIGNS = ${JSON.stringify(OUTER_SIGNS)};
const realmFunctionCtors = new Set([
  Function,
  Object.getPrototypeOf(async function () {}).constructor,
  Object.getPrototypeOf(function* () {}).constructor,
  Object.getPrototypeOf(async function* () {}).constructor,
]);
const escapes = [];
const outerFunctionCtors = [];
const codegen = { blocked: 0, realm: 0 };
const seenCtors = new Set();
const candidates = [];
const add = (label, value) => { if ((typeof value === "object" && value !== null) || typeof value === "function") candidates.push([label, value]); };
const tryCatch = (fn) => { try { return fn(); } catch (e) { return e; } };
const settle = async (fn) => { try { return await fn(); } catch (e) { return e; } };
const isRealm = (value) => {
  let p = value;
  for (let i = 0; i < 64 && p !== null && p !== undefined; i++) {
    if (p === Object.prototype) return true;
    try { p = Object.getPrototypeOf(p); } catch { return false; }
  }
  return false;
};
const inspectReached = (label, reached) => {
  if (reached === undefined || reached === null || reached === globalThis) return;
  if (typeof reached !== "object" && typeof reached !== "function") return;
  const found = OUTER_SIGNS.filter((name) => { try { return name in reached; } catch { return false; } });
  if (found.length > 0) escapes.push(label + " reached an object with " + found.join(", "));
};
const runMade = async (made) => {
  let out = made();
  if (out && typeof out.next === "function") out = out.next();
  if (out && typeof out.then === "function") out = await out;
  if (out && typeof out === "object" && "value" in out && "done" in out) out = out.value;
  return out;
};
const BODIES = ["return globalThis", "return this", "return (function () { return this; })()", "return typeof Deno === 'undefined' ? undefined : Deno"];
const tryCtor = async (label, Ctor) => {
  if (typeof Ctor !== "function" || seenCtors.has(Ctor)) return;
  seenCtors.add(Ctor);
  const isFunctionLike = realmFunctionCtors.has(Ctor) || Ctor.name === "Function" || /Function$/.test(String(Ctor.name));
  if (!isFunctionLike) return;
  if (!realmFunctionCtors.has(Ctor)) outerFunctionCtors.push(label);
  for (const body of BODIES) {
    for (const viaNew of [false, true]) {
      let made;
      try { made = viaNew ? new Ctor(body) : Ctor(body); } catch (e) {
        if (e && e.name === "EvalError") codegen.blocked++;
        continue;
      }
      if (typeof made !== "function") continue;
      if (realmFunctionCtors.has(Ctor)) codegen.realm++;
      let out;
      try { out = await runMade(made); } catch { continue; }
      inspectReached(label + (viaNew ? " new" : "") + " (" + body + ")", out);
    }
  }
};
const chainsFrom = async (label, value) => {
  let o = value;
  for (let depth = 0; depth < 8 && o !== null && o !== undefined; depth++) {
    let c; try { c = o.constructor; } catch {}
    if (typeof c === "function") {
      await tryCtor(label + " ^" + depth + ".constructor", c);
      let cc; try { cc = c.constructor; } catch {}
      await tryCtor(label + " ^" + depth + ".constructor.constructor", cc);
      let proto; try { proto = Object.getPrototypeOf(c); } catch {}
      if (proto) { let pc; try { pc = proto.constructor; } catch {} await tryCtor(label + " ^" + depth + ".constructor.__proto__.constructor", pc); }
    }
    try { o = Object.getPrototypeOf(o); } catch { break; }
  }
};
/** Adds own data properties and prototype getters of each candidate, one level deep. */
const expand = () => {
  const base = candidates.slice();
  for (const [label, value] of base) {
    let keys = [];
    try { keys = Reflect.ownKeys(value); } catch {}
    for (const key of keys.slice(0, 40)) {
      let d; try { d = Reflect.getOwnPropertyDescriptor(value, key); } catch {}
      if (d && "value" in d) add(label + "." + String(key), d.value);
      if (d && d.get) { add(label + ".get " + String(key), d.get); }
    }
    let proto; try { proto = Object.getPrototypeOf(value); } catch {}
    if (!proto || proto === Object.prototype || proto === Function.prototype) continue;
    let pkeys = [];
    try { pkeys = Reflect.ownKeys(proto); } catch {}
    for (const key of pkeys.slice(0, 40)) {
      let d; try { d = Reflect.getOwnPropertyDescriptor(proto, key); } catch {}
      if (d && d.get) { let v; try { v = Reflect.get(proto, key, value); } catch (e) { v = e; } add(label + "." + String(key), v); }
    }
  }
};
const runProbe = async () => {
  expand();
  for (const [label, value] of candidates) await chainsFrom(label, value);
  return { escapes, outerFunctionCtors: outerFunctionCtors.length, outerExamples: outerFunctionCtors.slice(0, 5), codegen, candidates: candidates.length, outerObjects: candidates.filter(([, v]) => !isRealm(v)).map(([label]) => label) };
};
`;

/** Everything the sandbox receives or can make: realm values, Web API objects and their results, runtime errors. */
const CANDIDATES = String.raw`
const thrown = (fn) => { try { fn(); } catch (e) { return e; } return undefined; };
add("this", this);
add("globalThis", globalThis);
add("object", {}); add("array", []); add("function", function () {}); add("arrow", () => {});
add("async function", async function () {}); add("generator function", function* () {}); add("async generator function", async function* () {});
add("class", class {}); add("Object(Symbol())", Object(Symbol("s"))); add("Object(1n)", Object(1n));
add("promise", Promise.resolve(1)); add("async call", (async () => 1)());
add("array iterator", [].values()); add("map iterator", new Map([[1, 2]]).entries()); add("set iterator", new Set([1]).values());
add("string iterator", "ab"[Symbol.iterator]()); add("regexp string iterator", "aa".matchAll(/a/g));
add("generator", (function* () { yield 1; })()); add("async generator", (async function* () { yield 1; })());
add("Iterator.from", Iterator.from({ next() { return { done: true, value: undefined }; } }));
add("iterator helper", [1].values().map((x) => x));
add("Uint8Array", new Uint8Array(4)); add("Float64Array buffer", new Float64Array(2).buffer); add("DataView", new DataView(new ArrayBuffer(2)));
add("SharedArrayBuffer", new SharedArrayBuffer(8)); add("BigInt64Array", new BigInt64Array(1)); add("Float16Array", typeof Float16Array === "function" ? new Float16Array(1) : undefined);
add("WeakRef", new WeakRef({})); add("FinalizationRegistry", new FinalizationRegistry(() => {}));
add("WebAssembly.Memory", new WebAssembly.Memory({ initial: 1 }));
add("WebAssembly.Module", new WebAssembly.Module(new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0])));
add("URL", new URL("http://a.example/p?q=1")); add("URL.searchParams", new URL("http://a.example/?q=1").searchParams);
add("URLSearchParams", new URLSearchParams("a=1")); add("URLSearchParams iterator", new URLSearchParams("a=1").entries());
add("URLPattern", new URLPattern({ pathname: "/a/:id" })); add("URLPattern result", new URLPattern({ pathname: "/a/:id" }).exec("http://x/a/1"));
add("TextEncoder", new TextEncoder()); add("TextEncoder result", new TextEncoder().encode("a")); add("encodeInto result", new TextEncoder().encodeInto("a", new Uint8Array(4)));
add("TextDecoder", new TextDecoder()); add("TextEncoderStream", new TextEncoderStream()); add("TextDecoderStream", new TextDecoderStream());
add("Blob", new Blob(["a"])); add("Blob stream", new Blob(["a"]).stream()); add("Blob arrayBuffer", await new Blob(["a"]).arrayBuffer());
add("File", new File(["a"], "f.txt")); add("FormData", new FormData()); add("FormData iterator", new FormData().entries());
add("AbortController", new AbortController()); add("AbortSignal.abort", AbortSignal.abort()); add("abort reason", AbortSignal.abort().reason);
add("AbortSignal.any", AbortSignal.any([new AbortController().signal]));
add("Event", new Event("x")); add("EventTarget", new EventTarget()); add("CustomEvent", new CustomEvent("x", { detail: 1 }));
add("ErrorEvent", new ErrorEvent("e")); add("MessageEvent", new MessageEvent("m")); add("ProgressEvent", new ProgressEvent("p"));
add("PromiseRejectionEvent", new PromiseRejectionEvent("r", { promise: Promise.resolve(), reason: 1 })); add("CloseEvent", new CloseEvent("c"));
add("DOMException", new DOMException("x"));
add("ReadableStream", new ReadableStream()); add("reader", new ReadableStream().getReader()); add("stream iterator", new ReadableStream().values());
add("byob reader", new ReadableStream({ type: "bytes" }).getReader({ mode: "byob" }));
add("WritableStream writer", new WritableStream().getWriter()); add("TransformStream", new TransformStream());
add("CompressionStream", new CompressionStream("gzip")); add("DecompressionStream", new DecompressionStream("gzip"));
add("ByteLengthQueuingStrategy", new ByteLengthQueuingStrategy({ highWaterMark: 1 })); add("CountQueuingStrategy", new CountQueuingStrategy({ highWaterMark: 1 }));
{
  let controller; new ReadableStream({ start(c) { controller = c; } }); add("stream controller", controller);
  let tcontroller; new TransformStream({ start(c) { tcontroller = c; } }); add("transform controller", tcontroller);
  let wcontroller; new WritableStream({ start(c) { wcontroller = c; } }); add("writable controller", wcontroller);
}
add("Headers", new Headers({ a: "1" })); add("Headers iterator", new Headers({ a: "1" }).entries());
add("Request", new Request("http://a.example/")); add("Request signal", new Request("http://a.example/").signal);
add("Response", new Response("x")); add("Response.json", Response.json({ a: 1 })); add("Response.error", Response.error());
add("Response body", new Response("x").body);
add("Response json result", await Response.json({ a: [1] }).json());
add("Response formData", await settle(() => new Response("a=1", { headers: { "content-type": "application/x-www-form-urlencoded" } }).formData()));
add("read result", await new Response("x").body.getReader().read());
add("crypto", crypto); add("crypto.subtle", crypto.subtle); add("getRandomValues", crypto.getRandomValues(new Uint8Array(2)));
add("digest promise", crypto.subtle.digest("SHA-256", new Uint8Array(1)));
add("digest", await crypto.subtle.digest("SHA-256", new Uint8Array(1)));
{
  const key = await crypto.subtle.generateKey({ name: "HMAC", hash: "SHA-256" }, true, ["sign"]);
  add("CryptoKey", key); add("CryptoKey algorithm", key.algorithm); add("jwk", await crypto.subtle.exportKey("jwk", key));
  add("signature", await crypto.subtle.sign("HMAC", key, new Uint8Array(1)));
}
add("structuredClone", structuredClone({ a: [1], m: new Map([[1, {}]]), s: new Set([{}]), d: new Date(0), r: /a/g, e: new Error("e") }));
add("structuredClone error", structuredClone(new RangeError("r")));
add("performance", performance); add("performance.now", performance.now);
add("console", console); add("console.log", console.log);
add("setTimeout", setTimeout); add("setInterval", setInterval); add("clearTimeout", clearTimeout); add("queueMicrotask", queueMicrotask);
add("fetch", fetch); add("fetch promise", fetch("http://a.example/").catch(() => {})); add("fetch rejection", await settle(() => fetch("http://a.example/")));
add("fetch bad input", await settle(() => fetch(1234)));
{
  const fs = await import("node:fs");
  const fsp = fs.promises;
  // (Module namespaces have no prototype, as real ones: what they hold is walked instead.)
  add("node:fs default", fs.default); add("node:fs promises", fs.promises); add("node:fs/promises readFile", (await import("node:fs/promises")).readFile);
  await fsp.writeFile("/walk.txt", "x"); await fsp.mkdir("/walk-dir", { recursive: true }); await fsp.writeFile("/walk-big", new Uint8Array(100 * 1024));
  add("fs readFile bytes", await fsp.readFile("/walk.txt")); add("fs readFile promise", fsp.readFile("/walk.txt")); add("fs read above the membrane's copy limit", await fsp.readFile("/walk-big"));
  add("fs stat", await fsp.stat("/walk.txt")); add("fs readdir", await fsp.readdir("/", { withFileTypes: true })); add("fs mkdir result", await fsp.mkdir("/walk-dir/a", { recursive: true }));
  add("fs error", await settle(() => fsp.readFile("/nope"))); add("fs argument error", await settle(() => fsp.readFile(1)));
  add("fs sync error", thrown(() => fs.default.readFileSync("/x")));
}
add("atob", atob); add("btoa", btoa); add("structuredClone fn", structuredClone);
add("URL error", thrown(() => new URL("bad")));
add("atob error", thrown(() => atob("*")));
add("TextDecoder error", thrown(() => new TextDecoder("utf-8", { fatal: true }).decode(new Uint8Array([255]))));
add("JSON error", thrown(() => JSON.parse("{")));
add("clone error", thrown(() => structuredClone(() => {})));
add("clone symbol error", thrown(() => structuredClone(Symbol("s"))));
add("Headers error", thrown(() => new Headers({ "bad header": "x" })));
add("Request error", thrown(() => new Request("http://a.example/", { method: "bad method" })));
add("Response error", thrown(() => new Response(null, { status: 1 })));
add("digest rejection", await settle(() => crypto.subtle.digest("nope", new Uint8Array(1))));
add("json rejection", await settle(() => new Response("{").json()));
add("body used rejection", await settle(async () => { const r = new Response("x"); await r.text(); return r.text(); }));
add("queueMicrotask error", thrown(() => queueMicrotask(1)));
add("Wasm compile rejection", await settle(() => WebAssembly.compile(new Uint8Array([1, 2, 3]))));
add("Wasm module error", thrown(() => new WebAssembly.Module(new Uint8Array(1))));
add("TypeError", thrown(() => null.x)); add("ReferenceError", thrown(() => notDefinedAnywhere));
add("RangeError (recursion)", thrown(function f() { f(); }));
add("SyntaxError (eval)", thrown(() => eval("(")));
add("SyntaxError (Function)", thrown(() => new Function("(")));
add("import rejection", await settle(() => import("node:os")));
add("AggregateError", await settle(() => Promise.any([Promise.reject(thrown(() => new URL("bad"))), Promise.reject(atob)])));
add("AggregateError errors", (await settle(() => Promise.any([Promise.reject(thrown(() => new URL("bad")))]))).errors);
add("SuppressedError", thrown(() => { const s = new DisposableStack(); s.defer(() => { throw thrown(() => new URL("bad")); }); s.defer(() => { throw thrown(() => atob("*")); }); s.dispose(); }));
add("AsyncDisposableStack", new AsyncDisposableStack());
add("async SuppressedError", await settle(async () => { const s = new AsyncDisposableStack(); s.defer(async () => { throw thrown(() => new URL("bad")); }); s.defer(() => { throw new Error("b"); }); await s.disposeAsync(); }));
add("Array.fromAsync stream", await Array.fromAsync(new ReadableStream({ start(c) { c.enqueue(new TextEncoder().encode("a")); c.close(); } })));
add("Array.fromAsync rejection", await settle(() => Array.fromAsync(new ReadableStream({ start(c) { c.error(thrown(() => new URL("bad"))); } }))));
add("yield* over a stream", await settle(async () => {
  async function* gen() { yield* new Response("xy").body; }
  const out = []; for await (const chunk of gen()) out.push(chunk); return out;
}));
add("for await chunk", await settle(async () => { for await (const chunk of new Blob(["z"]).stream()) return chunk; }));
console.log({ [Symbol.for("Deno.customInspect")](inspect, options) { add("Deno.customInspect inspect", inspect); add("Deno.customInspect options", options); return "x"; } });
console.log({ [Symbol.for("nodejs.util.inspect.custom")](depth, options, inspect) { add("nodejs custom inspect options", options); add("nodejs custom inspect", inspect); return "x"; } });
add("Error.captureStackTrace target", (() => { const o = {}; Error.captureStackTrace(o); return o; })());
add("Event target in listener", await new Promise((resolve) => { const t = new EventTarget(); t.addEventListener("x", function (e) { resolve([this, e, e.target, e.currentTarget, e.composedPath()]); }); t.dispatchEvent(new Event("x")); }));
add("abort event", await new Promise((resolve) => { const c = new AbortController(); c.signal.onabort = function (e) { resolve([this, e]); }; c.abort(thrown(() => new URL("bad"))); }));
`;

/**
 * In-sandbox CallSite recorder. Only the user's own frames may hand out `this` and the function;
 * file names (and the sources inside data: URLs) must not name the host. HOST_MARKERS is filled in.
 */
const CALLSITE_LIBRARY = String.raw`
const sites = [];
const leaks = [];
const hostHits = [];
const files = new Set();
const userFile = "eval.js";
const HOST_MARKERS = __HOST_MARKERS__;
Error.stackTraceLimit = Infinity;
const checkHost = (label, text) => {
  const pieces = [text];
  const m = /^data:[^,]*;base64,([A-Za-z0-9+/=]+)/.exec(text);
  if (m) { try { pieces.push(atob(m[1])); } catch {} }
  for (const piece of pieces) for (const marker of HOST_MARKERS) if (piece.includes(marker)) hostHits.push(label + " names " + marker);
};
const describeSite = (s, source) => {
  const get = (fn) => { try { return fn(); } catch (e) { return "threw " + (e && e.name); } };
  const file = get(() => s.getFileName());
  const self = get(() => s.getThis());
  const fn = get(() => s.getFunction());
  const info = {
    source,
    file: String(file).slice(0, 120),
    text: String(get(() => String(s))).slice(0, 200),
    fnName: String(get(() => s.getFunctionName())),
    typeName: String(get(() => s.getTypeName())),
    thisType: typeof self,
    fnType: typeof fn,
  };
  sites.push(info);
  for (const text of [String(file), String(get(() => s.getScriptNameOrSourceURL())), String(get(() => s.getEvalOrigin())), String(get(() => String(s)))]) {
    if (!files.has(text)) { files.add(text); checkHost(source, text); }
  }
  const own = typeof file === "string" && file === userFile;
  if (!own && (self !== undefined || fn !== undefined)) {
    const reached = [self, fn].filter((v) => v !== undefined);
    leaks.push({ ...info, keys: reached.map((v) => { try { return Reflect.ownKeys(v).map(String).slice(0, 20); } catch { return "?"; } }) });
  }
  // The user's own frames may show objects the user already had, never the carrier's global.
  for (const v of [self, fn]) {
    if (v === undefined || v === null || v === globalThis) continue;
    for (const name of ["Deno", "process", "require", "reportError"]) {
      try { if (name in Object(v)) leaks.push({ ...info, outerSign: name }); } catch {}
    }
  }
};
let currentSource = "?";
Error.prepareStackTrace = (error, callSites) => {
  for (const s of callSites) describeSite(s, currentSource);
  return "prepared:" + callSites.length;
};
const stackOf = (source, fn) => {
  currentSource = source;
  try { const e = fn(); if (e && typeof e === "object") void e.stack; } catch (e) { if (e && typeof e === "object") { try { void e.stack; } catch {} } }
};
const callSiteReport = () => ({ sites: sites.length, leaks, hostHits, files: [...files].map((f) => f.slice(0, 160)) });
`.replace("__HOST_MARKERS__", JSON.stringify(hostMarkers()));

interface CallSiteReport {
  sites: number;
  leaks: unknown[];
  hostHits: string[];
  files: string[];
}

let shared: Sandbox;
before(async () => {
  // No test here is about the time limit: evals get all the time a busy machine needs, and those
  // that must end fast are bounded by SLACK_MS, far below it.
  shared = await Sandbox.create({ timeoutMs: LONG_TIMEOUT_MS, memoryMb: 128 });
});
after(async () => {
  await shared.close();
});

describe("constructor chains", () => {
  test("this.constructor.constructor stays in the realm: no Deno, no process, no outer global", async () => {
    const cases: Array<[string, unknown]> = [
      ['typeof this.constructor.constructor("return Deno")()', "undefined"],
      ['this.constructor.constructor("return globalThis")() === globalThis', true],
      ['typeof this.constructor.constructor("return process")()', "undefined"],
      ['typeof this.constructor.constructor("return require")()', "undefined"],
      ['typeof ({}).constructor.constructor("return this")().Deno', "undefined"],
      ['typeof (async () => {}).constructor("return typeof Deno")().then', "function"],
    ];
    for (const [code, expected] of cases) {
      const result = await shared.run(code);
      if (result.ok) assert.equal(result.value, expected, code);
      else assertFailedWith(result, [ScriptError], code);
    }
    const deno = await shared.run('this.constructor.constructor("return Deno")()');
    if (deno.ok) assert.equal(deno.value, undefined, "Deno reached through this.constructor.constructor");
    else {
      const error = assertFailedWith(deno, [ScriptError], "constructor chain to Deno");
      assert.match(error.message, /ReferenceError|EvalError/);
    }
  });

  test("no Web API object leads to the outer Function", async () => {
    const report = await evalOk<Record<string, unknown>>(shared, String.raw`
      const probes = {
        "URL.constructor": URL.constructor,
        "fetch": Object.getPrototypeOf(fetch).constructor,
        "URL error": (() => { try { new URL("bad"); } catch (e) { return e.constructor.constructor; } })(),
        "digest promise": crypto.subtle.digest("SHA-256", new Uint8Array(1)).constructor.constructor,
        "encode result": new TextEncoder().encode("a").constructor.constructor,
        "structuredClone result": structuredClone({}).constructor.constructor,
        "console.log": console.log.constructor,
        "setTimeout": setTimeout.constructor,
        "performance.now": performance.now.constructor,
      };
      const out = {};
      for (const [label, F] of Object.entries(probes)) {
        const outer = F !== Function && F !== Object.getPrototypeOf(async function () {}).constructor;
        let outcome;
        try { const made = F("return globalThis"); const g = made(); outcome = g === globalThis ? "realm" : "ESCAPED: " + Object.getOwnPropertyNames(Object(g)).slice(0, 30).join(","); }
        catch (e) { outcome = e.name + ": " + e.message; }
        out[label] = { outer, outcome };
      }
      out;
    `);
    for (const [label, value] of Object.entries(report)) {
      const { outer, outcome } = value as { outer: boolean; outcome: string };
      assert.doesNotMatch(outcome, /ESCAPED/, `${label}: ${outcome}`);
      assert.equal(outer, false, `${label} is the carrier's outer Function (${outcome})`);
      assert.equal(outcome, "realm", `${label}: the realm's own Function compiles in the realm`);
    }
  });

  test("no constructor chain from anything the sandbox receives reaches the outer realm", async () => {
    const result = await shared.run(`${PROBE_LIBRARY}\n(async () => {\n${CANDIDATES}\nreturn runProbe();\n})()`);
    if (!result.ok) assert.fail(`the probe failed: ${describeResult(result)}\n${result.error.stack ?? ""}`);
    const report = result.value as { escapes: string[]; outerFunctionCtors: number; outerExamples: string[]; codegen: { blocked: number; realm: number }; candidates: number; outerObjects: string[] };
    assert.deepEqual(report.escapes, [], `constructor chains escaped: ${clip(safeJson(report.escapes), 2000)}`);
    assert.ok(report.candidates >= 150, `the probe looked at only ${report.candidates} objects`);
    // Everything Web APIs hand to the realm is re-homed by the membrane: not one outer object, so
    // no outer Function either (were one reachable, the outer realm's code generation is off too).
    assert.deepEqual(report.outerObjects, [], "objects of the carrier's outer realm reached the sandbox");
    assert.equal(report.outerFunctionCtors, 0, `outer Function constructors reached: ${safeJson(report.outerExamples)}`);
    assert.ok(report.codegen.realm >= 1, "the realm's own Function was never tried, so the probe tested nothing");
    assertResultHasNoHostDetail(result, "constructor-chain probe");
  });

  test("an error the carrier throws at a limit (LimitBreach) leads nowhere either", async () => {
    await withSandbox({ timeoutMs: LONG_TIMEOUT_MS, memoryMb: 128, maxTimers: 0 }, async (sandbox) => {
      // The breach fails the eval (ResourceLimitError), so the probe reports synchronously through the console.
      const result = await sandbox.run(String.raw`
        let breach; try { setTimeout(() => {}, 1); } catch (e) { breach = e; }
        const report = { isObject: typeof breach === "object", outcomes: [] };
        const OUTER = ["Deno", "process", "require", "addEventListener", "reportError"];
        const chains = [
          () => breach.constructor, () => breach.constructor.constructor, () => Object.getPrototypeOf(breach.constructor).constructor,
          () => Object.getPrototypeOf(Object.getPrototypeOf(breach)).constructor.constructor,
        ];
        for (const chain of chains) {
          let F; try { F = chain(); } catch (e) { report.outcomes.push("chain threw " + e.name); continue; }
          for (const body of ["return globalThis", "return this"]) {
            try {
              const made = F(body);
              const g = typeof made === "function" ? made() : made;
              const hits = OUTER.filter((n) => { try { return g !== globalThis && n in Object(g); } catch { return false; } });
              report.outcomes.push(hits.length ? "ESCAPED " + hits.join(",") : "harmless");
            } catch (e) { report.outcomes.push(e.name); }
          }
        }
        try { const fake = new breach.constructor("timeout", "TimeoutError", "made by the sandbox"); report.constructed = typeof fake; } catch (e) { report.constructed = e.name; }
        console.log(JSON.stringify(report));
        1`);
      assertFailedWith(result, [ResourceLimitError], "setTimeout with maxTimers 0");
      const line = result.logs.map((entry) => entry.message).find((message) => message.startsWith("{"));
      assert.ok(line, `the probe logged no report: ${safeJson(result.logs)}`);
      const report = JSON.parse(line) as { isObject: boolean; outcomes: string[] };
      assert.ok(report.isObject, "no breach was caught");
      assert.ok(report.outcomes.length > 0);
      for (const outcome of report.outcomes) assert.doesNotMatch(outcome, /ESCAPED/);
      assertResultHasNoHostDetail(result, "LimitBreach probe");
    });
  });
});

describe("Error.prepareStackTrace, captureStackTrace and CallSites", () => {
  test("CallSites of carrier and Deno frames hand out neither `this` nor the function, and no host path", async () => {
    const result = await shared.run(`${CALLSITE_LIBRARY}\n(async () => {
      stackOf("realm error", () => new Error("x"));
      stackOf("URL error", () => new URL("bad"));
      stackOf("atob error", () => atob("*"));
      stackOf("queueMicrotask error", () => queueMicrotask(1));
      stackOf("clone error", () => structuredClone(() => {}));
      stackOf("outer array map", () => structuredClone([1]).map(() => new Error("m"))[0]);
      stackOf("Headers init getter", () => { let e; new Headers({ get a() { e = new Error("h"); return "1"; } }); return e; });
      stackOf("stream start", () => { let e; new ReadableStream({ start() { e = new Error("s"); } }); return e; });
      stackOf("event listener", () => { let e; const t = new EventTarget(); t.addEventListener("x", () => { e = new Error("l"); }); t.dispatchEvent(new Event("x")); return e; });
      stackOf("structuredClone getter", () => { let e; structuredClone({ get a() { e = new Error("g"); return 1; } }); return e; });
      stackOf("JSON reviver", () => { let e; JSON.parse("[1]", function (k, v) { e = new Error("r"); return v; }); return e; });
      stackOf("captureStackTrace", () => { const o = {}; Error.captureStackTrace(o); return o; });
      stackOf("captureStackTrace with outer fn", () => { const o = {}; Error.captureStackTrace(o, URL); return o; });
      stackOf("deep recursion", function f() { return f(); });
      await crypto.subtle.digest("SHA-256", new Uint8Array(1)).then(() => stackOf("digest continuation", () => new Error("d")));
      await null;
      stackOf("after await", () => new Error("a"));
      await new Promise((resolve) => setTimeout(() => { stackOf("timer callback", () => new Error("t")); resolve(); }, 1));
      await new Promise((resolve) => queueMicrotask(() => { stackOf("microtask", () => new Error("q")); resolve(); }));
      await new Response("x").text().then(() => stackOf("body continuation", () => new Error("b")));
      await fetch("http://a.example/").catch((e) => stackOf("fetch rejection", () => e));
      try { console.log({ [Symbol.for("Deno.customInspect")]() { stackOf("custom inspect in console.log", () => new Error("c")); return "c"; } }); } catch {}
      return callSiteReport();
    })()`);
    if (!result.ok) assert.fail(`the probe failed: ${describeResult(result)}`);
    const report = result.value as CallSiteReport;
    assert.ok(report.sites > 40, `only ${report.sites} call sites were seen`);
    assert.deepEqual(report.leaks, [], `call sites outside the user's code handed out this/function: ${clip(safeJson(report.leaks), 3000)}`);
    assert.deepEqual(report.hostHits, [], "call-site file names (data: URLs decoded) name the host");
    assertNoHostDetail(report.files.join("\n"), "call-site file names");
  });

  test("CallSites seen while the carrier serializes a result or describes a thrown error reveal nothing", async () => {
    const serializing = await shared.run(`${CALLSITE_LIBRARY}
      ({
        get a() { stackOf("serialization getter", () => new Error("s")); return 1; },
        get report() { stackOf("serialization getter 2", () => new Error("s2")); return callSiteReport(); },
      })`);
    if (!serializing.ok) assert.fail(`serializing a getter result failed: ${describeResult(serializing)}`);
    const report = (serializing.value as { report: CallSiteReport }).report;
    assert.deepEqual(report.leaks, [], `call sites during serialization handed out this/function: ${clip(safeJson(report.leaks), 2000)}`);
    assert.ok(report.sites > 0);
    assert.deepEqual(report.hostHits, [], "call sites during serialization name the host");
    assertNoHostDetail(report.files.join("\n"), "call sites during serialization");

    const describing = await shared.run(`${CALLSITE_LIBRARY}
      const e = new Error("boom");
      Object.defineProperty(e, "message", { get() { stackOf("describe getter", () => new Error("m")); const r = callSiteReport(); return JSON.stringify({ sites: r.sites, leaks: r.leaks.slice(0, 5), hostHits: r.hostHits.slice(0, 5), files: r.files.map((f) => f.slice(0, 80)) }); } });
      throw e;`);
    const error = assertFailedWith(describing, [ScriptError], "error with a reporting message getter");
    const text = error.message.replace(/^Error: /, "");
    assertNoHostDetail(text, "call sites while the carrier describes a thrown error");
    const parsed = JSON.parse(text) as CallSiteReport;
    assert.ok(parsed.sites > 0, "the message getter saw no call sites");
    assert.deepEqual(parsed.leaks, [], `call sites in the carrier's error description handed out this/function: ${clip(text, 2000)}`);
    assert.deepEqual(parsed.hostHits, []);
  });

  test("stacks visible inside the sandbox name no host path, wherever they are taken", async () => {
    const result = await shared.run(String.raw`(async () => {
      Error.stackTraceLimit = Infinity;
      const stacks = [];
      const grab = (label, fn) => { try { const e = fn(); stacks.push(label + ": " + String(e && e.stack)); } catch (e) { stacks.push(label + ": " + String(e && e.stack)); } };
      grab("new Error", () => new Error("x"));
      grab("URL", () => new URL("bad"));
      grab("atob", () => atob("*"));
      grab("decoder", () => new TextDecoder("utf-8", { fatal: true }).decode(new Uint8Array([255])));
      grab("Headers", () => new Headers({ "bad header": "x" }));
      grab("clone", () => structuredClone(() => {}));
      grab("queueMicrotask", () => queueMicrotask(1));
      grab("import", () => { throw new Error("sync"); });
      grab("recursion", function f() { return f(); });
      const o = {}; Error.captureStackTrace(o); stacks.push("captureStackTrace: " + o.stack);
      stacks.push("import(): " + (await import("node:os").catch((e) => e.stack)));
      stacks.push("fetch: " + (await fetch("http://a.example/").catch((e) => e.stack)));
      stacks.push("digest: " + (await crypto.subtle.digest("nope", new Uint8Array(1)).catch((e) => e.stack)));
      stacks.push("json: " + (await new Response("{").json().catch((e) => e.stack)));
      stacks.push("wasm: " + (await WebAssembly.compile(new Uint8Array([1])).catch((e) => e.stack)));
      await null;
      grab("after await", () => new Error("a"));
      await new Promise((r) => setTimeout(() => { grab("timer", () => new Error("t")); r(); }, 1));
      stacks.push("source of outer functions: " + [URL, fetch, console.log, setTimeout, queueMicrotask, performance.now, structuredClone, crypto.subtle.digest].map((f) => Function.prototype.toString.call(f)).join("\n"));
      return stacks;
    })()`);
    if (!result.ok) assert.fail(`the probe failed: ${describeResult(result)}`);
    const stacks = result.value as string[];
    assert.ok(stacks.length >= 15);
    for (const stack of stacks) assertNoHostDetail(stack, `a stack inside the sandbox (${stack.slice(0, 40)})`);
  });

  test("a prepareStackTrace that returns hostile values or loops cannot break error reporting", async () => {
    const cases = [
      "Error.prepareStackTrace = () => ({ toString() { throw 1; } }); throw new Error('x')",
      "Error.prepareStackTrace = () => { throw new Error('inner'); }; throw new Error('x')",
      "Error.prepareStackTrace = () => new Proxy({}, {}); throw new Error('x')",
      "Error.prepareStackTrace = () => '    at /work/main/secret.js:1:1\\n    at eval.js:1:1'; throw new Error('x')",
      "Error.prepareStackTrace = (e, s) => s; throw new TypeError('x')",
      "Error.stackTraceLimit = -1; throw new Error('x')",
      "Error.stackTraceLimit = { valueOf() { throw 1; } }; throw new Error('x')",
    ];
    for (const code of cases) {
      const started = performance.now();
      const result = await shared.run(code);
      assertFailedWith(result, [ScriptError], code);
      assert.ok(performance.now() - started < SLACK_MS, `${code}: took ${Math.round(performance.now() - started)} ms`);
      if (!code.includes("/work/main/secret")) assertResultHasNoHostDetail(result, code);
    }
  });
});

describe("hooks that run while the carrier serializes a result", () => {
  const cases: Array<[string, string]> = [
    ["a Proxy result", "new Proxy({}, {})"],
    ["a Proxy with traps", "new Proxy({}, { get() { throw new Error('get'); }, ownKeys() { throw new Error('keys'); }, getPrototypeOf() { throw new Error('proto'); } })"],
    ["a Proxy nested in the result", "({ a: [1, new Proxy([], {})] })"],
    ["a revoked Proxy result", "const r = Proxy.revocable({}, {}); r.revoke(); r.proxy"],
    ["a getter that throws", "({ get a() { throw new Error('getter'); } })"],
    ["a getter that returns a Proxy", "({ get a() { return new Proxy({}, {}); } })"],
    ["a getter that reaches for the outer realm", "({ get a() { return typeof URL.constructor.constructor; } })"],
    ["a toJSON method", "({ toJSON() { return globalThis; }, a: 1 })"],
    ["a toJSON data property", "({ toJSON: 5, a: 1 })"],
    ["Symbol.toPrimitive", "({ [Symbol.toPrimitive]() { throw new Error('prim'); }, a: 1 })"],
    ["a thenable (sync script)", "({ then(resolve) { resolve(globalThis); } })"],
    ["a thenable (module)", "export default { then(resolve) { resolve({ reached: typeof Deno }); } }"],
    ["a promise with a hostile then", "const p = Promise.resolve(1); p.then = function (res, rej) { let reached; try { reached = res.constructor.constructor('return typeof Deno')(); } catch (e) { reached = e.name; } return Promise.prototype.then.call(Promise.resolve({ reached }), res, rej); }; p"],
    ["a promise subclass with Symbol.species", "class P extends Promise { static get [Symbol.species]() { return function (executor) { executor(() => {}, () => {}); }; } }; P.resolve({ species: 1 })"],
    ["an array subclass with Symbol.species", "class A extends Array { static get [Symbol.species]() { throw new Error('species'); } }; A.from([1, 2])"],
    ["an object whose prototype is a Proxy", "Object.create(new Proxy({}, { get() { throw new Error('proto get'); } }))"],
    ["an array with an index getter", "const a = [1, 2, 3]; Object.defineProperty(a, 1, { get() { throw new Error('index'); } }); a"],
    ["an array whose length lies", "const a = [1]; Object.defineProperty(a, 'length', { value: 2 ** 32 - 1 }); a"],
    ["a getter that mutates the result", "const o = { a: 1, get b() { for (let i = 0; i < 1000; i++) o['k' + i] = i; delete o.a; return 2; } }; o"],
    ["a Map with a getter key", "new Map([[{ get k() { throw new Error('key'); } }, 1]])"],
    ["an outer-realm object with getters", "const o = structuredClone({ a: 1 }); Object.defineProperty(o, 'b', { get() { return typeof Deno; }, enumerable: true }); o"],
    ["an Error result with hostile fields", "const e = new Error('x'); Object.defineProperty(e, 'stack', { get() { throw new Error('stack'); } }); e"],
    ["a function", "() => 1"],
    ["a symbol", "Symbol('s')"],
    ["a WeakMap", "new WeakMap()"],
  ];
  for (const [label, code] of cases) {
    test(label, async () => {
      const started = performance.now();
      const result = await shared.run(code);
      const elapsed = performance.now() - started;
      // (A length that lies makes a sparse array too large to count: a limit, also typed.)
      if (!result.ok) assertFailedWith(result, [ScriptError, OutputLimitError], label);
      else {
        const text = safeJson(result.value);
        assert.doesNotMatch(text, /"reached":"(?!undefined"|EvalError")/, `${label}: the result reveals the outer realm: ${clip(text)}`);
      }
      assert.ok(elapsed < SLACK_MS, `${label}: took ${Math.round(elapsed)} ms`);
      assertResultHasNoHostDetail(result, label);
      await assertAnswers(shared, label);
    });
  }
});

describe("throwing values that are not Errors", () => {
  /** Each must end as a ScriptError, fast (well before the timeout), naming no host path. */
  const cases: Array<[string, string]> = [
    ["a Proxy", "throw new Proxy({}, {})"],
    ["a Proxy whose traps throw", "throw new Proxy({}, { get() { throw new Error('trap'); }, getPrototypeOf() { throw new Error('trap'); }, has() { throw new Error('trap'); }, ownKeys() { throw new Error('trap'); } })"],
    ["a revoked Proxy", "const r = Proxy.revocable({}, {}); r.revoke(); throw r.proxy"],
    ["a Proxy of an Error", "throw new Proxy(new Error('inner'), { get() { throw new Error('trap'); } })"],
    ["an object with throwing getters", "throw { get message() { throw 1; }, get name() { throw 2; }, get stack() { throw 3; }, get code() { throw 4; }, get constructor() { throw 5; } }"],
    ["an object with a throwing `code` getter", "throw { get code() { throw new Error('code'); } }"],
    ["an object claiming a timeout code", "throw { code: 'ERR_SCRIPT_EXECUTION_TIMEOUT', message: 'fake' }"],
    ["an object with hostile conversions", "throw { [Symbol.toPrimitive]() { throw 1; }, toString() { throw 2; }, valueOf() { throw 3; } }"],
    ["an object with a throwing custom inspect", "throw { [Symbol.for('Deno.customInspect')]() { throw new Error('inspect'); }, [Symbol.for('nodejs.util.inspect.custom')]() { throw new Error('inspect'); } }"],
    ["an object with a Proxy prototype", "throw Object.create(new Proxy({}, { get() { throw new Error('proto'); }, getPrototypeOf() { throw new Error('proto'); } }))"],
    ["an object with a revoked-Proxy prototype", "const r = Proxy.revocable({}, {}); r.revoke(); throw Object.create(r.proxy)"],
    ["a null-prototype object", "throw Object.create(null)"],
    ["a symbol", "throw Symbol('s')"],
    ["a bigint", "throw 10n ** 100n"],
    ["undefined", "throw undefined"],
    ["null", "throw null"],
    ["a function", "throw function secret() {}"],
    ["a 10 MB string", "throw 'x'.repeat(10 * 1024 * 1024)"],
    ["a deeply nested object", "let o = {}; for (let i = 0; i < 100000; i++) o = { o }; throw o"],
    ["a cyclic object", "const o = {}; o.self = o; throw o"],
    ["an Error whose name getter throws", "const e = new Error('m'); Object.defineProperty(e, 'name', { get() { throw new Error('name'); } }); throw e"],
    ["an Error whose name is an object with a throwing toString", "const e = new Error('m'); Object.defineProperty(e, 'name', { get() { return { toString() { throw 1; } }; } }); throw e"],
    ["an Error whose message is an object with a throwing toString", "const e = new Error('m'); Object.defineProperty(e, 'message', { value: { toString() { throw 1; } } }); throw e"],
    ["an Error whose message is a Symbol", "const e = new Error('m'); Object.defineProperty(e, 'message', { value: Symbol('x') }); throw e"],
    ["an Error whose stack getter throws", "const e = new Error('m'); Object.defineProperty(e, 'stack', { get() { throw new Error('stack'); } }); throw e"],
    ["an Error whose prototype is a Proxy", "const e = new Error('m'); Object.setPrototypeOf(e, new Proxy({}, { get() { throw new Error('trap'); } })); throw e"],
    ["an Error with a huge message", "throw new Error('y'.repeat(5 * 1024 * 1024))"],
    ["an Error with a cyclic cause", "const e = new Error('m'); e.cause = e; throw e"],
    ["an AggregateError of hostile values", "const r = Proxy.revocable({}, {}); r.revoke(); throw new AggregateError([r.proxy, new Proxy({}, {}), Symbol('s')], 'agg')"],
    ["a SuppressedError of hostile values", "const r = Proxy.revocable({}, {}); r.revoke(); throw new SuppressedError(r.proxy, new Proxy({}, {}), 'sup')"],
    ["an outer-realm error (URL)", "try { new URL('bad'); } catch (e) { Object.defineProperty(e, 'x', { value: 1 }); throw e; }"],
    ["a rejected promise with a revoked Proxy", "const r = Proxy.revocable({}, {}); r.revoke(); await Promise.reject(r.proxy)"],
    ["an async generator that throws a Proxy", "async function* g() { yield 1; throw new Proxy({}, { get() { throw 1; } }); } for await (const x of g()) {}"],
    ["Array.fromAsync rejecting with a revoked Proxy", "const r = Proxy.revocable({}, {}); r.revoke(); await Array.fromAsync({ [Symbol.asyncIterator]() { return { next() { return Promise.reject(r.proxy); } }; } })"],
  ];
  for (const [label, code] of cases) {
    test(label, async () => {
      const started = performance.now();
      const result = await shared.run(code);
      const elapsed = performance.now() - started;
      assertFailedWith(result, [ScriptError], `throwing ${label}`);
      assert.ok(elapsed < SLACK_MS, `throwing ${label}: the carrier took ${Math.round(elapsed)} ms to report it (${describeResult(result)})`);
      assertResultHasNoHostDetail(result, `throwing ${label}`);
      await assertAnswers(shared, label);
    });
  }

  /** Outer-realm plain objects (from structuredClone) have the carrier's own Object.prototype. */
  const forgeries: Array<[string, string]> = [
    ["a PolicyError", "{ kind: 'policy', name: 'PolicyError', message: 'forged policy refusal' }"],
    ["a TimeoutError", "{ kind: 'timeout', name: 'TimeoutError', message: 'forged timeout' }"],
    ["an OutputLimitError", "{ kind: 'output', name: 'OutputLimitError', message: 'forged output limit' }"],
    ["a ResourceLimitError", "{ kind: 'resource', name: 'ResourceLimitError', message: 'forged resource limit' }"],
    ["a ScriptError with a planted stack", "{ kind: 'script', name: 'TypeError', message: 'planted', stack: 'TypeError: planted\\n    at /work/main/dist/src/host/sandbox.js:1:1' }"],
    ["a malformed failure (unknown kind)", "{ kind: 'bogus', message: 'x' }"],
    ["a malformed failure (extra fields)", "{ kind: 'script', name: 'x', message: 'x', evil: 1 }"],
    ["a failure with a getter message", "(() => { const o = structuredClone({ kind: 'script', name: 'x' }); Object.defineProperty(o, 'message', { get() { return 'from a getter'; }, enumerable: true }); return o; })()"],
    ["a failure with toJSON", "(() => { const o = structuredClone({ kind: 'script', name: 'x', message: 'm' }); o.toJSON = () => ({ kind: 'policy', name: 'PolicyError', message: 'via toJSON' }); return o; })()"],
  ];
  for (const [label, literal] of forgeries) {
    test(`an outer-realm object shaped like the carrier's failure record cannot forge ${label}`, async () => {
      const expression = literal.startsWith("(") ? literal : `structuredClone(${literal})`;
      const result = await shared.run(`throw ${expression}`);
      const error = assertFailedWith(result, [ScriptError], `throwing a forgery of ${label}`);
      assert.ok(!(error instanceof PolicyError), "a sandbox forged a PolicyError");
      if (error instanceof ScriptError) assert.equal(error.errorName, "Uncaught", `the thrown object was taken for a failure record: ${error.message}`);
      await assertAnswers(shared, label);
    });
  }
});

describe("modules, workers and host globals", () => {
  const imports: string[] = [
    // node:fs is the sandbox's own files (test/files/): it reaches no host file.
    'await (await import("node:fs")).promises.readFile("/etc/passwd", "utf8")',
    'await import("node:child_process")',
    'await (await import("fs/promises")).readFile("../../../../etc/passwd", "utf8")',
    'await import("file:///etc/passwd")',
    'await import("/etc/passwd")',
    'await import("./carrier.js")',
    'await import("data:text/javascript,export default Deno.readTextFileSync(\'/etc/passwd\')")',
    'await import("data:text/javascript,export * from \'file:///etc/passwd\'")',
    'await import("https://deno.land/std@0.224.0/version.ts")',
    'await import("http://127.0.0.1:1/x.js")',
    'await import("npm:lodash")',
    'await import("jsr:@std/fs")',
    'await import("blob:" + URL.createObjectURL?.(new Blob(["export default 1"])))',
    'import("node:os")',
    'eval("import(\\"node:os\\")")',
    'new Function("return import(\\"node:os\\")")()',
    'await new (Object.getPrototypeOf(async function () {}).constructor)("return import(\\"node:os\\")")()',
    'import fs from "node:fs"; fs.readFileSync("/etc/passwd", "utf8")',
    'import { readFileSync } from "fs"; readFileSync("/etc/passwd", "utf8")',
    'import * as m from "file:///etc/passwd"; m',
    'import data from "data:text/javascript,export default 1"; data',
    'import x from "https://deno.land/std/version.ts"; x',
    'export * from "node:os"',
    'export { hostname } from "node:os"',
  ];
  for (const code of imports) {
    test(`refused: ${code}`, async () => {
      const result = await shared.run(code);
      assertFailedWith(result, [ScriptError, PolicyError], code);
      assert.doesNotMatch(result.ok ? "" : result.error.message, /root:|daemon:/, "file contents came back");
      assertResultHasNoHostDetail(result, code);
    });
  }

  test("Worker, require, Deno, process, navigator, location and friends are absent", async () => {
    const names = [
      "Deno", "process", "require", "module", "exports", "Buffer", "global", "setImmediate", "clearImmediate", "Worker", "SharedWorker",
      "navigator", "Navigator", "location", "Location", "localStorage", "sessionStorage", "caches", "BroadcastChannel", "WebSocket",
      "WebSocketStream", "EventSource", "close", "alert", "prompt", "confirm",
      "postMessage", "window", "importScripts", "__dirname", "__filename", "Bun", "XMLHttpRequest", "ShadowRealm",
      "createImageBitmap", "OffscreenCanvas", "GPU", "Lock", "LockManager",
    ];
    const report = await evalOk<Record<string, string>>(shared, `
      const out = {};
      for (const name of ${JSON.stringify(names)}) out[name] = typeof globalThis[name];
      out["symbols on globalThis"] = String(Object.getOwnPropertySymbols(globalThis).length);
      out["Symbol.for('Deno.internal') on globalThis"] = typeof globalThis[Symbol.for("Deno.internal")];
      out["performance keys"] = Object.getOwnPropertyNames(performance).sort().join(",");
      out;
    `);
    for (const name of names) assert.equal(report[name], "undefined", `${name} is visible in the sandbox`);
    assert.equal(report["symbols on globalThis"], "0");
    assert.equal(report["Symbol.for('Deno.internal') on globalThis"], "undefined");
    assert.equal(report["performance keys"], "now,timeOrigin");
  });

  const globalsAttempts: string[] = [
    'new Worker("data:text/javascript,postMessage(Deno.cwd())", { type: "module" })',
    'require("fs")',
    "Deno.readTextFileSync('/etc/passwd')",
    "Deno.cwd()",
    "Deno.execPath()",
    "Deno.env.toObject()",
    "process.cwd()",
    "process.env",
    "navigator.userAgent",
    "location.href",
    "Deno.exit(0)",
  ];
  for (const code of globalsAttempts) {
    test(`fails as a ScriptError: ${code}`, async () => {
      const result = await shared.run(code);
      assertFailedWith(result, [ScriptError], code);
      assertResultHasNoHostDetail(result, code);
      await assertAnswers(shared, code);
    });
  }

  test("host facts: no cwd, pid, hostname, env or home directory is readable", async () => {
    const report = await evalOk<Record<string, unknown>>(shared, String.raw`(async () => {
      const out = {};
      const attempt = async (label, fn) => { try { out[label] = String(await fn()); } catch (e) { out[label] = "threw " + (e && e.name); } };
      await attempt("relative URL", () => new URL(".").href);
      await attempt("relative Request", () => new Request("x").url);
      await attempt("relative fetch", () => fetch("x"));
      await attempt("file fetch", () => fetch("file:///etc/passwd").then((r) => r.text()));
      await attempt("file fetch via Request", () => fetch(new Request("file:///etc/hostname")).then((r) => r.text()));
      await attempt("Intl time zone", () => Intl.DateTimeFormat().resolvedOptions().timeZone);
      await attempt("error in a data: URL", () => new URL("data:text/plain,hello").pathname);
      await attempt("Deno via Symbol.for", () => typeof globalThis[Symbol.for("Deno.core")]);
      return out;
    })()`);
    assertNoHostDetail(safeJson(report), "host facts");
    for (const [label, value] of Object.entries(report)) assert.doesNotMatch(String(value), /root:x:|\/bin\/(ba)?sh/, `${label} read a host file`);
  });
});

describe("no host path in anything returned to the host", () => {
  test("errors of every kind carry no host path in message or sandbox stack", async () => {
    const codes = [
      "new URL('bad')", "atob('*')", "null.x", "undefinedThing", "JSON.parse('{')", "structuredClone(() => {})",
      "await fetch('http://a.example/')", "await import('node:os')", "function f() { f(); } f()", "throw new Error('x')",
      "new Response(null, { status: 1 })", "await crypto.subtle.digest('nope', new Uint8Array(1))", "(", "let let = 1",
      "const x: number = 'a' as any; x.y.z", "await WebAssembly.instantiate(new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1]))",
      "() => 1", "new Proxy({}, {})", "Symbol('s')",
    ];
    for (const code of codes) {
      const result = await shared.run(code);
      assert.equal(result.ok, false, `${code} should fail, got ${describeResult(result)}`);
      assert.ok(!result.ok && result.error instanceof SandboxError);
      assertResultHasNoHostDetail(result, code);
    }
  });

  test("a ScriptError from a TypeScript file name stays within the user's file", async () => {
    const result = await shared.run("const n: number = 1;\nthrow new Error('ts ' + n);", { filename: "agent.ts" });
    const error = assertFailedWith(result, [ScriptError], "ts error");
    assertNoHostDetail(error.stack ?? "", "TypeScript error stack");
    assert.match(error.stack ?? "", /agent\.ts:2/);
  });

  test("a hostile file name cannot pull carrier frames (and their sources) into the returned stack", async () => {
    for (const filename of ["data", "ext", "node", "file", "eval.js:1:1)\n    at /work/x"]) {
      let result: RunResult;
      try {
        result = await shared.run("new URL('bad')", { filename });
      } catch (error) {
        assert.ok(error instanceof TypeError, `a bad filename is refused with a TypeError (${String(error)})`);
        continue;
      }
      assertFailedWith(result, [ScriptError], `filename ${filename}`);
      assertResultHasNoHostDetail(result, `filename ${filename}`);
    }
  });
});

describe("after all of the above", () => {
  test("every sandbox still works and no carrier process leaked", async () => {
    await assertAnswers(shared, "the shared sandbox");
    const before = childPids().length;
    const sandboxes = await Promise.all([1, 2, 3].map(() => Sandbox.create({ timeoutMs: 1_000, memoryMb: 64 })));
    for (const sandbox of sandboxes) await assertAnswers(sandbox, "a new sandbox");
    await Promise.all(sandboxes.map((sandbox) => sandbox.close()));
    // Closed carriers are gone once the host has reaped them, which a busy machine may delay.
    await eventually(() => childPids().length <= before + 4, SLACK_MS);
    const afterCount = childPids().length;
    // Closing kills the sandboxes' carriers; the pool may have started a few warm ones meanwhile.
    assert.ok(afterCount <= before + 4, `child processes: ${before} before, ${afterCount} after closing three sandboxes`);
  });
});
