/**
 * Integration: the Web APIs user code gets inside a realm, each checked by what it does, and the
 * APIs that must be absent. All against one real carrier.
 */
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Sandbox, PolicyError } from "../../src/index.js";

const TIMEOUT_MS = 5_000;
let sandbox: Sandbox;
before(async () => {
  sandbox = await Sandbox.create({ timeoutMs: TIMEOUT_MS });
});
after(() => sandbox.close());

function run<T = unknown>(code: string): Promise<T> {
  return sandbox.eval<T>(code);
}

/** A hand-written module: (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add). */
const ADD_WASM = "[0,97,115,109,1,0,0,0,1,7,1,96,2,127,127,1,127,3,2,1,0,7,7,1,3,97,100,100,0,0,10,9,1,7,0,32,0,32,1,106,11]";

describe("console, timers, structuredClone", () => {
  test("console writes log entries", async () => {
    const result = await sandbox.run("console.log('a', 1); console.error({ b: 2 })");
    assert.ok(result.ok);
    assert.deepEqual(result.logs.map((e) => [e.level, e.message]), [["log", "a 1"], ["error", "{ b: 2 }"]]);
  });

  test("setTimeout, setInterval, queueMicrotask", async () => {
    // Waits until the timeout and the interval have both reported rather than a fixed 60 ms (a
    // busy machine may stall the carrier that long), then a while longer: the cleared interval
    // does not tick again.
    assert.deepEqual(
      await run("const seen = [];\nqueueMicrotask(() => seen.push('micro'));\nsetTimeout(() => seen.push('timeout'), 5);\nlet ticks = 0;\nconst id = setInterval(() => { if (++ticks === 2) { clearInterval(id); seen.push('interval') } }, 1);\nseen.push('sync');\nwhile (seen.length < 4) await new Promise((r) => setTimeout(r, 5));\nawait new Promise((r) => setTimeout(r, 60));\n[seen.slice(0, 2), seen.slice(2).sort(), ticks]"),
      [["sync", "micro"], ["interval", "timeout"], 2],
    );
  });

  test("structuredClone deep-copies, keeps cycles and refuses functions", async () => {
    assert.deepEqual(
      await run("const src = { m: new Map([[1, { a: [1] }]]), d: new Date(5) }; src.self = src;\nconst copy = structuredClone(src);\ncopy.m.get(1).a.push(2);\n[src.m.get(1).a.length, copy.m.get(1).a.length, copy.self === copy, copy.d.getTime(), copy !== src]"),
      [1, 2, true, 5, true],
    );
    assert.equal(await run("try { structuredClone(() => 1) } catch (e) { e.name }"), "DataCloneError");
  });
});

describe("encoding", () => {
  test("TextEncoder and TextDecoder", async () => {
    assert.deepEqual(await run("[...new TextEncoder().encode('h€')]"), [104, 226, 130, 172]);
    assert.equal(await run("new TextDecoder().decode(new Uint8Array([104, 226, 130, 172]))"), "h€");
    assert.equal(await run("new TextDecoder('utf-16le').decode(new Uint8Array([104, 0, 105, 0]))"), "hi");
    assert.equal(await run("try { new TextDecoder('utf-8', { fatal: true }).decode(new Uint8Array([0xff])) } catch (e) { e.name }"), "TypeError");
  });

  test("TextEncoderStream and TextDecoderStream", async () => {
    assert.equal(
      await run("const source = new ReadableStream({ start(c) { c.enqueue('hé'); c.enqueue('llo €'); c.close() } });\nlet out = '';\nfor await (const s of source.pipeThrough(new TextEncoderStream()).pipeThrough(new TextDecoderStream())) out += s;\nout"),
      "héllo €",
    );
    // A multi-byte character split across chunks is decoded whole.
    assert.equal(
      await run("const bytes = new ReadableStream({ start(c) { c.enqueue(new Uint8Array([226, 130])); c.enqueue(new Uint8Array([172])); c.close() } });\nlet out = '';\nfor await (const s of bytes.pipeThrough(new TextDecoderStream())) out += s;\nout"),
      "€",
    );
  });

  test("atob and btoa", async () => {
    assert.deepEqual(await run("[btoa('hello'), atob('aGVsbG8='), atob(btoa('\\x00\\xff'))]"), ["aGVsbG8=", "hello", "\x00\xff"]);
    assert.equal(await run("try { btoa('€') } catch (e) { e.name }"), "InvalidCharacterError");
  });
});

