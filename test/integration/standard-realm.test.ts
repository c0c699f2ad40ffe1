/**
 * Integration: the Web APIs of a realm are the realm's own, as in a browser or in Deno itself.
 *
 * Each API family runs one eval that collects a report (label → what it saw) and compares it
 * whole with what the standard says, so that one broken API shows every difference at once and
 * does not hide the others. The checks are about realm identity, which the carrier's earlier design
 * (Deno's own, deep-frozen objects shared by every realm) did not give:
 * - errors are the realm's TypeError, RangeError, SyntaxError or DOMException (`instanceof`,
 *   `constructor`, prototype), and DOMExceptions carry the right name and code;
 * - results are the realm's own typed arrays, ArrayBuffers, arrays, plain objects, promises,
 *   iterators and read results, also when they arrive later (a resolved or rejected promise);
 * - what user code handed in comes back as itself (chunks, reasons, details, listeners, targets),
 *   and platform objects are the same object each time (`reader.closed`, `crypto.subtle`);
 * - interface objects have WebIDL's shape (names, prototype chains, methods that are not
 *   constructors, brand checks) and can be subclassed and patched, per eval.
 */
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Sandbox, type RunResult } from "../../src/index.js";
import { LONG_TIMEOUT_MS } from "../timing.js";

let shared: Sandbox;
before(async () => {
  // Nothing here is about time: evals get all the time a busy machine needs.
  shared = await Sandbox.create({ timeoutMs: LONG_TIMEOUT_MS, memoryMb: 256 });
});
after(async () => {
  await shared.close();
});

/**
 * In-sandbox helpers. Each `is`/`err` returns the expected name when the value is the realm's own,
 * or a sentence saying what is wrong, so that a failing deepEqual names the problem.
 */
const PRELUDE = String.raw`
const report = {};
const IteratorPrototype = Object.getPrototypeOf(Object.getPrototypeOf([][Symbol.iterator]()));
const AsyncIteratorPrototype = Object.getPrototypeOf(Object.getPrototypeOf(async function* () {}).prototype);
const isRealm = (v) => {
  let p = v;
  for (let i = 0; i < 100 && p !== null && p !== undefined; i++) {
    if (p === Object.prototype) return true;
    p = Object.getPrototypeOf(p);
  }
  return false;
};
const show = (v) => {
  try {
    if (v === null) return "null";
    if (typeof v !== "object" && typeof v !== "function") return typeof v + " " + String(v);
    let name = "?";
    try { name = v.constructor && v.constructor.name; } catch {}
    return typeof v + " " + name + (isRealm(v) ? "" : " of another realm");
  } catch (e) { return "unshowable"; }
};
const mismatch = (v, Ctor) => {
  const wrong = [];
  if (!isRealm(v)) wrong.push("not of this realm");
  if (!(v instanceof Ctor)) wrong.push("not instanceof " + Ctor.name);
  if (Object.getPrototypeOf(v) !== Ctor.prototype) wrong.push("prototype is not " + Ctor.name + ".prototype");
  if (v.constructor !== Ctor) wrong.push("constructor is not " + Ctor.name);
  return wrong;
};
/** Ctor.name if v is this realm's own instance of Ctor, else what is wrong with it. */
const is = (v, Ctor) => {
  if ((typeof v !== "object" && typeof v !== "function") || v === null) return "not an object: " + show(v);
  const wrong = mismatch(v, Ctor);
  if (Ctor === Array && !Array.isArray(v)) wrong.push("not Array.isArray");
  return wrong.length ? wrong.join(", ") + " (" + show(v) + ")" : Ctor.name;
};
/** "Name" (or "Name code") if e is this realm's own Ctor error with that name and code. */
const err = (e, Ctor, name, code) => {
  if ((typeof e !== "object" && typeof e !== "function") || e === null) return "not an error: " + show(e);
  const wrong = mismatch(e, Ctor);
  if (!(e instanceof Error)) wrong.push("not instanceof Error");
  const wanted = name === undefined ? Ctor.name : name;
  if (e.name !== wanted) wrong.push("name is " + e.name);
  if (code !== undefined && e.code !== code) wrong.push("code is " + e.code);
  if (typeof e.message !== "string") wrong.push("message is " + typeof e.message);
  return wrong.length ? wrong.join(", ") + " (" + show(e) + ": " + e.message + ")" : wanted + (code === undefined ? "" : " " + code);
};
const throws = (fn, Ctor, name, code) => {
  try { fn(); } catch (e) { return err(e, Ctor, name, code); }
  return "did not throw";
};
/** For operations that return a promise: the realm's own promise, rejected with the realm's own error. */
const rejects = async (fn, Ctor, name, code) => {
  let p;
  try { p = fn(); } catch (e) { return "threw instead of rejecting: " + err(e, Ctor, name, code); }
  const kind = is(p, Promise);
  if (kind !== "Promise") return "returned " + kind;
  try { await p; } catch (e) { return err(e, Ctor, name, code); }
  return "did not reject";
};
/** Throwing or rejecting, either way with this realm's own error (for sweeps over APIs whose style varies). */
const failsWith = async (fn, Ctor) => {
  let p;
  try { p = fn(); } catch (e) { return err(e, Ctor); }
  if (p && typeof p.then === "function") {
    const kind = is(p, Promise);
    try { await p; } catch (e) { return kind === "Promise" ? err(e, Ctor) : "returned " + kind; }
  }
  return "did not fail";
};
/**
 * What \`promise\` has done by the time \`later\` (which settles after it, if all is well) settles:
 * an operation that never settles shows as "pending" instead of hanging the eval.
 */
const settledBy = async (promise, later) => {
  let state = "pending";
  promise.then((value) => { state = { value }; }, (error) => { state = { error }; });
  try { await later; } catch {}
  for (let i = 0; i < 10; i++) await null;
  return state;
};
const isConstructor = (f) => {
  if (typeof f !== "function") return false;
  try { Reflect.construct(String, [], f); return true; } catch { return false; }
};
const iterates = (it) => {
  if (!IteratorPrototype.isPrototypeOf(it)) return "not an iterator of this realm (" + show(it) + ")";
  if (typeof it.toArray !== "function") return "no toArray";
  return "iterator";
};
const hex = (b) => [...new Uint8Array(b)].map((x) => x.toString(16).padStart(2, "0")).join("");
const describeThrown = (e) => { try { return "threw " + show(e) + ": " + (e && e.message); } catch { return "threw"; } };
const check = (label, fn) => { try { report[label] = fn(); } catch (e) { report[label] = describeThrown(e); } };
const checkAsync = async (label, fn) => { try { report[label] = await fn(); } catch (e) { report[label] = describeThrown(e); } };
`;

function describeFailure(result: RunResult): string {
  return result.ok ? "" : `${result.error.name}: ${result.error.message}\n${result.error.stack ?? ""}`;
}

/** Runs one family's checks in `sandbox` and returns its report. */
async function reportOf(code: string, sandbox: Sandbox = shared): Promise<Record<string, unknown>> {
  // Inside a function: a persistent sandbox keeps top-level declarations, and every family declares the same helpers.
  const result = await sandbox.run(`(async () => {\n${PRELUDE}\n${code}\nreturn report;\n})()`, { filename: "conformance.js" });
  if (!result.ok) assert.fail(`the checks did not run to the end: ${describeFailure(result)}`);
  return result.value as Record<string, unknown>;
}

async function expectReport(code: string, expected: Record<string, unknown>, sandbox: Sandbox = shared): Promise<void> {
  assert.deepEqual(await reportOf(code, sandbox), expected);
}

/** The Web API interfaces a realm gets (the carrier's SHARED_WEB_APIS that are classes). */
const INTERFACES = [
  "URL", "URLSearchParams", "URLPattern", "TextEncoder", "TextDecoder", "TextEncoderStream", "TextDecoderStream",
  "Blob", "File", "FormData", "AbortController", "AbortSignal", "Event", "EventTarget",
  "CustomEvent", "ErrorEvent", "MessageEvent", "ProgressEvent", "PromiseRejectionEvent", "CloseEvent", "DOMException",
  "ReadableStream", "ReadableStreamDefaultReader", "ReadableStreamBYOBReader", "ReadableStreamBYOBRequest",
  "ReadableStreamDefaultController", "ReadableByteStreamController", "WritableStream", "WritableStreamDefaultWriter",
  "WritableStreamDefaultController", "TransformStream", "TransformStreamDefaultController", "ByteLengthQueuingStrategy",
  "CountQueuingStrategy", "CompressionStream", "DecompressionStream", "Headers", "Request", "Response",
  "Crypto", "SubtleCrypto", "CryptoKey",
];