describe("URL", () => {
  test("URL parses, resolves relative URLs and exposes searchParams", async () => {
    assert.deepEqual(
      await run("const u = new URL('../b?x=1&y=2#h', 'https://user:pw@ex.com:8080/a/c/d');\nu.searchParams.append('z', 'a b');\n[u.href, u.host, u.pathname, u.searchParams.get('y'), u.hash, u.username, u.search]"),
      ["https://user:pw@ex.com:8080/a/b?x=1&y=2&z=a+b#h", "ex.com:8080", "/a/b", "2", "#h", "user", "?x=1&y=2&z=a+b"],
    );
    assert.equal(await run("try { new URL('not a url') } catch (e) { e.name }"), "TypeError");
    assert.equal(await run("URL.canParse('https://x.y/')"), true);
  });

  test("URLSearchParams", async () => {
    assert.deepEqual(
      await run("const p = new URLSearchParams('a=1&a=2&b=%20x');\np.sort();\np.delete('b');\np.set('c', '3&4');\n[p.getAll('a'), p.has('b'), p.toString(), [...new URLSearchParams({ k: 'v' })]]"),
      [["1", "2"], false, "a=1&a=2&c=3%264", [["k", "v"]]],
    );
  });
});

describe("Blob and File", () => {
  test("Blob: size, type, text, arrayBuffer, slice, stream", async () => {
    assert.deepEqual(
      await run("const b = new Blob(['hello ', new Uint8Array([119, 111]), 'rld'], { type: 'text/plain' });\nconst reader = b.stream().getReader();\nlet streamed = 0;\nfor (let r = await reader.read(); !r.done; r = await reader.read()) streamed += r.value.length;\n[b.size, b.type, await b.text(), [...new Uint8Array(await b.arrayBuffer())].slice(0, 2), await b.slice(6, 9).text(), await b.slice(-3).text(), streamed]"),
      [11, "text/plain", "hello world", [104, 101], "wor", "rld", 11],
    );
  });

  test("File is a Blob with a name", async () => {
    assert.deepEqual(
      await run("const f = new File(['x', 'y'], 'a.txt', { type: 'text/plain', lastModified: 5 });\n[f.name, f.size, f.type, f.lastModified, await f.text(), f instanceof Blob]"),
      ["a.txt", 2, "text/plain", 5, "xy", true],
    );
  });
});

describe("abort and events", () => {
  test("AbortController aborts with a reason and fires the abort event", async () => {
    assert.deepEqual(
      await run("const c = new AbortController();\nlet fired = 0;\nc.signal.addEventListener('abort', () => fired++);\nc.signal.onabort = () => fired++;\nc.abort('why');\nc.abort('again');\nlet thrown;\ntry { c.signal.throwIfAborted() } catch (e) { thrown = e }\n[c.signal.aborted, c.signal.reason, fired, thrown]"),
      [true, "why", 2, "why"],
    );
    assert.deepEqual(await run("const s = AbortSignal.abort();\n[s.aborted, s.reason.name, s.reason instanceof DOMException]"), [true, "AbortError", true]);
  });

  test("AbortSignal.timeout and AbortSignal.any", async () => {
    assert.deepEqual(
      await run("const s = AbortSignal.timeout(10);\nconst before = s.aborted;\nawait new Promise((r) => setTimeout(r, 60));\n[before, s.aborted, s.reason.name]"),
      [false, true, "TimeoutError"],
    );
    assert.deepEqual(await run("const c = new AbortController();\nconst any = AbortSignal.any([c.signal, AbortSignal.timeout(10_000)]);\nc.abort('first');\n[any.aborted, any.reason]"), [true, "first"]);
  });

  test("Event, EventTarget and CustomEvent", async () => {
    assert.deepEqual(
      await run("class Bus extends EventTarget {}\nconst bus = new Bus();\nconst got = [];\nconst listener = (e) => got.push([e.type, e.detail ?? null, e.target === bus]);\nbus.addEventListener('x', listener);\nbus.addEventListener('once', () => got.push('once'), { once: true });\nbus.dispatchEvent(new CustomEvent('x', { detail: 7 }));\nbus.dispatchEvent(new Event('x'));\nbus.dispatchEvent(new Event('once'));\nbus.dispatchEvent(new Event('once'));\nbus.removeEventListener('x', listener);\nbus.dispatchEvent(new Event('x'));\nconst cancelable = new Event('c', { cancelable: true });\nbus.addEventListener('c', (e) => e.preventDefault());\n[got, bus.dispatchEvent(cancelable), cancelable.defaultPrevented]"),
      [[["x", 7, true], ["x", null, true], "once"], false, true],
    );
  });
});

describe("streams", () => {
  test("ReadableStream, TransformStream and pipeThrough", async () => {
    assert.deepEqual(
      await run("const source = new ReadableStream({ start(c) { for (const s of ['a', 'b', 'c']) c.enqueue(s); c.close() } });\nconst upper = new TransformStream({ transform(chunk, c) { c.enqueue(chunk.toUpperCase()) }, flush(c) { c.enqueue('!') } });\nconst out = [];\nfor await (const x of source.pipeThrough(upper)) out.push(x);\nout"),
      ["A", "B", "C", "!"],
    );
    assert.deepEqual(
      await run("const reader = new ReadableStream({ pull(c) { c.enqueue(1); c.close() } }).getReader();\n[await reader.read(), await reader.read()]"),
      [{ value: 1, done: false }, { value: undefined, done: true }],
    );
  });

  test("WritableStream and pipeTo", async () => {
    assert.deepEqual(
      await run("const chunks = [];\nlet closed = false;\nconst sink = new WritableStream({ write(c) { chunks.push(c) }, close() { closed = true } });\nawait new ReadableStream({ start(c) { c.enqueue(1); c.enqueue(2); c.close() } }).pipeTo(sink);\n[chunks, closed]"),
      [[1, 2], true],
    );
    assert.deepEqual(await run("const seen = [];\nconst w = new WritableStream({ write(c) { seen.push(c * 2) } }).getWriter();\nawait w.write(1);\nawait w.write(2);\nawait w.close();\nseen"), [2, 4]);
  });

  test("a stream error reaches the reader", async () => {
    assert.equal(await run("const r = new ReadableStream({ start(c) { c.error(new TypeError('broken')) } }).getReader();\nawait r.read().then(() => 'no error', (e) => e.message)"), "broken");
  });

  test("CompressionStream and DecompressionStream round trip", async () => {
    for (const format of ["gzip", "deflate", "deflate-raw"]) {
      assert.deepEqual(
        await run(`const text = 'hello '.repeat(200);\nconst compressed = await new Response(new Blob([text]).stream().pipeThrough(new CompressionStream('${format}'))).arrayBuffer();\nconst back = await new Response(new Blob([compressed]).stream().pipeThrough(new DecompressionStream('${format}'))).text();\n[compressed.byteLength < text.length / 10, back === text]`),
        [true, true],
        format,
      );
    }
    // gzip magic number
    assert.deepEqual(await run("const gz = new Uint8Array(await new Response(new Blob(['x']).stream().pipeThrough(new CompressionStream('gzip'))).arrayBuffer());\n[gz[0], gz[1]]"), [0x1f, 0x8b]);
  });
});