describe("each API family: errors, results and identities are the realm's own", () => {
  test("URL, URLSearchParams, URLPattern", async () => {
    await expectReport(String.raw`
      const u = new URL("https://user:pw@example.com:8080/p/a?x=1&y=2#h");
      check("new URL()", () => is(u, URL));
      check("url.searchParams", () => [is(u.searchParams, URLSearchParams), u.searchParams === u.searchParams]);
      check("searchParams writes through to the URL", () => { u.searchParams.append("z", "a b"); return u.href; });
      check("toJSON and String()", () => [u.toJSON() === u.href, String(u) === u.href]);
      check("new URL('bad')", () => throws(() => new URL("bad"), TypeError));
      check("URL() without new", () => throws(() => URL("http://a/"), TypeError));
      check("URL.prototype.toString.call({})", () => throws(() => URL.prototype.toString.call({}), TypeError));
      check("the href getter on a plain object", () => throws(() => Object.getOwnPropertyDescriptor(URL.prototype, "href").get.call({}), TypeError));
      check("setting href to an invalid URL", () => throws(() => { new URL("http://a/").href = "bad"; }, TypeError));
      check("URL.canParse", () => [URL.canParse("http://a/"), URL.canParse("bad"), URL.canParse("b", "http://a/")]);
      check("URL.parse", () => [is(URL.parse("http://a/b"), URL), URL.parse("bad")]);
      check("a URL object as input and as base", () => [new URL(new URL("http://a/b/")).href, new URL("c", new URL("http://a/b/")).href]);
      const p = new URLSearchParams("a=1&a=2&b=3");
      check("getAll()", () => [is(p.getAll("a"), Array), p.getAll("a")]);
      check("entries()", () => iterates(p.entries()));
      check("entries().toArray()", () => { const all = p.entries().toArray(); return [is(all, Array), is(all[0], Array), all]; });
      check("keys().next()", () => { const r = p.keys().next(); return [is(r, Object), r.value, r.done]; });
      check("[Symbol.iterator] is entries", () => URLSearchParams.prototype[Symbol.iterator] === URLSearchParams.prototype.entries);
      check("spreading", () => { const all = [...p]; return [is(all, Array), is(all[0], Array)]; });
      check("forEach", () => { const seen = []; const thisArg = {}; p.forEach(function (v, k, o) { seen.push([v, k, o === p, this === thisArg]); }, thisArg); return seen; });
      check("a record and a Map as init", () => [new URLSearchParams({ k: "v", n: 1 }).toString(), new URLSearchParams(new Map([["m", "1"]])).toString()]);
      check("a pair of one", () => throws(() => new URLSearchParams([["a"]]), TypeError));
      check("URLSearchParams.prototype.get on a URL", () => throws(() => URLSearchParams.prototype.get.call(u, "x"), TypeError));
      const pattern = new URLPattern({ pathname: "/books/:id" });
      check("new URLPattern()", () => [is(pattern, URLPattern), pattern.pathname]);
      check("test()", () => [pattern.test("https://x.example/books/12"), pattern.test("https://x.example/films/1")]);
      check("exec()", () => {
        const m = pattern.exec("https://x.example/books/12");
        return [is(m, Object), is(m.pathname, Object), is(m.pathname.groups, Object), m.pathname.groups.id, is(m.inputs, Array), m.inputs];
      });
      check("exec() without a match", () => pattern.exec("https://x.example/films/1"));
      check("new URLPattern('(')", () => throws(() => new URLPattern("("), TypeError));
    `, {
      "new URL()": "URL",
      "url.searchParams": ["URLSearchParams", true],
      "searchParams writes through to the URL": "https://user:pw@example.com:8080/p/a?x=1&y=2&z=a+b#h",
      "toJSON and String()": [true, true],
      "new URL('bad')": "TypeError",
      "URL() without new": "TypeError",
      "URL.prototype.toString.call({})": "TypeError",
      "the href getter on a plain object": "TypeError",
      "setting href to an invalid URL": "TypeError",
      "URL.canParse": [true, false, true],
      "URL.parse": ["URL", null],
      "a URL object as input and as base": ["http://a/b/", "http://a/b/c"],
      "getAll()": ["Array", ["1", "2"]],
      "entries()": "iterator",
      "entries().toArray()": ["Array", "Array", [["a", "1"], ["a", "2"], ["b", "3"]]],
      "keys().next()": ["Object", "a", false],
      "[Symbol.iterator] is entries": true,
      "spreading": ["Array", "Array"],
      "forEach": [["1", "a", true, true], ["2", "a", true, true], ["3", "b", true, true]],
      "a record and a Map as init": ["k=v&n=1", "m=1"],
      "a pair of one": "TypeError",
      "URLSearchParams.prototype.get on a URL": "TypeError",
      "new URLPattern()": ["URLPattern", "/books/:id"],
      "test()": [true, false],
      "exec()": ["Object", "Object", "Object", "12", "Array", ["https://x.example/books/12"]],
      "exec() without a match": null,
      "new URLPattern('(')": "TypeError",
    });
  });

  test("TextEncoder, TextDecoder, their streams, atob and btoa", async () => {
    await expectReport(String.raw`
      const encoded = new TextEncoder().encode("h€");
      check("encode()", () => [is(encoded, Uint8Array), is(encoded.buffer, ArrayBuffer), [...encoded]]);
      check("encodeInto()", () => { const into = new Uint8Array(8); const r = new TextEncoder().encodeInto("ab", into); return [is(r, Object), r.read, r.written, into[0]]; });
      check("decode() of a view, an ArrayBuffer, a DataView", () => [new TextDecoder().decode(encoded), new TextDecoder().decode(encoded.buffer), new TextDecoder().decode(new DataView(encoded.buffer))]);
      check("decode() with stream: true", () => { const d = new TextDecoder(); return d.decode(new Uint8Array([226, 130]), { stream: true }) + d.decode(new Uint8Array([172])); });
      check("TextDecoder options", () => { const d = new TextDecoder("utf-16le", { ignoreBOM: true }); return [d.encoding, d.fatal, d.ignoreBOM]; });
      check("an unknown encoding", () => throws(() => new TextDecoder("nope"), RangeError));
      check("fatal decoding of bad bytes", () => throws(() => new TextDecoder("utf-8", { fatal: true }).decode(new Uint8Array([0xff])), TypeError));
      check("decode(5)", () => throws(() => new TextDecoder().decode(5), TypeError));
      check("TextEncoder.prototype.encode.call({})", () => throws(() => TextEncoder.prototype.encode.call({}, "a"), TypeError));
      await checkAsync("TextEncoderStream", async () => {
        const ts = new TextEncoderStream();
        const writer = ts.writable.getWriter();
        writer.write("a€");
        writer.close();
        const reader = ts.readable.getReader();
        const first = await reader.read();
        return [is(ts.readable, ReadableStream), is(ts.writable, WritableStream), ts.encoding, is(first, Object), is(first.value, Uint8Array), is(first.value.buffer, ArrayBuffer), [...first.value], (await reader.read()).done];
      });
      await checkAsync("TextDecoderStream", async () => {
        const ts = new TextDecoderStream();
        const writer = ts.writable.getWriter();
        writer.write(new Uint8Array([104, 226, 130]));
        writer.write(new Uint8Array([172]));
        writer.close();
        let text = "";
        for await (const chunk of ts.readable) text += chunk;
        return [ts.encoding, text];
      });
      await checkAsync("a fatal TextDecoderStream", async () => {
        const ts = new TextDecoderStream("utf-8", { fatal: true });
        const writer = ts.writable.getWriter();
        writer.write(new Uint8Array([0xff])).catch(() => {});
        writer.close().catch(() => {});
        return rejects(() => ts.readable.getReader().read(), TypeError);
      });
      check("new TextDecoderStream('nope')", () => throws(() => new TextDecoderStream("nope"), RangeError));
      check("btoa and atob", () => [btoa("hello"), atob("aGVsbG8="), atob(" aGVs bG8= "), btoa({ toString() { return "ab"; } })]);
      check("atob('*')", () => throws(() => atob("*"), DOMException, "InvalidCharacterError", 5));
      check("btoa('€')", () => throws(() => btoa("€"), DOMException, "InvalidCharacterError", 5));
      check("atob() without an argument", () => throws(() => atob(), TypeError));
    `, {
      "encode()": ["Uint8Array", "ArrayBuffer", [104, 226, 130, 172]],
      "encodeInto()": ["Object", 2, 2, 97],
      "decode() of a view, an ArrayBuffer, a DataView": ["h€", "h€", "h€"],
      "decode() with stream: true": "€",
      "TextDecoder options": ["utf-16le", false, true],
      "an unknown encoding": "RangeError",
      "fatal decoding of bad bytes": "TypeError",
      "decode(5)": "TypeError",
      "TextEncoder.prototype.encode.call({})": "TypeError",
      "TextEncoderStream": ["ReadableStream", "WritableStream", "utf-8", "Object", "Uint8Array", "ArrayBuffer", [97, 226, 130, 172], true],
      "TextDecoderStream": ["utf-8", "h€"],
      "a fatal TextDecoderStream": "TypeError",
      "new TextDecoderStream('nope')": "RangeError",
      "btoa and atob": ["aGVsbG8=", "hello", "hello", "YWI="],
      "atob('*')": "InvalidCharacterError 5",
      "btoa('€')": "InvalidCharacterError 5",
      "atob() without an argument": "TypeError",
    });
  });

  test("Blob, File, FormData", async () => {
    await expectReport(String.raw`
      const blob = new Blob(["hello ", new Uint8Array([119, 111]), new Blob(["rld"])], { type: "Text/Plain" });
      check("new Blob()", () => [is(blob, Blob), blob.size, blob.type]);
      await checkAsync("text()", async () => { const p = blob.text(); return [is(p, Promise), await p]; });
      await checkAsync("arrayBuffer()", async () => { const b = await blob.arrayBuffer(); return [is(b, ArrayBuffer), b.byteLength]; });
      await checkAsync("bytes()", async () => { const b = await blob.bytes(); return [is(b, Uint8Array), is(b.buffer, ArrayBuffer), b[0]]; });
      await checkAsync("slice()", async () => { const s = blob.slice(6, 11, "A/B"); return [is(s, Blob), s.type, await s.text()]; });
      await checkAsync("stream()", async () => {
        const s = blob.stream();
        const first = await s.getReader().read();
        return [is(s, ReadableStream), is(first, Object), is(first.value, Uint8Array), is(first.value.buffer, ArrayBuffer)];
      });
      check("new Blob('x')", () => throws(() => new Blob("x"), TypeError));
      check("an unknown endings", () => throws(() => new Blob([], { endings: "nope" }), TypeError));
      check("Blob.prototype.slice.call({})", () => throws(() => Blob.prototype.slice.call({}), TypeError));
      await checkAsync("Blob.prototype.text.call({}) rejects", () => rejects(() => Blob.prototype.text.call({}), TypeError));
      const file = new File(["ab", blob], "name.txt", { type: "text/plain", lastModified: 42 });
      check("new File()", () => [is(file, File), file instanceof Blob, file.name, file.size, file.type, file.lastModified]);
      check("File extends Blob", () => [Object.getPrototypeOf(File) === Blob, File.prototype instanceof Blob, Object.getPrototypeOf(File.prototype) === Blob.prototype]);
      await checkAsync("a File's text()", () => file.text());
      check("new File(['a'])", () => throws(() => new File(["a"]), TypeError));
      const form = new FormData();
      form.append("s", "v");
      form.append("f", file);
      form.append("b", blob);
      form.append("s", "w");
      check("new FormData()", () => is(form, FormData));
      check("get() gives back the File itself", () => form.get("f") === file);
      check("a Blob becomes a File named blob", () => { const b = form.get("b"); return [is(b, File), b.name, b === form.get("b")]; });
      check("getAll()", () => [is(form.getAll("s"), Array), form.getAll("s")]);
      check("entries()", () => iterates(form.entries()));
      check("entries().toArray()", () => { const all = form.entries().toArray(); return [is(all, Array), is(all[0], Array), all.length, all[1][1] === file]; });
      check("[Symbol.iterator] is entries", () => FormData.prototype[Symbol.iterator] === FormData.prototype.entries);
      check("new FormData(123)", () => throws(() => new FormData(123), TypeError));
      check("append() with one argument", () => throws(() => form.append("a"), TypeError));
      await checkAsync("a FormData body read back", async () => {
        const back = await new Response(form).formData();
        return [is(back, FormData), back.get("s"), is(back.get("f"), File), back.get("f").name, await back.get("f").text()];
      });
    `, {
      "new Blob()": ["Blob", 11, "text/plain"],
      "text()": ["Promise", "hello world"],
      "arrayBuffer()": ["ArrayBuffer", 11],
      "bytes()": ["Uint8Array", "ArrayBuffer", 104],
      "slice()": ["Blob", "a/b", "world"],
      "stream()": ["ReadableStream", "Object", "Uint8Array", "ArrayBuffer"],
      "new Blob('x')": "TypeError",
      "an unknown endings": "TypeError",
      "Blob.prototype.slice.call({})": "TypeError",
      "Blob.prototype.text.call({}) rejects": "TypeError",
      "new File()": ["File", true, "name.txt", 13, "text/plain", 42],
      "File extends Blob": [true, true, true],
      "a File's text()": "abhello world",
      "new File(['a'])": "TypeError",
      "new FormData()": "FormData",
      "get() gives back the File itself": true,
      "a Blob becomes a File named blob": ["File", "blob", true],
      "getAll()": ["Array", ["v", "w"]],
      "entries()": "iterator",
      "entries().toArray()": ["Array", "Array", 4, true],
      "[Symbol.iterator] is entries": true,
      "new FormData(123)": "TypeError",
      "append() with one argument": "TypeError",
      "a FormData body read back": ["FormData", "v", "File", "name.txt", "abhello world"],
    });
  });

  test("AbortController and AbortSignal (abort, timeout, any)", async () => {
    await expectReport(String.raw`
      const controller = new AbortController();
      const signal = controller.signal;
      check("new AbortController()", () => [is(controller, AbortController), is(signal, AbortSignal), signal === controller.signal, signal instanceof EventTarget, signal.aborted]);
      const events = [];
      const onabort = function (e) { events.push(["onabort", this === signal, is(e, Event), e.type, e.target === signal, e.currentTarget === signal]); };
      signal.onabort = onabort;
      signal.addEventListener("abort", function (e) { events.push(["listener", this === signal, is(e, Event), e.target === signal]); });
      check("onabort reads back the handler", () => signal.onabort === onabort);
      controller.abort();
      controller.abort("again");
      check("abort() fires onabort, then the listener, once", () => events);
      check("the default reason", () => err(signal.reason, DOMException, "AbortError", 20));
      check("the reason is the same object each time", () => signal.reason === signal.reason);
      check("throwIfAborted() throws the reason itself", () => { try { signal.throwIfAborted(); } catch (e) { return e === signal.reason; } return "did not throw"; });
      check("a reason of the user's own comes back as itself", () => {
        const c = new AbortController();
        const reason = { mine: true };
        c.abort(reason);
        let thrown;
        try { c.signal.throwIfAborted(); } catch (e) { thrown = e; }
        return [c.signal.reason === reason, thrown === reason];
      });
      check("AbortSignal.abort()", () => { const s = AbortSignal.abort(); return [is(s, AbortSignal), s.aborted, err(s.reason, DOMException, "AbortError", 20)]; });
      check("AbortSignal.abort(reason)", () => { const reason = new RangeError("r"); return AbortSignal.abort(reason).reason === reason; });
      await checkAsync("AbortSignal.timeout()", async () => {
        const s = AbortSignal.timeout(1);
        const kind = is(s, AbortSignal);
        const event = await new Promise((resolve) => s.addEventListener("abort", resolve));
        return [kind, is(event, Event), event.target === s, s.aborted, err(s.reason, DOMException, "TimeoutError", 23)];
      });
      check("AbortSignal.timeout(-1)", () => throws(() => AbortSignal.timeout(-1), TypeError));
      check("AbortSignal.any()", () => {
        const a = new AbortController();
        const b = new AbortController();
        const any = AbortSignal.any([a.signal, b.signal]);
        const before = any.aborted;
        const reason = {};
        b.abort(reason);
        return [is(any, AbortSignal), before, any.aborted, any.reason === reason];
      });
      check("AbortSignal.any() of an aborted signal", () => { const reason = {}; return AbortSignal.any([AbortSignal.abort(reason)]).reason === reason; });
      check("AbortSignal.any([1])", () => throws(() => AbortSignal.any([1]), TypeError));
      check("new AbortSignal()", () => throws(() => new AbortSignal(), TypeError));
      check("AbortController.prototype.abort.call({})", () => throws(() => AbortController.prototype.abort.call({}), TypeError));
      check("an AbortSignal in listener options", () => {
        const t = new EventTarget();
        const c = new AbortController();
        let n = 0;
        t.addEventListener("x", () => n++, { signal: c.signal });
        t.dispatchEvent(new Event("x"));
        c.abort();
        t.dispatchEvent(new Event("x"));
        return n;
      });
    `, {
      "new AbortController()": ["AbortController", "AbortSignal", true, true, false],
      "onabort reads back the handler": true,
      "abort() fires onabort, then the listener, once": [["onabort", true, "Event", "abort", true, true], ["listener", true, "Event", true]],
      "the default reason": "AbortError 20",
      "the reason is the same object each time": true,
      "throwIfAborted() throws the reason itself": true,
      "a reason of the user's own comes back as itself": [true, true],
      "AbortSignal.abort()": ["AbortSignal", true, "AbortError 20"],
      "AbortSignal.abort(reason)": true,
      "AbortSignal.timeout()": ["AbortSignal", "Event", true, true, "TimeoutError 23"],
      "AbortSignal.timeout(-1)": "TypeError",
      "AbortSignal.any()": ["AbortSignal", false, true, true],
      "AbortSignal.any() of an aborted signal": true,
      "AbortSignal.any([1])": "TypeError",
      "new AbortSignal()": "TypeError",
      "AbortController.prototype.abort.call({})": "TypeError",
      "an AbortSignal in listener options": 1,
    });
  });

  test("Event, EventTarget, CustomEvent, ErrorEvent, MessageEvent, ProgressEvent, PromiseRejectionEvent, CloseEvent", async () => {
    await expectReport(String.raw`
      const promise = Promise.resolve();
      check("each event interface", () => [Event, CustomEvent, ErrorEvent, MessageEvent, ProgressEvent, PromiseRejectionEvent, CloseEvent].map((C) => {
        const e = C === PromiseRejectionEvent ? new C("t", { promise }) : new C("t");
        return [C.name, is(e, C), e instanceof Event, C === Event || Object.getPrototypeOf(C) === Event, C === Event || Object.getPrototypeOf(C.prototype) === Event.prototype];
      }));
      const target = new EventTarget();
      const dispatched = new CustomEvent("ping", { detail: { n: 1 }, cancelable: true });
      let seen;
      target.addEventListener("ping", function (e) {
        seen = [this === target, e === dispatched, is(e, CustomEvent), e.target === target, e.currentTarget === target,
          is(e.composedPath(), Array), e.composedPath()[0] === target, e.detail === dispatched.detail, e.eventPhase];
        e.preventDefault();
      });
      check("dispatchEvent() of a cancelled event", () => target.dispatchEvent(dispatched));
      check("what the listener got", () => seen);
      check("the event after dispatch", () => [dispatched.defaultPrevented, dispatched.target === target, dispatched.currentTarget, dispatched.eventPhase]);
      check("detail is the object given", () => { const d = {}; return new CustomEvent("x", { detail: d }).detail === d; });
      check("a { handleEvent } listener", () => {
        const t = new EventTarget();
        const listener = { handleEvent(e) { this.got = [this === listener, is(e, Event), e.target === t]; } };
        t.addEventListener("x", listener);
        t.dispatchEvent(new Event("x"));
        return listener.got;
      });
      check("a subclass of EventTarget arrives as itself", () => {
        class Bus extends EventTarget { hello() { return "hi"; } }
        const bus = new Bus();
        let got;
        bus.addEventListener("x", function (e) { got = [this === bus, e.target === bus, e.target instanceof Bus, e.currentTarget.hello()]; });
        bus.dispatchEvent(new Event("x"));
        return got;
      });
      check("a subclass of Event arrives as itself", () => {
        class Ping extends Event { constructor() { super("ping"); this.extra = 1; } }
        const t = new EventTarget();
        const event = new Ping();
        let got;
        t.addEventListener("ping", (e) => { got = [e === event, e instanceof Ping, e.extra]; });
        t.dispatchEvent(event);
        return got;
      });
      check("once, removeEventListener", () => {
        const t = new EventTarget();
        const got = [];
        const listener = () => got.push("l");
        t.addEventListener("x", listener);
        t.addEventListener("x", () => got.push("once"), { once: true });
        t.dispatchEvent(new Event("x"));
        t.removeEventListener("x", listener);
        t.dispatchEvent(new Event("x"));
        return got;
      });
      check("dispatching an event that is being dispatched", () => {
        const t = new EventTarget();
        let inner;
        t.addEventListener("x", (e) => { inner = throws(() => t.dispatchEvent(e), DOMException, "InvalidStateError", 11); });
        t.dispatchEvent(new Event("x"));
        return inner;
      });
      check("ErrorEvent", () => {
        const error = new Error("x");
        const e = new ErrorEvent("error", { message: "m", filename: "f.js", lineno: 3, colno: 4, error });
        return [e.message, e.filename, e.lineno, e.colno, e.error === error];
      });
      check("MessageEvent", () => {
        const data = { d: 1 };
        const e = new MessageEvent("message", { data, origin: "o", lastEventId: "7" });
        return [e.data === data, e.origin, e.lastEventId, is(e.ports, Array), e.ports.length, e.ports === e.ports, e.source];
      });
      check("ProgressEvent", () => { const e = new ProgressEvent("progress", { lengthComputable: true, loaded: 5, total: 10 }); return [e.lengthComputable, e.loaded, e.total]; });
      check("PromiseRejectionEvent", () => {
        const reason = {};
        const e = new PromiseRejectionEvent("unhandledrejection", { promise, reason });
        return [e.promise === promise, e.reason === reason];
      });
      check("CloseEvent", () => { const e = new CloseEvent("close", { code: 1000, reason: "bye", wasClean: true }); return [e.code, e.reason, e.wasClean]; });
      check("new Event()", () => throws(() => new Event(), TypeError));
      check("Event() without new", () => throws(() => Event("x"), TypeError));
      check("EventTarget.prototype.dispatchEvent.call(target, {})", () => throws(() => target.dispatchEvent({ type: "x" }), TypeError));
      check("isTrusted", () => [new Event("x").isTrusted, new CustomEvent("x").isTrusted]);
      check("Event constants", () => [Event.NONE, Event.CAPTURING_PHASE, Event.AT_TARGET, Event.BUBBLING_PHASE, new Event("x").AT_TARGET]);
      check("listener options read through getters", () => {
        const t = new EventTarget();
        let n = 0;
        t.addEventListener("x", () => n++, { get once() { return true; } });
        t.dispatchEvent(new Event("x"));
        t.dispatchEvent(new Event("x"));
        return n;
      });
    `, {
      "each event interface": [
        ["Event", "Event", true, true, true],
        ["CustomEvent", "CustomEvent", true, true, true],
        ["ErrorEvent", "ErrorEvent", true, true, true],
        ["MessageEvent", "MessageEvent", true, true, true],
        ["ProgressEvent", "ProgressEvent", true, true, true],
        ["PromiseRejectionEvent", "PromiseRejectionEvent", true, true, true],
        ["CloseEvent", "CloseEvent", true, true, true],
      ],
      "dispatchEvent() of a cancelled event": false,
      "what the listener got": [true, true, "CustomEvent", true, true, "Array", true, true, 2],
      "the event after dispatch": [true, true, null, 0],
      "detail is the object given": true,
      "a { handleEvent } listener": [true, "Event", true],
      "a subclass of EventTarget arrives as itself": [true, true, true, "hi"],
      "a subclass of Event arrives as itself": [true, true, 1],
      "once, removeEventListener": ["l", "once"],
      "dispatching an event that is being dispatched": "InvalidStateError 11",
      "ErrorEvent": ["m", "f.js", 3, 4, true],
      "MessageEvent": [true, "o", "7", "Array", 0, true, null],
      "ProgressEvent": [true, 5, 10],
      "PromiseRejectionEvent": [true, true],
      "CloseEvent": [1000, "bye", true],
      "new Event()": "TypeError",
      "Event() without new": "TypeError",
      "EventTarget.prototype.dispatchEvent.call(target, {})": "TypeError",
      "isTrusted": [false, false],
      "Event constants": [0, 1, 2, 3, 2],
      "listener options read through getters": 1,
    });
  });

  test("DOMException", async () => {
    await expectReport(String.raw`
      const e = new DOMException("gone", "NotFoundError");
      check("new DOMException()", () => err(e, DOMException, "NotFoundError", 8));
      check("message and string forms", () => [e.message, String(e), Object.prototype.toString.call(e)]);
      check("prototype chain", () => [DOMException.prototype instanceof Error, Object.getPrototypeOf(DOMException.prototype) === Error.prototype, Object.getPrototypeOf(DOMException) === Function.prototype]);
      check("defaults", () => { const d = new DOMException(); return [d.name, d.message, d.code, d instanceof Error]; });
      check("an unknown name has code 0", () => new DOMException("m", "Whatever").code);
      check("constants", () => [DOMException.NOT_FOUND_ERR, DOMException.DATA_CLONE_ERR, e.ABORT_ERR]);
      check("stack", () => typeof e.stack);
      check("the name getter on a plain object", () => throws(() => Object.getOwnPropertyDescriptor(DOMException.prototype, "name").get.call({}), TypeError));
      check("a subclass", () => {
        class Mine extends DOMException { constructor() { super("m", "SyntaxError"); } }
        const m = new Mine();
        return [m instanceof Mine, m instanceof DOMException, m instanceof Error, m.name, m.code, m.message];
      });
      check("DOMExceptions thrown by Web APIs", () => [
        throws(() => atob("*"), DOMException, "InvalidCharacterError", 5),
        throws(() => structuredClone(Symbol("s")), DOMException, "DataCloneError", 25),
        throws(() => crypto.getRandomValues(new Float32Array(1)), DOMException, "TypeMismatchError", 17),
      ]);
      check("DOMExceptions thrown by Web APIs have a stack", () => [atob, () => structuredClone(Symbol("s"))].map((fn) => {
        try { fn("*"); } catch (x) { return typeof x.stack === "string" && x.stack.startsWith(x.name + ": " + x.message); }
        return "did not throw";
      }));
      await checkAsync("and so do rejections", async () => { try { await crypto.subtle.digest("nope", new Uint8Array(1)); } catch (x) { return typeof x.stack; } });
      check("TypeErrors thrown by Web APIs have a stack", () => { try { new URL("bad"); } catch (x) { return typeof x.stack === "string" && x.stack.startsWith("TypeError: "); } });
      check("QuotaExceededError", () => {
        try { crypto.getRandomValues(new Uint8Array(70000)); } catch (x) { return [x instanceof DOMException, x instanceof Error, isRealm(x), x.name, x.code]; }
        return "did not throw";
      });
      await checkAsync("a rejection with a DOMException", () => rejects(() => crypto.subtle.digest("nope", new Uint8Array(1)), DOMException, "NotSupportedError", 9));
      check("a DOMException thrown by user code through a Web API comes back as itself", () => {
        const mine = new DOMException("x", "AbortError");
        try { new ReadableStream({ start() { throw mine; } }); } catch (x) { return x === mine; }
        return "did not throw";
      });
      check("structuredClone(DOMException)", () => { const c = structuredClone(e); return [err(c, DOMException, "NotFoundError", 8), c.message, c !== e]; });
    `, {
      "new DOMException()": "NotFoundError 8",
      "message and string forms": ["gone", "NotFoundError: gone", "[object DOMException]"],
      "prototype chain": [true, true, true],
      "defaults": ["Error", "", 0, true],
      "an unknown name has code 0": 0,
      "constants": [8, 25, 20],
      "stack": "string",
      "the name getter on a plain object": "TypeError",
      "a subclass": [true, true, true, "SyntaxError", 12, "m"],
      "DOMExceptions thrown by Web APIs": ["InvalidCharacterError 5", "DataCloneError 25", "TypeMismatchError 17"],
      "DOMExceptions thrown by Web APIs have a stack": [true, true],
      "and so do rejections": "string",
      "TypeErrors thrown by Web APIs have a stack": true,
      "QuotaExceededError": [true, true, true, "QuotaExceededError", 22],
      "a rejection with a DOMException": "NotSupportedError 9",
      "a DOMException thrown by user code through a Web API comes back as itself": true,
      "structuredClone(DOMException)": ["NotFoundError 8", "gone", true],
    });
  });

  test("ReadableStream: default streams, readers, controllers", async () => {
    await expectReport(String.raw`
      let startController, pullController, startThis;
      const chunkA = { a: 1 };
      const chunkB = [1, 2];
      const source = {
        start(c) { startController = c; startThis = this; c.enqueue(chunkA); },
        pull(c) { pullController = c; c.enqueue(chunkB); c.close(); },
      };
      const stream = new ReadableStream(source);
      check("new ReadableStream()", () => is(stream, ReadableStream));
      check("start() gets the controller, with the source as this", () => [is(startController, ReadableStreamDefaultController), startThis === source, startController.desiredSize]);
      const reader = stream.getReader();
      check("getReader()", () => [is(reader, ReadableStreamDefaultReader), stream.locked]);
      check("reader.closed", () => [reader.closed === reader.closed, is(reader.closed, Promise)]);
      const first = await reader.read();
      check("read() gives the enqueued chunk itself", () => [is(first, Object), first.value === chunkA, first.done]);
      const second = await reader.read();
      check("pull() gets the same controller", () => [pullController === startController, second.value === chunkB, is(second.value, Array)]);
      const third = await reader.read();
      check("the end", () => [is(third, Object), third.value, third.done]);
      await checkAsync("closed resolves", () => reader.closed);
      check("a second reader", () => throws(() => stream.getReader(), TypeError));
      await checkAsync("cancel(reason)", async () => {
        const reason = { why: 1 };
        let got;
        const s = new ReadableStream({ cancel(r) { got = r; } });
        const p = s.cancel(reason);
        return [is(p, Promise), await p, got === reason];
      });
      await checkAsync("error(e): read() and closed reject with e itself", async () => {
        const e = new RangeError("broken");
        const r = new ReadableStream({ start(c) { c.error(e); } }).getReader();
        let readError, closedError;
        try { await r.read(); } catch (x) { readError = x; }
        try { await r.closed; } catch (x) { closedError = x; }
        return [readError === e, closedError === e];
      });
      check("start() throws: the constructor throws that error", () => {
        const e = new TypeError("mine");
        try { new ReadableStream({ start() { throw e; } }); } catch (x) { return x === e; }
        return "did not throw";
      });
      await checkAsync("pull() rejects: read() rejects with that error", async () => {
        const e = new Error("async");
        try { await new ReadableStream({ async pull() { throw e; } }).getReader().read(); } catch (x) { return x === e; }
        return "did not reject";
      });
      await checkAsync("async iteration", async () => {
        const chunk = {};
        const s = new ReadableStream({ start(c) { c.enqueue(chunk); c.close(); } });
        const it = s.values();
        const r = await it.next();
        return [AsyncIteratorPrototype.isPrototypeOf(it), is(r, Object), r.value === chunk, (await it.next()).done, ReadableStream.prototype[Symbol.asyncIterator] === ReadableStream.prototype.values];
      });
      await checkAsync("for await", async () => {
        const chunks = [{}, {}];
        const got = [];
        for await (const x of new ReadableStream({ start(c) { for (const chunk of chunks) c.enqueue(chunk); c.close(); } })) got.push(x);
        return got.map((x, i) => x === chunks[i]);
      });
      check("tee()", () => { const branches = new ReadableStream().tee(); return [is(branches, Array), is(branches[0], ReadableStream), is(branches[1], ReadableStream)]; });
      await checkAsync("ReadableStream.from()", async () => {
        const items = [{}, {}];
        const s = ReadableStream.from(items);
        const got = [];
        for await (const x of s) got.push(x);
        return [is(s, ReadableStream), got[0] === items[0], got[1] === items[1]];
      });
      check("pipeThrough() returns the transform's readable", () => { const ts = new TransformStream(); return new ReadableStream().pipeThrough(ts) === ts.readable; });
      await checkAsync("pipeTo()", async () => {
        const chunk = {};
        let got;
        const p = new ReadableStream({ start(c) { c.enqueue(chunk); c.close(); } }).pipeTo(new WritableStream({ write(x) { got = x; } }));
        return [is(p, Promise), await p, got === chunk];
      });
      check("a strategy's size() gets the chunk itself", () => {
        const chunk = {};
        let got;
        new ReadableStream({ start(c) { c.enqueue(chunk); } }, { size(x) { got = x; return 1; } });
        return got === chunk;
      });
      check("ReadableStream.prototype.getReader.call({})", () => throws(() => ReadableStream.prototype.getReader.call({}), TypeError));
      check("an unknown type", () => throws(() => new ReadableStream({ type: "nope" }), TypeError));
      check("a negative highWaterMark", () => throws(() => new ReadableStream({}, { highWaterMark: -1 }), RangeError));
      check("an unknown reader mode", () => throws(() => new ReadableStream().getReader({ mode: "nope" }), TypeError));
      check("new ReadableStreamDefaultReader(stream)", () => is(new ReadableStreamDefaultReader(new ReadableStream()), ReadableStreamDefaultReader));
      check("new ReadableStreamDefaultController()", () => throws(() => new ReadableStreamDefaultController(), TypeError));
      await checkAsync("read() after releaseLock()", async () => { const r = new ReadableStream().getReader(); r.releaseLock(); return rejects(() => r.read(), TypeError); });
    `, {
      "new ReadableStream()": "ReadableStream",
      "start() gets the controller, with the source as this": ["ReadableStreamDefaultController", true, 0],
      "getReader()": ["ReadableStreamDefaultReader", true],
      "reader.closed": [true, "Promise"],
      "read() gives the enqueued chunk itself": ["Object", true, false],
      "pull() gets the same controller": [true, true, "Array"],
      "the end": ["Object", undefined, true],
      "closed resolves": undefined,
      "a second reader": "TypeError",
      "cancel(reason)": ["Promise", undefined, true],
      "error(e): read() and closed reject with e itself": [true, true],
      "start() throws: the constructor throws that error": true,
      "pull() rejects: read() rejects with that error": true,
      "async iteration": [true, "Object", true, true, true],
      "for await": [true, true],
      "tee()": ["Array", "ReadableStream", "ReadableStream"],
      "ReadableStream.from()": ["ReadableStream", true, true],
      "pipeThrough() returns the transform's readable": true,
      "pipeTo()": ["Promise", undefined, true],
      "a strategy's size() gets the chunk itself": true,
      "ReadableStream.prototype.getReader.call({})": "TypeError",
      "an unknown type": "TypeError",
      "a negative highWaterMark": "RangeError",
      "an unknown reader mode": "TypeError",
      "new ReadableStreamDefaultReader(stream)": "ReadableStreamDefaultReader",
      "new ReadableStreamDefaultController()": "TypeError",
      "read() after releaseLock()": "TypeError",
    });
  });

  test("ReadableStream: byte streams and the BYOB reader", async () => {
    await expectReport(String.raw`
      let startController;
      new ReadableStream({ type: "bytes", start(c) { startController = c; } });
      check("the byte controller", () => [is(startController, ReadableByteStreamController), startController.byobRequest]);
      await checkAsync("a BYOB read", async () => {
        const log = {};
        const s = new ReadableStream({
          type: "bytes",
          pull(c) {
            const request = c.byobRequest;
            const view = request.view;
            log.request = [is(request, ReadableStreamBYOBRequest), request === c.byobRequest];
            log.view = [is(view, Uint8Array), is(view.buffer, ArrayBuffer), view === request.view, view.byteLength];
            view[0] = 1;
            view[1] = 2;
            request.respond(2);
          },
        });
        const reader = s.getReader({ mode: "byob" });
        const given = new Uint8Array(4);
        const result = await reader.read(given);
        return [is(reader, ReadableStreamBYOBReader), log.request, log.view, is(result, Object), is(result.value, Uint8Array), is(result.value.buffer, ArrayBuffer),
          [...result.value], result.value.buffer.byteLength, result.done, given.byteLength];
      });
      await checkAsync("respondWithNewView()", async () => {
        const s = new ReadableStream({
          type: "bytes",
          pull(c) {
            const view = c.byobRequest.view;
            const mine = new Uint8Array(view.buffer, view.byteOffset, 1);
            mine[0] = 9;
            c.byobRequest.respondWithNewView(mine);
          },
        });
        const result = await s.getReader({ mode: "byob" }).read(new Uint8Array(3));
        return [is(result.value, Uint8Array), [...result.value]];
      });
      await checkAsync("a BYOB read into a DataView", async () => {
        const s = new ReadableStream({ type: "bytes", start(c) { c.enqueue(new Uint8Array([7, 8])); c.close(); } });
        const reader = s.getReader({ mode: "byob" });
        const state = await settledBy(reader.read(new DataView(new ArrayBuffer(2))), reader.closed);
        if (state === "pending") return "the read never settled, though the stream closed after it";
        if (state.error) return describeThrown(state.error);
        return [is(state.value.value, DataView), state.value.value.getUint8(1)];
      });
      await checkAsync("a BYOB read into a view at an offset of a large buffer", async () => {
        const s = new ReadableStream({ type: "bytes", start(c) { c.enqueue(new Uint8Array([4, 5, 6])); c.close(); } });
        const reader = s.getReader({ mode: "byob" });
        const state = await settledBy(reader.read(new Uint8Array(new ArrayBuffer(128 * 1024), 8, 16)), reader.closed);
        if (state === "pending") return "the read never settled, though the stream closed after it";
        if (state.error) return describeThrown(state.error);
        const view = state.value.value;
        return [is(view, Uint8Array), view.byteOffset, view.byteLength, [...view], view.buffer.byteLength];
      });
      await checkAsync("a default read of a byte stream", async () => {
        const s = new ReadableStream({ type: "bytes", start(c) { c.enqueue(new Uint8Array([5, 6])); c.close(); } });
        const r = await s.getReader().read();
        return [is(r, Object), is(r.value, Uint8Array), is(r.value.buffer, ArrayBuffer), [...r.value]];
      });
      await checkAsync("read(new Uint8Array(0))", () => rejects(() => new ReadableStream({ type: "bytes" }).getReader({ mode: "byob" }).read(new Uint8Array(0)), TypeError));
      await checkAsync("read() without a view", () => rejects(() => new ReadableStream({ type: "bytes" }).getReader({ mode: "byob" }).read(), TypeError));
      check("a BYOB reader of a default stream", () => throws(() => new ReadableStream().getReader({ mode: "byob" }), TypeError));
      check("enqueue('x') on a byte stream", () => { let r; new ReadableStream({ type: "bytes", start(c) { r = throws(() => c.enqueue("x"), TypeError); } }); return r; });
      check("new ReadableStreamBYOBReader(stream)", () => is(new ReadableStreamBYOBReader(new ReadableStream({ type: "bytes" })), ReadableStreamBYOBReader));
      check("new ReadableStreamBYOBRequest()", () => throws(() => new ReadableStreamBYOBRequest(), TypeError));
      await checkAsync("tee() of a byte stream", async () => {
        const [a, b] = new ReadableStream({ type: "bytes", start(c) { c.enqueue(new Uint8Array([3])); c.close(); } }).tee();
        const ra = await a.getReader().read();
        const rb = await b.getReader().read();
        return [is(ra.value, Uint8Array), is(rb.value, Uint8Array), ra.value[0], rb.value[0]];
      });
    `, {
      "the byte controller": ["ReadableByteStreamController", null],
      "a BYOB read": ["ReadableStreamBYOBReader", ["ReadableStreamBYOBRequest", true], ["Uint8Array", "ArrayBuffer", true, 4], "Object", "Uint8Array", "ArrayBuffer", [1, 2], 4, false, 0],
      "respondWithNewView()": ["Uint8Array", [9]],
      "a BYOB read into a DataView": ["DataView", 8],
      "a BYOB read into a view at an offset of a large buffer": ["Uint8Array", 8, 3, [4, 5, 6], 128 * 1024],
      "a default read of a byte stream": ["Object", "Uint8Array", "ArrayBuffer", [5, 6]],
      "read(new Uint8Array(0))": "TypeError",
      "read() without a view": "TypeError",
      "a BYOB reader of a default stream": "TypeError",
      "enqueue('x') on a byte stream": "TypeError",
      "new ReadableStreamBYOBReader(stream)": "ReadableStreamBYOBReader",
      "new ReadableStreamBYOBRequest()": "TypeError",
      "tee() of a byte stream": ["Uint8Array", "Uint8Array", 3, 3],
    });
  });

  test("WritableStream", async () => {
    await expectReport(String.raw`
      const log = [];
      let sinkController, sinkThis;
      const sink = {
        start(c) { sinkController = c; sinkThis = this; },
        write(chunk, c) { log.push([chunk, c === sinkController]); },
        close() { log.push("close"); },
      };
      const ws = new WritableStream(sink);
      check("new WritableStream()", () => [is(ws, WritableStream), is(sinkController, WritableStreamDefaultController), sinkThis === sink,
        is(sinkController.signal, AbortSignal), sinkController.signal === sinkController.signal]);
      const writer = ws.getWriter();
      check("getWriter()", () => [is(writer, WritableStreamDefaultWriter), writer.closed === writer.closed, is(writer.closed, Promise), is(writer.ready, Promise), writer.desiredSize]);
      const chunk = { c: 1 };
      const written = writer.write(chunk);
      check("write()", () => is(written, Promise));
      await written;
      await writer.close();
      check("the sink got the chunk itself and its controller", () => [log[0][0] === chunk, log[0][1], log[1]]);
      check("a second writer", () => throws(() => new WritableStream().getWriter() && ws.getWriter(), TypeError));
      await checkAsync("a throwing write() rejects with that error", async () => {
        const e = new Error("w");
        const w = new WritableStream({ write() { throw e; } }).getWriter();
        let a, b;
        try { await w.write(1); } catch (x) { a = x; }
        try { await w.closed; } catch (x) { b = x; }
        return [a === e, b === e];
      });
      await checkAsync("abort(reason): the sink and the signal get the reason itself", async () => {
        const reason = { r: 1 };
        let got, signalReason;
        const s = new WritableStream({
          start(c) { c.signal.addEventListener("abort", () => { signalReason = c.signal.reason; }); },
          abort(r) { got = r; },
        });
        const p = s.abort(reason);
        return [is(p, Promise), await p, got === reason, signalReason === reason];
      });
      await checkAsync("controller.error(e)", async () => {
        const e = new SyntaxError("s");
        let c;
        const w = new WritableStream({ start(x) { c = x; } }).getWriter();
        c.error(e);
        try { await w.closed; } catch (x) { return x === e; }
        return "did not reject";
      });
      check("type: 'bytes'", () => throws(() => new WritableStream({ type: "bytes" }), RangeError));
      check("WritableStream.prototype.getWriter.call({})", () => throws(() => WritableStream.prototype.getWriter.call({}), TypeError));
      await checkAsync("write() after releaseLock()", async () => { const w = new WritableStream().getWriter(); w.releaseLock(); return rejects(() => w.write(1), TypeError); });
      check("new WritableStreamDefaultWriter(stream)", () => is(new WritableStreamDefaultWriter(new WritableStream()), WritableStreamDefaultWriter));
    `, {
      "new WritableStream()": ["WritableStream", "WritableStreamDefaultController", true, "AbortSignal", true],
      "getWriter()": ["WritableStreamDefaultWriter", true, "Promise", "Promise", 1],
      "write()": "Promise",
      "the sink got the chunk itself and its controller": [true, true, "close"],
      "a second writer": "TypeError",
      "a throwing write() rejects with that error": [true, true],
      "abort(reason): the sink and the signal get the reason itself": ["Promise", undefined, true, true],
      "controller.error(e)": true,
      "type: 'bytes'": "RangeError",
      "WritableStream.prototype.getWriter.call({})": "TypeError",
      "write() after releaseLock()": "TypeError",
      "new WritableStreamDefaultWriter(stream)": "WritableStreamDefaultWriter",
    });
  });

  test("TransformStream and the queuing strategies", async () => {
    await expectReport(String.raw`
      let tController, transformThis;
      const seen = [];
      const transformer = {
        start(c) { tController = c; },
        transform(chunk, c) { transformThis = this; seen.push([chunk, c === tController]); c.enqueue({ wrapped: chunk }); },
        flush(c) { c.enqueue("end"); },
      };
      const ts = new TransformStream(transformer);
      check("new TransformStream()", () => [is(ts, TransformStream), is(ts.readable, ReadableStream), is(ts.writable, WritableStream), ts.readable === ts.readable, ts.writable === ts.writable,
        is(tController, TransformStreamDefaultController), tController.desiredSize]);
      await checkAsync("chunks through transform() and flush()", async () => {
        const chunk = { n: 1 };
        const writer = ts.writable.getWriter();
        writer.write(chunk);
        writer.close();
        const got = [];
        for await (const x of ts.readable) got.push(x);
        return [transformThis === transformer, seen[0][0] === chunk, seen[0][1], is(got[0], Object), got[0].wrapped === chunk, got[1]];
      });
      await checkAsync("a throwing transform() errors both sides with that error", async () => {
        const e = new RangeError("t");
        const t = new TransformStream({ transform() { throw e; } });
        const w = t.writable.getWriter();
        // The read first: the readable side has no queue, so a write waits for a reader's demand.
        const read = t.readable.getReader().read();
        let a, b;
        try { await w.write(1); } catch (x) { a = x; }
        try { await read; } catch (x) { b = x; }
        return [a === e, b === e];
      });
      await checkAsync("controller.terminate()", async () => { let c; const t = new TransformStream({ start(x) { c = x; } }); c.terminate(); return (await t.readable.getReader().read()).done; });
      await checkAsync("the identity transform passes chunks as themselves", async () => {
        const t = new TransformStream();
        const chunk = {};
        t.writable.getWriter().write(chunk);
        return (await t.readable.getReader().read()).value === chunk;
      });
      check("readableType", () => throws(() => new TransformStream({ readableType: "bytes" }), RangeError));
      const count = new CountQueuingStrategy({ highWaterMark: 3 });
      const bytes = new ByteLengthQueuingStrategy({ highWaterMark: 16 });
      check("the strategies", () => [is(count, CountQueuingStrategy), count.highWaterMark, count.size(), is(bytes, ByteLengthQueuingStrategy), bytes.highWaterMark, bytes.size(new Uint8Array(5))]);
      check("size is one function of this realm", () => [count.size === count.size, count.size === new CountQueuingStrategy({ highWaterMark: 1 }).size, is(count.size, Function), count.size.name, bytes.size.name]);
      check("size is not a constructor", () => [isConstructor(count.size), isConstructor(bytes.size)]);
      check("new CountQueuingStrategy()", () => throws(() => new CountQueuingStrategy(), TypeError));
      check("a strategy used by a stream", () => { let desired; new ReadableStream({ start(c) { desired = c.desiredSize; } }, count); return desired; });
    `, {
      "new TransformStream()": ["TransformStream", "ReadableStream", "WritableStream", true, true, "TransformStreamDefaultController", 0],
      "chunks through transform() and flush()": [true, true, true, "Object", true, "end"],
      "a throwing transform() errors both sides with that error": [true, true],
      "controller.terminate()": true,
      "the identity transform passes chunks as themselves": true,
      "readableType": "RangeError",
      "the strategies": ["CountQueuingStrategy", 3, 1, "ByteLengthQueuingStrategy", 16, 5],
      "size is one function of this realm": [true, true, "Function", "size", "size"],
      "size is not a constructor": [false, false],
      "new CountQueuingStrategy()": "TypeError",
      "a strategy used by a stream": 3,
    });
  });

  test("CompressionStream and DecompressionStream", async () => {
    await expectReport(String.raw`
      for (const format of ["gzip", "deflate", "deflate-raw"]) {
        await checkAsync(format, async () => {
          const cs = new CompressionStream(format);
          const compressed = new Blob(["hello ".repeat(100)]).stream().pipeThrough(cs);
          const reader = compressed.getReader();
          const chunks = [];
          for (let r = await reader.read(); !r.done; r = await reader.read()) chunks.push(r.value);
          const back = await new Response(new Blob(chunks).stream().pipeThrough(new DecompressionStream(format))).text();
          return [is(cs, CompressionStream), is(cs.readable, ReadableStream), is(cs.writable, WritableStream), chunks.every((c) => is(c, Uint8Array) === "Uint8Array"), back === "hello ".repeat(100)];
        });
      }
      check("an unknown format", () => [throws(() => new CompressionStream("nope"), TypeError), throws(() => new DecompressionStream("nope"), TypeError)]);
      check("no format", () => throws(() => new DecompressionStream(), TypeError));
      await checkAsync("corrupt input", () => rejects(() => new Blob([new Uint8Array([1, 2, 3, 4, 5])]).stream().pipeThrough(new DecompressionStream("gzip")).getReader().read(), TypeError));
    `, {
      "gzip": ["CompressionStream", "ReadableStream", "WritableStream", true, true],
      "deflate": ["CompressionStream", "ReadableStream", "WritableStream", true, true],
      "deflate-raw": ["CompressionStream", "ReadableStream", "WritableStream", true, true],
      "an unknown format": ["TypeError", "TypeError"],
      "no format": "TypeError",
      "corrupt input": "TypeError",
    });
  });

  test("Headers", async () => {
    await expectReport(String.raw`
      const h = new Headers({ "Content-Type": "text/plain", "X-A": "1" });
      h.append("x-a", "2");
      h.append("Set-Cookie", "a=1");
      h.append("Set-Cookie", "b=2");
      check("new Headers()", () => [is(h, Headers), h.get("content-type"), h.get("X-A"), h.has("x-b")]);
      check("entries(), keys(), values()", () => [iterates(h.entries()), iterates(h.keys()), iterates(h.values()), Object.prototype.toString.call(h.entries())]);
      check("entries().toArray()", () => { const all = h.entries().toArray(); return [is(all, Array), is(all[0], Array), all]; });
      check("next()", () => { const r = h.keys().next(); return [is(r, Object), r.value, r.done]; });
      check("[Symbol.iterator] is entries", () => Headers.prototype[Symbol.iterator] === Headers.prototype.entries);
      check("iterator helpers", () => h.keys().filter((k) => k.startsWith("x")).map((k) => k.toUpperCase()).toArray());
      check("spreading and Array.from", () => [is([...h], Array), is(Array.from(h.values()), Array)]);
      check("getSetCookie()", () => [is(h.getSetCookie(), Array), h.getSetCookie()]);
      check("forEach", () => { const got = []; const thisArg = {}; h.forEach(function (v, k, o) { got.push(o === h && this === thisArg); }, thisArg); return got.every(Boolean) && got.length; });
      check("init from Headers, pairs, a Map, getters, a frozen record", () => [
        new Headers(h).get("x-a"),
        new Headers([["a", "1"]]).get("a"),
        new Headers(new Map([["m", "2"]])).get("m"),
        new Headers({ get g() { return "3"; } }).get("g"),
        new Headers(Object.freeze({ f: "4" })).get("f"),
      ]);
      check("an invalid name", () => throws(() => new Headers({ "bad header": "x" }), TypeError));
      check("a pair of one", () => throws(() => new Headers([["a"]]), TypeError));
      check("an invalid value", () => throws(() => new Headers().append("a", "b\nc"), TypeError));
      check("Headers.prototype.get.call({})", () => throws(() => Headers.prototype.get.call({}, "a"), TypeError));
      check("the iterator's next() on another object", () => throws(() => Object.getPrototypeOf(h.entries()).next.call({}), TypeError));
    `, {
      "new Headers()": ["Headers", "text/plain", "1, 2", false],
      "entries(), keys(), values()": ["iterator", "iterator", "iterator", "[object Headers Iterator]"],
      "entries().toArray()": ["Array", "Array", [["content-type", "text/plain"], ["set-cookie", "a=1"], ["set-cookie", "b=2"], ["x-a", "1, 2"]]],
      "next()": ["Object", "content-type", false],
      "[Symbol.iterator] is entries": true,
      "iterator helpers": ["X-A"],
      "spreading and Array.from": ["Array", "Array"],
      "getSetCookie()": ["Array", ["a=1", "b=2"]],
      "forEach": 4,
      "init from Headers, pairs, a Map, getters, a frozen record": ["1, 2", "1", "2", "3", "4"],
      "an invalid name": "TypeError",
      "a pair of one": "TypeError",
      "an invalid value": "TypeError",
      "Headers.prototype.get.call({})": "TypeError",
      "the iterator's next() on another object": "TypeError",
    });
  });

  test("Request, Response and the body mixins", async () => {
    await expectReport(String.raw`
      const controller = new AbortController();
      const req = new Request("https://example.com/p?q=1", { method: "POST", body: "hello", headers: { "X-Y": "z" }, signal: controller.signal });
      check("new Request()", () => [is(req, Request), req.method, req.url, is(req.headers, Headers), req.headers === req.headers, req.headers.get("x-y"),
        is(req.signal, AbortSignal), req.signal === req.signal, is(req.body, ReadableStream), req.body === req.body]);
      check("the request's signal follows the given one", () => { controller.abort("why"); return [req.signal.aborted, req.signal.reason]; });
      await checkAsync("clone() and text()", async () => { const c = req.clone(); return [is(c, Request), await c.text(), await req.text(), req.bodyUsed]; });
      check("a URL object and a Request as input", () => [new Request(new URL("https://example.com/a")).url, new Request(new Request("https://example.com/b")).url]);
      check("an invalid method", () => throws(() => new Request("https://example.com/", { method: "bad method" }), TypeError));
      check("a GET with a body", () => throws(() => new Request("https://example.com/", { method: "GET", body: "x" }), TypeError));
      check("Request.prototype.clone.call({})", () => throws(() => Request.prototype.clone.call({}), TypeError));
      check("Response.json()", () => { const r = Response.json({ a: [1] }, { status: 201 }); return [is(r, Response), r.status, r.headers.get("content-type")]; });
      await checkAsync("json() gives this realm's objects and arrays", async () => {
        const v = await Response.json({ a: [1, { b: 2 }] }).json();
        return [is(v, Object), is(v.a, Array), is(v.a[1], Object), v];
      });
      await checkAsync("json() keeps a __proto__ key as an own property, as JSON.parse does", async () => {
        const v = await new Response('{"__proto__": {"x": 1}, "y": 2}').json();
        return [Object.hasOwn(v, "__proto__"), Object.getPrototypeOf(v) === Object.prototype, Object.keys(v), v.x];
      });
      check("Response.error()", () => { const r = Response.error(); return [is(r, Response), r.type, r.status]; });
      check("Response.redirect()", () => { const r = Response.redirect("https://example.com/next", 301); return [is(r, Response), r.status, r.headers.get("location")]; });
      check("Response.redirect() with status 200", () => throws(() => Response.redirect("https://example.com/", 200), RangeError));
      check("Response.redirect('bad')", () => throws(() => Response.redirect("bad"), TypeError));
      check("status 1", () => throws(() => new Response(null, { status: 1 }), RangeError));
      check("a body with status 204", () => throws(() => new Response("x", { status: 204 }), TypeError));
      const res = new Response("héllo", { status: 200, statusText: "OK", headers: { "content-type": "text/plain" } });
      check("new Response()", () => [is(res, Response), res.ok, res.status, res.statusText, is(res.headers, Headers), res.headers === res.headers,
        is(res.body, ReadableStream), res.body === res.body, res.bodyUsed, is(res.clone(), Response)]);
      check("each body method returns this realm's promise", () => ["arrayBuffer", "bytes", "blob", "formData", "json", "text"].map((m) => {
        const p = new Response("{}")[m]();
        p.catch(() => {});
        return is(p, Promise);
      }));
      await checkAsync("what the body methods resolve to", async () => {
        const ab = await new Response("ab").arrayBuffer();
        const by = await new Response("ab").bytes();
        const bl = await new Response("ab", { headers: { "content-type": "x/y" } }).blob();
        const fd = await new Response("a=1&b=2", { headers: { "content-type": "application/x-www-form-urlencoded" } }).formData();
        const js = await new Response('[{"k": [1]}]').json();
        const tx = await new Response("t€").text();
        return [is(ab, ArrayBuffer), is(by, Uint8Array), is(by.buffer, ArrayBuffer), is(bl, Blob), bl.type, await bl.text(), is(fd, FormData), fd.get("b"),
          is(js, Array), is(js[0], Object), is(js[0].k, Array), tx];
      });
      await checkAsync("invalid JSON", () => rejects(() => new Response("{").json(), SyntaxError));
      await checkAsync("a used body", async () => { const r = new Response("x"); await r.text(); return rejects(() => r.text(), TypeError); });
      await checkAsync("a body read as a stream", async () => { const r = await new Response("abc").body.getReader().read(); return [is(r, Object), is(r.value, Uint8Array), [...r.value]]; });
      await checkAsync("bodies of every kind", async () => {
        const stream = new ReadableStream({ start(c) { c.enqueue(new TextEncoder().encode("s")); c.enqueue(new Uint8Array([116])); c.close(); } });
        return [
          await new Response(stream).text(),
          await new Response(new Blob(["blob"])).text(),
          await new Response(new URLSearchParams("a=1")).text(),
          await new Response(new TextEncoder().encode("view").buffer).text(),
          await new Response(new DataView(new TextEncoder().encode("dv").buffer)).text(),
        ];
      });
    `, {
      "new Request()": ["Request", "POST", "https://example.com/p?q=1", "Headers", true, "z", "AbortSignal", true, "ReadableStream", true],
      "the request's signal follows the given one": [true, "why"],
      "clone() and text()": ["Request", "hello", "hello", true],
      "a URL object and a Request as input": ["https://example.com/a", "https://example.com/b"],
      "an invalid method": "TypeError",
      "a GET with a body": "TypeError",
      "Request.prototype.clone.call({})": "TypeError",
      "Response.json()": ["Response", 201, "application/json"],
      "json() gives this realm's objects and arrays": ["Object", "Array", "Object", { a: [1, { b: 2 }] }],
      "json() keeps a __proto__ key as an own property, as JSON.parse does": [true, true, ["__proto__", "y"], undefined],
      "Response.error()": ["Response", "error", 0],
      "Response.redirect()": ["Response", 301, "https://example.com/next"],
      "Response.redirect() with status 200": "RangeError",
      "Response.redirect('bad')": "TypeError",
      "status 1": "RangeError",
      "a body with status 204": "TypeError",
      "new Response()": ["Response", true, 200, "OK", "Headers", true, "ReadableStream", true, false, "Response"],
      "each body method returns this realm's promise": ["Promise", "Promise", "Promise", "Promise", "Promise", "Promise"],
      "what the body methods resolve to": ["ArrayBuffer", "Uint8Array", "ArrayBuffer", "Blob", "x/y", "ab", "FormData", "2", "Array", "Object", "Array", "t€"],
      "invalid JSON": "SyntaxError",
      "a used body": "TypeError",
      "a body read as a stream": ["Object", "Uint8Array", [97, 98, 99]],
      "bodies of every kind": ["st", "blob", "a=1", "view", "dv"],
    });
  });

  test("crypto.getRandomValues and crypto.randomUUID", async () => {
    await expectReport(String.raw`
      check("crypto and crypto.subtle", () => [is(crypto, Crypto), is(crypto.subtle, SubtleCrypto), crypto.subtle === crypto.subtle, crypto === globalThis.crypto]);
      check("getRandomValues() returns its argument", () => { const a = new Uint8Array(16); const b = new BigInt64Array(2); return [crypto.getRandomValues(a) === a, crypto.getRandomValues(b) === b, a.some((x) => x !== 0)]; });
      check("a float array", () => throws(() => crypto.getRandomValues(new Float32Array(1)), DOMException, "TypeMismatchError", 17));
      check("no argument", () => throws(() => crypto.getRandomValues(), TypeError));
      check("randomUUID()", () => [/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(crypto.randomUUID()), crypto.randomUUID() !== crypto.randomUUID()]);
      check("illegal constructors", () => [throws(() => new Crypto(), TypeError), throws(() => new SubtleCrypto(), TypeError), throws(() => new CryptoKey(), TypeError)]);
      check("Crypto.prototype.getRandomValues.call({})", () => throws(() => Crypto.prototype.getRandomValues.call({}, new Uint8Array(1)), TypeError));
    `, {
      "crypto and crypto.subtle": ["Crypto", "SubtleCrypto", true, true],
      "getRandomValues() returns its argument": [true, true, true],
      "a float array": "TypeMismatchError 17",
      "no argument": "TypeError",
      "randomUUID()": [true, true],
      "illegal constructors": ["TypeError", "TypeError", "TypeError"],
      "Crypto.prototype.getRandomValues.call({})": "TypeError",
    });
  });

  test("crypto.subtle: digest, HMAC, AES-GCM, ECDSA, Ed25519, exportKey, deriveBits", async () => {
    await expectReport(String.raw`
      const enc = new TextEncoder();
      const data = enc.encode("message");
      await checkAsync("digest()", async () => { const p = crypto.subtle.digest("SHA-256", enc.encode("abc")); const d = await p; return [is(p, Promise), is(d, ArrayBuffer), hex(d)]; });
      await checkAsync("digest() of an ArrayBuffer and a DataView, with a dictionary", async () => [
        hex(await crypto.subtle.digest({ name: "SHA-1" }, new ArrayBuffer(0))),
        hex(await crypto.subtle.digest({ get name() { return "SHA-1"; } }, new DataView(new ArrayBuffer(0)))),
      ]);
      await checkAsync("an unknown algorithm", () => rejects(() => crypto.subtle.digest("nope", data), DOMException, "NotSupportedError", 9));
      await checkAsync("no data", () => rejects(() => crypto.subtle.digest("SHA-256"), TypeError));
      await checkAsync("digest() with another this rejects", () => rejects(() => crypto.subtle.digest.call({}, "SHA-256", data), TypeError));
      await checkAsync("HMAC", async () => {
        const key = await crypto.subtle.generateKey({ name: "HMAC", hash: "SHA-256" }, true, ["sign", "verify"]);
        const sig = await crypto.subtle.sign("HMAC", key, data);
        return [is(key, CryptoKey), key.type, key.extractable, is(key.algorithm, Object), key.algorithm === key.algorithm, key.algorithm.name,
          is(key.algorithm.hash, Object), key.algorithm.hash.name, is(key.usages, Array), key.usages === key.usages, key.usages,
          is(sig, ArrayBuffer), sig.byteLength, await crypto.subtle.verify("HMAC", key, sig, data), await crypto.subtle.verify("HMAC", key, sig, enc.encode("x"))];
      });
      await checkAsync("HMAC of a known vector", async () => {
        const key = await crypto.subtle.importKey("raw", enc.encode("key"), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
        return hex(await crypto.subtle.sign("HMAC", key, enc.encode("The quick brown fox jumps over the lazy dog")));
      });
      await checkAsync("AES-GCM", async () => {
        const key = await crypto.subtle.generateKey({ name: "AES-GCM", length: 256 }, true, ["encrypt", "decrypt"]);
        const iv = crypto.getRandomValues(new Uint8Array(12));
        const ct = await crypto.subtle.encrypt({ name: "AES-GCM", iv }, key, enc.encode("secret"));
        const pt = await crypto.subtle.decrypt({ name: "AES-GCM", iv }, key, ct);
        const tampered = new Uint8Array(ct);
        tampered[0] ^= 1;
        const raw = await crypto.subtle.exportKey("raw", key);
        return [is(ct, ArrayBuffer), ct.byteLength, is(pt, ArrayBuffer), new TextDecoder().decode(pt),
          await rejects(() => crypto.subtle.decrypt({ name: "AES-GCM", iv }, key, tampered), DOMException, "OperationError", 0), is(raw, ArrayBuffer), raw.byteLength];
      });
      await checkAsync("ECDSA", async () => {
        const pair = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, ["sign", "verify"]);
        const sig = await crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, pair.privateKey, data);
        const jwk = await crypto.subtle.exportKey("jwk", pair.publicKey);
        return [is(pair, Object), is(pair.publicKey, CryptoKey), is(pair.privateKey, CryptoKey), pair.publicKey.type, pair.privateKey.type, pair.publicKey.algorithm.namedCurve,
          is(sig, ArrayBuffer), sig.byteLength, await crypto.subtle.verify({ name: "ECDSA", hash: "SHA-256" }, pair.publicKey, sig, data),
          await crypto.subtle.verify({ name: "ECDSA", hash: "SHA-256" }, pair.publicKey, sig, enc.encode("x")),
          is(jwk, Object), jwk.kty, jwk.crv, is(jwk.key_ops, Array), Object.keys(jwk).sort()];
      });
      await checkAsync("Ed25519", async () => {
        const pair = await crypto.subtle.generateKey({ name: "Ed25519" }, true, ["sign", "verify"]);
        const sig = await crypto.subtle.sign("Ed25519", pair.privateKey, data);
        return [is(pair, Object), is(pair.publicKey, CryptoKey), pair.publicKey.algorithm.name, is(sig, ArrayBuffer), sig.byteLength,
          await crypto.subtle.verify("Ed25519", pair.publicKey, sig, data), await crypto.subtle.verify("Ed25519", pair.publicKey, sig, enc.encode("x"))];
      });
      await checkAsync("exportKey('jwk') and back", async () => {
        const key = await crypto.subtle.generateKey({ name: "HMAC", hash: "SHA-256" }, true, ["sign"]);
        const jwk = await crypto.subtle.exportKey("jwk", key);
        const back = await crypto.subtle.importKey("jwk", jwk, { name: "HMAC", hash: "SHA-256" }, true, ["sign"]);
        return [is(jwk, Object), Object.keys(jwk).sort(), jwk.alg, is(jwk.key_ops, Array), jwk.key_ops, jwk.ext, is(back, CryptoKey),
          hex(await crypto.subtle.exportKey("raw", back)) === hex(await crypto.subtle.exportKey("raw", key))];
      });
      await checkAsync("deriveBits: ECDH", async () => {
        const a = await crypto.subtle.generateKey({ name: "ECDH", namedCurve: "P-256" }, false, ["deriveBits"]);
        const b = await crypto.subtle.generateKey({ name: "ECDH", namedCurve: "P-256" }, false, ["deriveBits"]);
        const x = await crypto.subtle.deriveBits({ name: "ECDH", public: b.publicKey }, a.privateKey, 256);
        const y = await crypto.subtle.deriveBits({ name: "ECDH", public: a.publicKey }, b.privateKey, 256);
        return [is(x, ArrayBuffer), x.byteLength, hex(x) === hex(y)];
      });
      await checkAsync("deriveBits: PBKDF2", async () => {
        const key = await crypto.subtle.importKey("raw", enc.encode("password"), "PBKDF2", false, ["deriveBits"]);
        const bits = await crypto.subtle.deriveBits({ name: "PBKDF2", salt: enc.encode("salt"), iterations: 1, hash: "SHA-1" }, key, 160);
        return [is(bits, ArrayBuffer), hex(bits)];
      });
      await checkAsync("generateKey() without usages", () => rejects(() => crypto.subtle.generateKey({ name: "HMAC", hash: "SHA-256" }, true, []), DOMException, "SyntaxError", 12));
      await checkAsync("importKey() of an unknown algorithm", () => rejects(() => crypto.subtle.importKey("raw", data, "nope", false, ["sign"]), DOMException, "NotSupportedError", 9));
    `, {
      "digest()": ["Promise", "ArrayBuffer", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"],
      "digest() of an ArrayBuffer and a DataView, with a dictionary": ["da39a3ee5e6b4b0d3255bfef95601890afd80709", "da39a3ee5e6b4b0d3255bfef95601890afd80709"],
      "an unknown algorithm": "NotSupportedError 9",
      "no data": "TypeError",
      "digest() with another this rejects": "TypeError",
      "HMAC": ["CryptoKey", "secret", true, "Object", true, "HMAC", "Object", "SHA-256", "Array", true, ["sign", "verify"], "ArrayBuffer", 32, true, false],
      "HMAC of a known vector": "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8",
      "AES-GCM": ["ArrayBuffer", 22, "ArrayBuffer", "secret", "OperationError 0", "ArrayBuffer", 32],
      "ECDSA": ["Object", "CryptoKey", "CryptoKey", "public", "private", "P-256", "ArrayBuffer", 64, true, false, "Object", "EC", "P-256", "Array",
        ["alg", "crv", "ext", "key_ops", "kty", "x", "y"]],
      "Ed25519": ["Object", "CryptoKey", "Ed25519", "ArrayBuffer", 64, true, false],
      "exportKey('jwk') and back": ["Object", ["alg", "ext", "k", "key_ops", "kty"], "HS256", "Array", ["sign"], true, "CryptoKey", true],
      "deriveBits: ECDH": ["ArrayBuffer", 32, true],
      "deriveBits: PBKDF2": ["ArrayBuffer", "0c60c80f961f0e71f3a9b524af6012062fe037a6"],
      "generateKey() without usages": "SyntaxError 12",
      "importKey() of an unknown algorithm": "NotSupportedError 9",
    });
  });

  test("structuredClone", async () => {
    await expectReport(String.raw`
      const source = {
        map: new Map([[1, { a: 1 }]]), set: new Set(["s"]), date: new Date(5), re: /a+/gi, u8: new Uint8Array([1, 2]), f64: new Float64Array([1.5]),
        buf: new ArrayBuffer(3), err: new RangeError("r"), arr: [1, [2]], big: 10n, boxed: Object("s"), nested: { deep: {} },
      };
      source.self = source;
      source.arr.push(source.nested);
      let copy;
      check("structuredClone(an object graph)", () => { copy = structuredClone(source); return is(copy, Object); });
      check("the copy and its members are this realm's", () => [is(copy.map, Map), is(copy.map.get(1), Object), is(copy.set, Set), is(copy.date, Date),
        is(copy.re, RegExp), is(copy.u8, Uint8Array), is(copy.u8.buffer, ArrayBuffer), is(copy.f64, Float64Array), is(copy.buf, ArrayBuffer),
        is(copy.err, RangeError), is(copy.arr, Array), is(copy.arr[1], Array), is(copy.boxed, String), is(copy.nested.deep, Object)]);
      check("a DataView", () => { const c = structuredClone(new DataView(new Uint8Array([1, 2, 3]).buffer, 1)); return [is(c, DataView), c.byteOffset, c.byteLength, c.getUint8(0)]; });
      check("a view with an offset", () => { const c = structuredClone(new Uint8Array(new Uint8Array([1, 2, 3, 4]).buffer, 1, 2)); return [is(c, Uint8Array), c.byteOffset, c.length, [...c]]; });
      check("views of a large buffer", () => {
        const big = new Uint8Array(128 * 1024);
        big.set([1, 2, 3, 4], 100);
        const c = structuredClone({ u8: new Uint8Array(big.buffer, 100, 4), dv: new DataView(big.buffer, 101, 2) });
        return [is(c.u8, Uint8Array), c.u8.byteOffset, [...c.u8], c.u8.buffer.byteLength, is(c.dv, DataView), c.dv.byteOffset, c.dv.getUint8(0), c.u8.buffer === c.dv.buffer];
      });
      check("their values", () => [copy.map.get(1).a, [...copy.set], copy.date.getTime(), copy.re.source, copy.re.flags, [...copy.u8], copy.f64[0], copy.buf.byteLength,
        copy.err.message, copy.big, String(copy.boxed)]);
      check("cycles and shared references", () => [copy.self === copy, copy.arr[2] === copy.nested, copy !== source, copy.map !== source.map]);
      check("views of one buffer share the copy of it", () => { const b = new ArrayBuffer(4); const c = structuredClone({ a: new Uint8Array(b), d: new DataView(b, 1) }); return [c.a.buffer === c.d.buffer, is(c.a.buffer, ArrayBuffer)]; });
      check("every error kind", () => [TypeError, SyntaxError, ReferenceError, EvalError, URIError, Error].map((E) => is(structuredClone(new E("m")), E)));
      await checkAsync("Blob and File", async () => {
        const b = structuredClone(new Blob(["xy"], { type: "a/b" }));
        const f = structuredClone(new File(["z"], "f.txt"));
        return [is(b, Blob), b.type, await b.text(), is(f, File), f.name, await f.text()];
      });
      check("transfer", () => { const buf = new Uint8Array([1, 2, 3]).buffer; const c = structuredClone(buf, { transfer: [buf] }); return [is(c, ArrayBuffer), c.byteLength, buf.byteLength]; });
      check("getters run once, in this realm's copy a data property", () => { let n = 0; const c = structuredClone({ get g() { n++; return 1; } }); return [c.g, n, "value" in Object.getOwnPropertyDescriptor(c, "g")]; });
      check("a class instance becomes a plain object", () => { class K { constructor() { this.a = 1; } } const c = structuredClone(new K()); return [is(c, Object), c.a]; });
      check("a function", () => throws(() => structuredClone(() => {}), DOMException, "DataCloneError", 25));
      check("no argument", () => throws(() => structuredClone(), TypeError));
      check("a bad transfer list", () => throws(() => structuredClone(1, { transfer: 5 }), TypeError));
      check("primitives", () => [structuredClone(1), structuredClone("s"), structuredClone(null), structuredClone(undefined)]);
    `, {
      "structuredClone(an object graph)": "Object",
      "the copy and its members are this realm's": ["Map", "Object", "Set", "Date", "RegExp", "Uint8Array", "ArrayBuffer", "Float64Array", "ArrayBuffer",
        "RangeError", "Array", "Array", "String", "Object"],
      "a DataView": ["DataView", 1, 2, 2],
      "a view with an offset": ["Uint8Array", 1, 2, [2, 3]],
      "views of a large buffer": ["Uint8Array", 100, [1, 2, 3, 4], 128 * 1024, "DataView", 101, 2, true],
      "their values": [1, ["s"], 5, "a+", "gi", [1, 2], 1.5, 3, "r", 10n, "s"],
      "cycles and shared references": [true, true, true, true],
      "views of one buffer share the copy of it": [true, "ArrayBuffer"],
      "every error kind": ["TypeError", "SyntaxError", "ReferenceError", "EvalError", "URIError", "Error"],
      "Blob and File": ["Blob", "a/b", "xy", "File", "f.txt", "z"],
      "transfer": ["ArrayBuffer", 3, 0],
      "getters run once, in this realm's copy a data property": [1, 1, true],
      "a class instance becomes a plain object": ["Object", 1],
      "a function": "DataCloneError 25",
      "no argument": "TypeError",
      "a bad transfer list": "TypeError",
      "primitives": [1, "s", null, undefined],
    });
  });

  test("performance", async () => {
    await expectReport(String.raw`
      check("performance and its members are this realm's", () => [isRealm(performance), isRealm(performance.now), performance.now instanceof Function, performance.now === performance.now]);
      check("now() and timeOrigin", () => [typeof performance.now(), typeof performance.timeOrigin, performance.timeOrigin > 1.6e12, performance.now.name]);
      check("now() advances", () => { const a = performance.now(); let b = a; while (b === a) b = performance.now(); return b > a; });
    `, {
      "performance and its members are this realm's": [true, true, true, true],
      "now() and timeOrigin": ["number", "number", true, "now"],
      "now() advances": true,
    });
  });

  test("fetch without a network policy", async () => {
    await expectReport(String.raw`
      check("fetch itself", () => [isRealm(fetch), fetch.name, fetch.length]);
      await checkAsync("refused", async () => {
        const p = fetch("https://example.com/");
        const kind = is(p, Promise);
        try { await p; } catch (e) { return [kind, isRealm(e), e instanceof Error, e.name, e.message]; }
        return "resolved";
      });
      await checkAsync("a Request, refused", async () => { try { await fetch(new Request("https://example.com/", { method: "POST", body: "x" })); } catch (e) { return [isRealm(e), e.name]; } return "resolved"; });
      await checkAsync("an invalid URL", () => rejects(() => fetch("http://[bad"), TypeError));
      await checkAsync("an aborted signal rejects with its reason", async () => {
        const reason = { r: 1 };
        try { await fetch("https://example.com/", { signal: AbortSignal.abort(reason) }); } catch (e) { return e === reason; }
        return "resolved";
      });
    `, {
      "fetch itself": [true, "fetch", 1],
      "refused": ["Promise", true, true, "PolicyError", "fetch to example.com refused: no network policy grants this sandbox network access"],
      "a Request, refused": [true, "PolicyError"],
      "an invalid URL": "TypeError",
      "an aborted signal rejects with its reason": true,
    });
  });
});

describe("interface objects have WebIDL's shape", () => {
  test("names, lengths and prototype chains; no minified name anywhere", async () => {
    const report = await reportOf(String.raw`
      const INTERFACES = ${JSON.stringify(INTERFACES)};
      const bad = [];
      for (const name of INTERFACES) {
        const C = globalThis[name];
        if (typeof C !== "function") { bad.push(name + " is missing"); continue; }
        if (C.name !== name) bad.push(name + ".name is " + JSON.stringify(C.name));
        if (!isRealm(C) || !isRealm(C.prototype)) bad.push(name + " is not of this realm");
        const global = Object.getOwnPropertyDescriptor(globalThis, name);
        if (!global || global.enumerable || !global.writable || !global.configurable) bad.push("globalThis." + name + " has attributes " + JSON.stringify(global));
        const proto = Object.getOwnPropertyDescriptor(C, "prototype");
        if (proto.writable || proto.enumerable || proto.configurable) bad.push(name + ".prototype has attributes " + JSON.stringify({ ...proto, value: undefined }));
        const ctor = Object.getOwnPropertyDescriptor(C.prototype, "constructor");
        if (!ctor || ctor.value !== C || ctor.enumerable || !ctor.writable || !ctor.configurable) bad.push(name + ".prototype.constructor is wrong");
      }
      // Every function reachable from the global object's own properties is named after its key.
      for (const key of Object.getOwnPropertyNames(globalThis)) {
        const value = globalThis[key];
        if (typeof value === "function" && value.name !== key) bad.push("globalThis." + key + ".name is " + JSON.stringify(value.name));
      }
      report.bad = bad;
      report.chains = [
        Object.getPrototypeOf(File) === Blob, Object.getPrototypeOf(File.prototype) === Blob.prototype,
        ...[CustomEvent, ErrorEvent, MessageEvent, ProgressEvent, PromiseRejectionEvent, CloseEvent].map((C) => Object.getPrototypeOf(C) === Event && C.prototype instanceof Event),
        Object.getPrototypeOf(AbortSignal) === EventTarget, AbortSignal.prototype instanceof EventTarget,
        Object.getPrototypeOf(DOMException.prototype) === Error.prototype, DOMException.prototype instanceof Error,
        ...[URL, Blob, Event, EventTarget, ReadableStream, Headers, Response, DOMException].map((C) => Object.getPrototypeOf(C) === Function.prototype),
        ...[URL, Blob, Event, EventTarget, ReadableStream, Headers, Response].map((C) => Object.getPrototypeOf(C.prototype) === Object.prototype),
      ];
      report.lengths = [URL.length, URLSearchParams.length, Blob.length, File.length, Event.length, CustomEvent.length, Headers.length, Request.length, Response.length,
        ReadableStream.length, DOMException.length, Headers.prototype.append.length, URL.canParse.length, TextDecoder.prototype.decode.length, atob.length, btoa.length,
        crypto.subtle.digest.length, AbortSignal.any.length, AbortSignal.timeout.length];
      report.tags = [new URL("http://a/"), new Blob([]), new Headers(), crypto.subtle, crypto, new DOMException(), new ReadableStream(), new AbortController().signal, new Headers().entries()]
        .map((v) => Object.prototype.toString.call(v));
    `);
    assert.deepEqual(report, {
      bad: [],
      chains: Array(27).fill(true),
      // (Deno's structuredClone and addEventListener have lengths of their own: not checked here.)
      lengths: [1, 0, 0, 2, 1, 1, 0, 1, 0, 0, 0, 2, 1, 0, 1, 1, 2, 1, 1],
      tags: ["[object URL]", "[object Blob]", "[object Headers]", "[object SubtleCrypto]", "[object Crypto]", "[object DOMException]", "[object ReadableStream]",
        "[object AbortSignal]", "[object Headers Iterator]"],
    });
  });

  test("members: methods and accessors are named, are not constructors, and check their receiver", async () => {
    const report = await reportOf(String.raw`
      const INTERFACES = ${JSON.stringify(INTERFACES)};
      const named = [];
      const constructors = [];
      const attributes = [];
      const receivers = [];
      const keyName = (key) => typeof key === "symbol" ? "[" + key.description + "]" : key;
      const members = [];
      for (const name of INTERFACES) {
        const C = globalThis[name];
        for (const [owner, label, isStatic] of [[C.prototype, name + ".prototype", false], [C, name, true]]) {
          for (const key of Reflect.ownKeys(owner)) {
            if (key === "constructor" || (isStatic && (key === "prototype" || key === "length" || key === "name"))) continue;
            members.push([owner, label, key, isStatic]);
          }
        }
      }
      // Prototypes that are not interfaces, which objects of the realm still have: iterators.
      const extra = [
        [Object.getPrototypeOf(new Headers().entries()), "Headers iterator"],
        [Object.getPrototypeOf(new URLSearchParams().entries()), "URLSearchParams iterator"],
        [Object.getPrototypeOf(new FormData().entries()), "FormData iterator"],
        [Object.getPrototypeOf(new ReadableStream().values()), "ReadableStream async iterator"],
      ];
      for (const [owner, label] of extra) for (const key of Reflect.ownKeys(owner)) if (key !== "constructor" && key !== Symbol.toStringTag) members.push([owner, label, key, false]);
      const functionsOf = [[crypto, "crypto"], [crypto.subtle, "crypto.subtle"], [performance, "performance"]];
      for (const [object, label] of functionsOf) {
        for (let o = object; o && o !== Object.prototype; o = Object.getPrototypeOf(o)) {
          for (const key of Reflect.ownKeys(o)) if (key !== "constructor" && typeof Object.getOwnPropertyDescriptor(o, key).value === "function") members.push([o, label, key, true]);
        }
      }
      for (const [owner, label, key, isStatic] of members) {
        const d = Object.getOwnPropertyDescriptor(owner, key);
        const where = label + "." + keyName(key);
        if (typeof d.value === "function") {
          const aliased = typeof key === "symbol" && Reflect.ownKeys(owner).some((k) => typeof k === "string" && Object.getOwnPropertyDescriptor(owner, k).value === d.value);
          if (!aliased && d.value.name !== keyName(key) && !(typeof key === "symbol" && d.value.name === "[Symbol." + key.description.slice(7) + "]")) named.push(where + " is named " + JSON.stringify(d.value.name));
          if (isConstructor(d.value)) constructors.push(where);
          if (!d.writable || !d.configurable || d.enumerable !== (typeof key === "string")) attributes.push(where + " " + JSON.stringify({ ...d, value: undefined }));
          if (!isStatic && !label.includes("iterator")) receivers.push([where, d.value]);
        } else if (d.get || d.set) {
          if (d.get && d.get.name !== "get " + keyName(key)) named.push(where + " getter is named " + JSON.stringify(d.get.name));
          if (d.set && d.set.name !== "set " + keyName(key)) named.push(where + " setter is named " + JSON.stringify(d.set.name));
          if (isConstructor(d.get) || isConstructor(d.set)) constructors.push(where + " (accessor)");
          if (!d.configurable || !d.enumerable) attributes.push(where + " " + JSON.stringify({ ...d, get: typeof d.get, set: typeof d.set }));
          if (!isStatic && d.get) receivers.push([where + " getter", d.get]);
        } else if (typeof key === "string" && typeof d.value === "number") {
          if (d.writable || !d.enumerable || d.configurable) attributes.push(where + " (constant) " + JSON.stringify(d));
        }
      }
      // (fetch, the timers and queueMicrotask are functions Deno itself makes constructible: not checked.)
      for (const [name, fn] of [["atob", atob], ["btoa", btoa], ["structuredClone", structuredClone], ["AbortSignal.timeout", AbortSignal.timeout]]) {
        if (isConstructor(fn)) constructors.push(name);
      }
      report.count = members.length > 300;
      report.named = named;
      report.constructors = constructors;
      report.attributes = attributes;
      // With a plain object as this, every operation and attribute getter fails with this realm's TypeError
      // (but for these, which Deno itself does not check: not the realm's doing).
      const UNCHECKED_BY_DENO = new Set(["AbortSignal.prototype.onabort getter", "Event.prototype.srcElement getter", "Event.prototype.cancelBubble getter",
        "Event.prototype.returnValue getter", "Event.prototype.defaultPrevented getter", "Event.prototype.initialized getter", "Event.prototype.isTrusted getter",
        "EventTarget.prototype.getParent"]);
      const wrongThis = [];
      for (const [where, fn] of receivers) {
        if (UNCHECKED_BY_DENO.has(where)) continue;
        const outcome = await failsWith(() => Reflect.apply(fn, {}, []), TypeError);
        if (outcome !== "TypeError") wrongThis.push(where + ": " + outcome);
      }
      report.wrongThis = wrongThis;
      report.receiversChecked = receivers.length > 200;
    `);
    assert.deepEqual(report, { count: true, named: [], constructors: [], attributes: [], wrongThis: [], receiversChecked: true });
  });

  test("constructors: `new` is required, illegal ones refuse, every one can be subclassed", async () => {
    const report = await reportOf(String.raw`
      const INTERFACES = ${JSON.stringify(INTERFACES)};
      const ILLEGAL = ["AbortSignal", "ReadableStreamBYOBRequest", "ReadableStreamDefaultController", "ReadableByteStreamController",
        "WritableStreamDefaultController", "TransformStreamDefaultController", "Crypto", "SubtleCrypto", "CryptoKey"];
      report.withoutNew = INTERFACES.filter((name) => throws(() => globalThis[name]("x"), TypeError) !== "TypeError");
      report.illegal = ILLEGAL.filter((name) => throws(() => new globalThis[name](), TypeError) !== "TypeError");
      check("subclasses", () => {
        class S extends ReadableStream { constructor(...a) { super(...a); this.mine = true; } extra() { return "x"; } }
        const s = new S({ start(c) { c.enqueue(1); c.close(); } });
        class U extends URL { get shout() { return this.href.toUpperCase(); } }
        const u = new U("http://a/");
        class B extends Blob {}
        class H extends Headers { get size() { return [...this].length; } }
        class T extends EventTarget {}
        class E extends Event {}
        class D extends DOMException {}
        class A extends AbortController {}
        class F extends FormData {}
        class C extends CustomEvent {}
        class W extends WritableStream {}
        class X extends TransformStream {}
        class Q extends Request {}
        return [s instanceof S, s instanceof ReadableStream, Object.getPrototypeOf(s) === S.prototype, s.mine, s.extra(), s.locked, is(s.getReader(), ReadableStreamDefaultReader),
          u instanceof U, u.shout, u.href, Object.getPrototypeOf(U) === URL, U.canParse("http://b/"),
          new B(["ab"]).size, new B([]) instanceof Blob, new H({ a: "1", b: "2" }).size, new T() instanceof EventTarget, new E("e").type, new D("m", "AbortError").code,
          new A().signal instanceof AbortSignal, new F() instanceof FormData, new C("c", { detail: 1 }).detail, new W().locked, new X().readable instanceof ReadableStream,
          new Q("http://a/").url];
      });
      await checkAsync("a Response subclass reads its body", async () => { class R extends Response { twice() { return this.text().then((t) => t + t); } } const r = new R("x"); return [r instanceof R, await r.twice()]; });
      check("Reflect.construct() with another new.target", () => {
        function Other() {}
        const u = Reflect.construct(URL, ["http://a/"], Other);
        return [Object.getPrototypeOf(u) === Other.prototype, URL.prototype.toString.call(u), Object.getOwnPropertyDescriptor(URL.prototype, "host").get.call(u)];
      });
    `);
    assert.deepEqual(report, {
      withoutNew: [],
      illegal: [],
      subclasses: [true, true, true, true, "x", false, "ReadableStreamDefaultReader", true, "HTTP://A/", "http://a/", true, true,
        2, true, 2, true, "e", 20, true, true, 1, false, true, "http://a/"],
      "a Response subclass reads its body": [true, "xx"],
      "Reflect.construct() with another new.target": [true, "http://a/", "a"],
    });
  });

  test("the global object is an EventTarget, and self is the global", async () => {
    await expectReport(String.raw`
      check("globalThis instanceof EventTarget", () => [globalThis instanceof EventTarget, EventTarget.prototype.isPrototypeOf(globalThis)]);
      check("self", () => [self === globalThis, typeof self]);
      check("addEventListener and dispatchEvent called with no this", () => {
        const { addEventListener, dispatchEvent, removeEventListener } = globalThis;
        let got;
        const listener = function (e) { got = [this === globalThis, e.target === globalThis, e.currentTarget === globalThis, is(e, Event)]; };
        addEventListener("ping", listener);
        const result = dispatchEvent(new Event("ping"));
        removeEventListener("ping", listener);
        got = got ?? "not called";
        const before = got;
        got = "not called";
        dispatchEvent(new Event("ping"));
        return [result, before, got];
      });
      check("the global's methods are EventTarget's", () => [globalThis.addEventListener === EventTarget.prototype.addEventListener, typeof globalThis.dispatchEvent]);
      check("listeners on the global", () => {
        let seen = 0;
        globalThis.addEventListener("x", () => seen++, { once: true });
        globalThis.dispatchEvent(new CustomEvent("x"));
        globalThis.dispatchEvent(new CustomEvent("x"));
        return seen;
      });
    `, {
      "globalThis instanceof EventTarget": [true, true],
      "self": [true, "object"],
      "addEventListener and dispatchEvent called with no this": [true, [true, true, true, "Event"], "not called"],
      "the global's methods are EventTarget's": [true, "function"],
      "listeners on the global": 1,
    });
  });
});

describe("Web API prototypes and objects are the realm's to patch", () => {
  const PATCH = String.raw`
    ReadableStream.prototype.pipeTo = function () { return "patched pipeTo " + (this instanceof ReadableStream); };
    check("pipeTo", () => new ReadableStream().pipeTo(new WritableStream()));
    Object.defineProperty(URL.prototype, "href", { get() { return "patched href"; }, configurable: true });
    check("href", () => [new URL("http://a/").href, new URL("http://a/").toString()]);
    crypto.subtle.digest = () => "patched digest";
    check("digest", () => crypto.subtle.digest("SHA-256", new Uint8Array(1)));
    Object.getPrototypeOf(crypto).randomUUID = () => "patched uuid";
    check("randomUUID", () => crypto.randomUUID());
    TextEncoder.prototype.encode = function () { return "patched encode " + this.encoding; };
    check("encode", () => new TextEncoder().encode("a"));
    Headers.prototype.get = function () { return "patched get"; };
    check("Headers get", () => new Headers({ a: "1" }).get("a"));
    Response.json = () => "patched static";
    check("Response.json", () => Response.json({}));
    EventTarget.prototype.dispatchEvent = function () { return "patched dispatch"; };
    check("dispatchEvent of the global", () => dispatchEvent(new Event("x")));
    delete Blob.prototype.text;
    check("a deleted method", () => typeof new Blob([]).text);
    URL.marker = 1;
    Object.getPrototypeOf(new Headers().entries()).marker = 1;
  `;
  const PATCHED = {
    pipeTo: "patched pipeTo true",
    href: ["patched href", "http://a/"],
    digest: "patched digest",
    randomUUID: "patched uuid",
    encode: "patched encode utf-8",
    "Headers get": "patched get",
    "Response.json": "patched static",
    "dispatchEvent of the global": "patched dispatch",
    "a deleted method": "undefined",
  };
  const PRISTINE_CHECK = String.raw`
    check("pipeTo", () => [ReadableStream.prototype.pipeTo.name, is(new ReadableStream().pipeTo(new WritableStream()), Promise)]);
    check("href", () => [new URL("http://a/").href, new URL("http://a/").toString()]);
    check("digest", () => is(crypto.subtle.digest("SHA-256", new Uint8Array(1)), Promise));
    check("randomUUID", () => crypto.randomUUID().length);
    check("encode", () => is(new TextEncoder().encode("a"), Uint8Array));
    check("Headers get", () => new Headers({ a: "1" }).get("a"));
    check("Response.json", () => is(Response.json({}), Response));
    check("dispatchEvent of the global", () => dispatchEvent(new Event("x")));
    check("a deleted method", () => typeof new Blob([]).text);
    check("markers", () => [URL.marker, Object.getPrototypeOf(new Headers().entries()).marker]);
  `;
  const PRISTINE = {
    pipeTo: ["pipeTo", "Promise"],
    href: ["http://a/", "http://a/"],
    digest: "Promise",
    randomUUID: 36,
    encode: "Uint8Array",
    "Headers get": "1",
    "Response.json": "Response",
    "dispatchEvent of the global": true,
    "a deleted method": "function",
    markers: [undefined, undefined],
  };

  test("patches work inside the eval and are gone in the next one", async () => {
    await expectReport(PATCH, PATCHED);
    await expectReport(PRISTINE_CHECK, PRISTINE);
  });

  test("in a persistent sandbox, patches stay there and reach no other sandbox", async () => {
    await withPersistent(async (persistent) => {
      await expectReport(PATCH, PATCHED, persistent);
      const again = String.raw`
        check("encode", () => new TextEncoder().encode("a"));
        check("href", () => new URL("http://b/").href);
        check("marker", () => URL.marker);
      `;
      await expectReport(again, { encode: "patched encode utf-8", href: "patched href", marker: 1 }, persistent);
      await expectReport(PRISTINE_CHECK, PRISTINE);
      await withPersistent(async (other) => {
        await expectReport(PRISTINE_CHECK, PRISTINE, other);
      });
    });
  });

  test("sloppy-mode assignments to instances shadow prototype members", async () => {
    await expectReport(String.raw`
      check("sloppy", () => (function () { return this !== undefined; })());
      const u = new URL("http://a/");
      u.toString = () => "own toString";
      check("URL toString", () => [String(u), u.href]);
      const h = new Headers();
      h.get = () => "own get";
      check("Headers get", () => h.get("a"));
      const e = new Event("t");
      e.preventDefault = "own";
      check("Event preventDefault", () => e.preventDefault);
      const s = new ReadableStream();
      s.getReader = () => "own reader";
      check("ReadableStream getReader", () => s.getReader());
      check("Object.assign onto an instance", () => String(Object.assign(new URL("http://b/"), { toString() { return "assigned"; } })));
      const b = new Blob(["x"]);
      b.size = 5;
      check("a getter-only attribute ignores sloppy writes", () => b.size);
      check("own properties", () => [Object.hasOwn(u, "toString"), Object.hasOwn(URL.prototype, "toString"), URL.prototype.toString.call(u)]);
    `, {
      sloppy: true,
      "URL toString": ["own toString", "http://a/"],
      "Headers get": "own get",
      "Event preventDefault": "own",
      "ReadableStream getReader": "own reader",
      "Object.assign onto an instance": "assigned",
      "a getter-only attribute ignores sloppy writes": 1,
      "own properties": [true, true, "http://a/"],
    });
  });
});

async function withPersistent(body: (sandbox: Sandbox) => Promise<void>): Promise<void> {
  const sandbox = await Sandbox.create({ timeoutMs: LONG_TIMEOUT_MS, memoryMb: 256, persistent: true });
  try {
    await body(sandbox);
  } finally {
    await sandbox.close();
  }
}