describe("Headers, Request, Response", () => {
  test("Headers are case-insensitive and combine values", async () => {
    assert.deepEqual(
      await run("const h = new Headers({ 'Content-Type': 'application/json' });\nh.append('X-A', '1');\nh.append('x-a', '2');\n[h.get('content-type'), h.get('X-A'), h.has('x-b'), [...h.keys()]]"),
      ["application/json", "1, 2", false, ["content-type", "x-a"]],
    );
  });

  test("Response: status, headers, json, text, arrayBuffer", async () => {
    assert.deepEqual(
      await run("const r = new Response(JSON.stringify({ a: 1 }), { status: 201, statusText: 'Created', headers: { 'content-type': 'application/json' } });\n[r.status, r.ok, r.statusText, r.headers.get('Content-Type'), await r.json(), r.bodyUsed]"),
      [201, true, "Created", "application/json", { a: 1 }, true],
    );
    assert.deepEqual(await run("[await new Response('t€').text(), [...new Uint8Array(await new Response('ab').arrayBuffer())], (await Response.json({ k: 1 }).json()).k, Response.error().type]"), ["t€", [97, 98], 1, "error"]);
    assert.equal(await run("const r = new Response('once');\nawait r.text();\nawait r.text().then(() => 'read twice', (e) => e.name)"), "TypeError");
  });

  test("Request: method, url, headers, body, clone", async () => {
    assert.deepEqual(
      await run("const req = new Request('https://ex.com/p?q=1', { method: 'POST', body: JSON.stringify({ x: 1 }), headers: { 'X-Y': 'z' } });\nconst copy = req.clone();\n[req.method, req.url, req.headers.get('x-y'), await req.json(), await copy.text()]"),
      ["POST", "https://ex.com/p?q=1", "z", { x: 1 }, '{"x":1}'],
    );
  });
});

describe("crypto", () => {
  test("getRandomValues and randomUUID", async () => {
    const [filled, uuid, distinct] = await run<[boolean, string, boolean]>(
      "const a = crypto.getRandomValues(new Uint8Array(32));\nconst b = crypto.getRandomValues(new Uint32Array(4));\n[a.some((x) => x !== 0) && b.some((x) => x !== 0), crypto.randomUUID(), crypto.randomUUID() !== crypto.randomUUID()]",
    );
    assert.equal(filled, true);
    assert.match(uuid, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.equal(distinct, true);
    assert.equal(await run("try { crypto.getRandomValues(new Uint8Array(70_000)) } catch (e) { e.name }"), "QuotaExceededError");
  });

  test("subtle.digest SHA-256 of a known input", async () => {
    assert.equal(
      await run("const d = await crypto.subtle.digest('SHA-256', new TextEncoder().encode('abc'));\n[...new Uint8Array(d)].map((b) => b.toString(16).padStart(2, '0')).join('')"),
      "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    );
  });

  test("HMAC sign and verify", async () => {
    assert.deepEqual(
      await run("const enc = new TextEncoder();\nconst key = await crypto.subtle.importKey('raw', enc.encode('key'), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign', 'verify']);\nconst msg = enc.encode('The quick brown fox jumps over the lazy dog');\nconst sig = await crypto.subtle.sign('HMAC', key, msg);\n[[...new Uint8Array(sig)].map((b) => b.toString(16).padStart(2, '0')).join(''), await crypto.subtle.verify('HMAC', key, sig, msg), await crypto.subtle.verify('HMAC', key, sig, enc.encode('tampered'))]"),
      ["f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8", true, false],
    );
  });

  test("AES-GCM encrypt and decrypt round trip; tampering is detected", async () => {
    assert.deepEqual(
      await run("const key = await crypto.subtle.generateKey({ name: 'AES-GCM', length: 256 }, true, ['encrypt', 'decrypt']);\nconst iv = crypto.getRandomValues(new Uint8Array(12));\nconst ct = new Uint8Array(await crypto.subtle.encrypt({ name: 'AES-GCM', iv }, key, new TextEncoder().encode('secret')));\nconst plain = new TextDecoder().decode(await crypto.subtle.decrypt({ name: 'AES-GCM', iv }, key, ct));\nct[0] ^= 1;\nconst tampered = await crypto.subtle.decrypt({ name: 'AES-GCM', iv }, key, ct).then(() => 'decrypted', (e) => e.name);\nconst raw = await crypto.subtle.exportKey('raw', key);\n[plain, ct.length, tampered, raw.byteLength, key instanceof CryptoKey]"),
      ["secret", 6 + 16, "OperationError", 32, true],
    );
  });
});

describe("performance and WebAssembly", () => {
  test("performance.now is monotonic and advances with time", async () => {
    const [monotonic, advanced, origin] = await run<[boolean, number, number]>(
      "const samples = [];\nfor (let i = 0; i < 1000; i++) samples.push(performance.now());\nconst start = performance.now();\nawait new Promise((r) => setTimeout(r, 30));\n[samples.every((v, i) => i === 0 || v >= samples[i - 1]), performance.now() - start, performance.timeOrigin]",
    );
    assert.equal(monotonic, true);
    // Milliseconds: at least the wait, at most the eval's limit (a busy machine may stretch the wait).
    assert.ok(advanced >= 25 && advanced < TIMEOUT_MS, `advanced ${advanced} ms over a 30 ms wait`);
    assert.ok(origin > 1_600_000_000_000);
  });

  test("WebAssembly: instantiate a hand-written module from bytes and call an export", async () => {
    assert.equal(await run(`const { instance } = await WebAssembly.instantiate(new Uint8Array(${ADD_WASM}));\ninstance.exports.add(2, 3)`), 5);
    assert.equal(await run(`new WebAssembly.Instance(new WebAssembly.Module(new Uint8Array(${ADD_WASM}))).exports.add(40, 2)`), 42);
    assert.deepEqual(await run(`const m = await WebAssembly.compile(new Uint8Array(${ADD_WASM}));\n[WebAssembly.Module.exports(m), WebAssembly.validate(new Uint8Array([1, 2, 3]))]`), [[{ name: "add", kind: "function" }], false]);
    assert.equal(await run("try { new WebAssembly.Module(new Uint8Array([0, 97, 115, 109, 9, 9, 9, 9])) } catch (e) { e instanceof WebAssembly.CompileError }"), true);
  });
});

describe("fetch", () => {
  test("exists and rejects with PolicyError: no network policy grants access", async () => {
    assert.deepEqual(
      await run("let error;\ntry { await fetch('https://example.com/data.json') } catch (e) { error = e }\n[typeof fetch, error instanceof Error, error.name, error.message]"),
      ["function", true, "PolicyError", "fetch to example.com refused: no network policy grants this sandbox network access"],
    );
    const [name, message] = await run<[string, string]>("const e = await fetch(new Request('http://10.0.0.1:8080/x', { method: 'POST', body: 'x' })).catch((e) => e);\n[e.name, e.message]");
    assert.equal(name, "PolicyError");
    assert.match(message, /no network policy grants/);
  });

  test("an invalid URL is a TypeError", async () => {
    assert.equal(await run("await fetch('http://[bad').then(() => 'fetched', (e) => e.name)"), "TypeError");
  });

  test("uncaught, it surfaces on the host as PolicyError", async () => {
    const result = await sandbox.run("await fetch('https://example.com/')");
    assert.equal(result.ok, false);
    if (result.ok) return;
    assert.ok(result.error instanceof PolicyError, `got ${result.error.name}`);
    assert.match(result.error.message, /no network policy grants/);
  });
});

describe("absent APIs", () => {
  test("host and persistence globals are absent", async () => {
    const names = [
      "Deno", "process", "require", "module", "Buffer", "global", "localStorage", "sessionStorage", "caches", "BroadcastChannel",
      "Worker", "WebSocket", "navigator", "location", "setImmediate", "close", "alert", "prompt", "EventSource",
    ];
    const types = await run<Record<string, string>>(`Object.fromEntries(${JSON.stringify(names)}.map((n) => [n, typeof globalThis[n]]))`);
    for (const name of names) assert.equal(types[name], "undefined", `${name} must be absent (is ${types[name]})`);
  });

  test("import('node:os') does not load the module", async () => {
    assert.deepEqual(
      await run("await import('node:os').then((m) => ['loaded', typeof m.hostname], () => ['refused'])"),
      ["refused"],
    );
  });
});
