/**
 * Apps end to end: real carriers, the host's own HTTP listener on loopback, real clients (fetch,
 * and raw sockets for what fetch will not send). Limits are never raced against the clock: where
 * a request must time out, the handler never ends; where one must pass, it has seconds.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { connect } from "node:net";
import { createServer, type Server } from "node:http";
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { App, ScriptError, type AppOptions, type SandboxError } from "../../src/index.js";
import { TestRegistry } from "../../bench/npm-registry.js";

async function withApp<T>(options: AppOptions, body: (app: App) => Promise<T>): Promise<T> {
  const app = await App.create(options);
  try {
    return await body(app);
  } finally {
    await app.close(0);
  }
}

const main = (code: string): AppOptions => ({ sources: { "main.ts": code } });

/** Sends `text` on a raw connection and resolves with everything the server answers until it closes (or `quietMs` of silence). */
function rawRequest(port: number, text: string | string[], options: { gapMs?: number; quietMs?: number } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1");
    let answer = "";
    let quiet: ReturnType<typeof setTimeout> | undefined;
    const finish = () => {
      clearTimeout(quiet);
      socket.destroy();
      resolve(answer);
    };
    const rearm = () => {
      clearTimeout(quiet);
      quiet = setTimeout(finish, options.quietMs ?? 2_000);
    };
    socket.setEncoding("latin1");
    socket.on("data", (data: string) => {
      answer += data;
      rearm();
    });
    socket.on("close", finish);
    socket.on("error", (error: NodeJS.ErrnoException) => (error.code === "ECONNRESET" ? finish() : reject(error)));
    socket.on("connect", async () => {
      const parts = Array.isArray(text) ? text : [text];
      for (const part of parts) {
        if (socket.destroyed) return;
        socket.write(part);
        if (options.gapMs) await new Promise((resolve) => setTimeout(resolve, options.gapMs));
      }
      rearm();
    });
  });
}

const statusOf = (answer: string) => Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1]);

describe("apps", () => {
  let registry: TestRegistry;
  const temp: string[] = [];
  const tempDir = () => {
    const dir = mkdtempSync(join(tmpdir(), "paddock-apps-"));
    temp.push(dir);
    return dir;
  };

  before(async () => {
    registry = await TestRegistry.start();
    registry.publishInstalled("hono");
  });
  after(async () => {
    await registry.close();
    for (const dir of temp) rmSync(dir, { recursive: true, force: true });
  });

  test("the Hono app of Deno Sandbox's example works as it is, through fetch() and through the host's listener", async () => {
    const source = `import { Hono } from "hono";
const app = new Hono();
app.get("/", (c) => c.json("Hello"));
app.get("/user/:id", (c) => c.text(\`Hello, user \${c.req.param("id")}!\`));
app.post("/echo", async (c) => c.json({ got: await c.req.json(), type: c.req.header("content-type") }));
export default app;`;
    await withApp({ ...main(source), modules: { allow: ["npm:hono"], registry: registry.url, cacheDir: tempDir() } }, async (app) => {
      const hello = await app.fetch(new Request("http://app/"));
      assert.equal(hello.status, 200);
      assert.deepEqual(await hello.json(), "Hello");
      assert.equal(await (await app.fetch("http://app/user/42")).text(), "Hello, user 42!");
      const listener = await app.listen({ port: 0 });
      try {
        assert.match(listener.url, /^http:\/\/127\.0\.0\.1:\d+$/);
        const response = await fetch(`${listener.url}/echo`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ n: 1 }) });
        assert.equal(response.status, 200);
        assert.deepEqual(await response.json(), { got: { n: 1 }, type: "application/json" });
        const missing = await fetch(`${listener.url}/nowhere`);
        assert.equal(missing.status, 404);
        await missing.text();
      } finally {
        await listener.close();
      }
    });
  });

  test("the handler gets a standard Request (URL, method, headers, env, a signal) and answers with any Response", () =>
    withApp({ ...main(`export default { async fetch(request, env, ctx) {
      const url = new URL(request.url);
      return Response.json({
        isRequest: request instanceof Request, path: url.pathname, query: url.searchParams.get("q"), method: request.method,
        header: request.headers.get("x-thing"), env: env?.GREETING, globalEnv: globalThis.env?.GREETING,
        signal: request.signal instanceof AbortSignal, ctx: typeof ctx.waitUntil,
      }, { status: 201, headers: { "x-app": "yes" } });
    } }`), env: { GREETING: "hi" } }, async (app) => {
      const response = await app.fetch("http://app/a/b?q=1", { method: "PUT", headers: { "x-thing": "t" }, body: "x" });
      assert.equal(response.status, 201);
      assert.equal(response.headers.get("x-app"), "yes");
      assert.deepEqual(await response.json(), { isRequest: true, path: "/a/b", query: "1", method: "PUT", header: "t", env: "hi", globalEnv: "hi", signal: true, ctx: "function" });
    }));

  test("module state lives as long as the app; several source files import each other", async () => {
    const dir = tempDir();
    mkdirSync(join(dir, "lib"));
    writeFileSync(join(dir, "main.ts"), `import { next } from "./lib/counter.ts";\nexport default { fetch: () => new Response(String(next())) };`);
    writeFileSync(join(dir, "lib", "counter.ts"), `let n = 0;\nexport const next = (): number => ++n;`);
    for (const options of [{ dir }, { sources: { "main.ts": `import { next } from "./lib/counter";\nexport default { fetch: () => new Response(String(next())) };`, "lib/counter.ts": "let n = 0; export const next = () => ++n;" } }]) {
      await withApp(options, async (app) => {
        for (const expected of ["1", "2", "3"]) assert.equal(await (await app.fetch("http://app/")).text(), expected);
      });
    }
    await assert.rejects(App.create({ sources: { "main.ts": `import { x } from "../outside";\nexport default { fetch: () => new Response(x) };`, "other.ts": "" } }), /climbs out of the app's sources/);
    await assert.rejects(App.create({ sources: { "main.ts": `import { x } from "./missing";\nexport default { fetch: () => new Response(x) };`, "other.ts": "" } }), /is not among the app's sources/);
  });

  test("an app that fails to start, or exports no handler, fails create with a located error", async () => {
    const crash = await App.create(main(`const a = 1;\nthrow new RangeError("no config");\nexport default { fetch() {} };`)).catch((error: unknown) => error);
    assert.ok(crash instanceof ScriptError, String(crash));
    assert.equal(crash.errorName, "RangeError");
    assert.equal(crash.line, 2);
    await assert.rejects(App.create(main(`export default { get: () => 1 };`)), /must `export default` an object with a fetch\(request, env, ctx\) method/);
    await assert.rejects(App.create({ sources: { "main.ts": "export default {}" }, dir: "/tmp" } as AppOptions), /exactly one of sources and dir/);
  });

  test("what the app throws or returns wrongly is a 500 with no detail; the listener hears the error", async () => {
    const errors: SandboxError[] = [];
    await withApp({ ...main(`export default { async fetch(request) {
      const path = new URL(request.url).pathname;
      if (path === "/throw") throw new TypeError("secret detail " + path);
      if (path === "/string") return "not a response";
      if (path === "/error") return Response.error();
      return new Response("fine");
    } }`), onError: (error) => errors.push(error) }, async (app) => {
      for (const path of ["/throw", "/string", "/error"]) {
        const response = await app.fetch(`http://app${path}`);
        assert.equal(response.status, 500, path);
        const text = await response.text();
        assert.doesNotMatch(text, /secret|TypeError|Response/);
      }
      assert.equal(await (await app.fetch("http://app/ok")).text(), "fine");
      assert.equal(errors.length, 3);
      assert.ok(errors[0] instanceof ScriptError);
      assert.match(errors[0]!.message, /TypeError: secret detail \/throw/);
      assert.match(errors[1]!.message, /must return a Response.*a string/);
      assert.match(errors[2]!.message, /Response\.error\(\)/);
      assert.equal(app.stats().failed.error, 3);
    });
  });

  test("a request that loops ends in 504, and the app works again (its carrier replaced)", async () => {
    const errors: string[] = [];
    await withApp({ ...main(`let hits = 0; export default { fetch(request) { hits++; if (request.url.endsWith("/loop")) { for (;;) {} } return new Response("hits " + hits); } }`), requestTimeoutMs: 300, onError: (error) => errors.push(error.name) }, async (app) => {
      assert.equal(await (await app.fetch("http://app/")).text(), "hits 1");
      const looping = await app.fetch("http://app/loop");
      assert.equal(looping.status, 504);
      await looping.text();
      // The next request may come while the stuck carrier is still being found out: it waits for it or gets a fresh one.
      let text = "";
      for (let attempt = 0; attempt < 50 && !text.startsWith("hits"); attempt++) {
        const response = await app.fetch("http://app/");
        text = await response.text();
        if (!text.startsWith("hits")) await new Promise((resolve) => setTimeout(resolve, 200));
      }
      assert.equal(text, "hits 1", "a fresh start of the app's code");
      assert.equal(app.stats().starts, 2);
      assert.deepEqual(errors.slice(0, 1), ["TimeoutError"]);
    });
  });

  test("a request that never answers ends in 504 without harming the carrier", () =>
    withApp({ ...main(`export default { fetch(request) { if (request.url.endsWith("/hang")) return new Promise(() => {}); return new Response("ok"); } }`), requestTimeoutMs: 200 }, async (app) => {
      const hang = await app.fetch("http://app/hang");
      assert.equal(hang.status, 504);
      await hang.text();
      assert.equal(await (await app.fetch("http://app/")).text(), "ok");
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      assert.equal(await (await app.fetch("http://app/")).text(), "ok");
      assert.equal(app.stats().starts, 1, "the probe found the carrier answering");
    }));

  test("beyond maxConcurrentRequests: 503 with Retry-After, and the requests in progress finish", () =>
    withApp({ ...main(`let release; const gate = new Promise((resolve) => (release = resolve));
      export default { async fetch(request) { if (request.url.endsWith("/open")) { release(); return new Response("opened"); } await gate; return new Response("done"); } }`), maxConcurrentRequests: 2 }, async (app) => {
      const first = app.fetch("http://app/1");
      const second = app.fetch("http://app/2");
      await new Promise((resolve) => setTimeout(resolve, 50));
      const refused = await app.fetch("http://app/open");
      assert.equal(refused.status, 503);
      assert.equal(refused.headers.get("retry-after"), "1");
      await refused.text();
      assert.equal(app.stats().failed.overloaded, 1);
      const early = await Promise.race([first, second, new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 100))]);
      assert.equal(early, undefined, "both requests still wait at the gate");
      assert.equal(app.stats().inFlight, 2);
    }));

  test("request bodies stream in, response bodies stream out, each no faster than the other side reads", () =>
    withApp({ ...main(`let produced = 0;
      export default { async fetch(request) {
        const path = new URL(request.url).pathname;
        if (path === "/count") { let bytes = 0; const reader = request.body.getReader(); for (;;) { const { done, value } = await reader.read(); if (done) break; bytes += value.byteLength; } return new Response(String(bytes)); }
        if (path === "/produced") return new Response(String(produced));
        if (path === "/endless") return new Response(new ReadableStream({ pull(controller) { produced += 65536; controller.enqueue(new Uint8Array(65536)); } }));
        if (path === "/echo") return new Response(request.body);
        return new Response("?");
      } }`) }, async (app) => {
      let sent = 0;
      const upload = new ReadableStream<Uint8Array>({
        pull(controller) {
          if (sent >= 6 * 1024 * 1024) return controller.close();
          sent += 100_000;
          controller.enqueue(new Uint8Array(100_000).fill(7));
        },
      });
      const counted = await app.fetch("http://app/count", { method: "POST", body: upload, duplex: "half" } as RequestInit);
      assert.equal(await counted.text(), String(sent));
      const echoed = await app.fetch("http://app/echo", { method: "POST", body: "x".repeat(1_000_000) });
      assert.equal((await echoed.text()).length, 1_000_000);
      // A response the client does not read: the app is not let to produce more than a window or so ahead.
      const endless = await app.fetch("http://app/endless");
      const reader = endless.body!.getReader();
      await reader.read();
      await new Promise((resolve) => setTimeout(resolve, 300));
      const produced = Number(await (await app.fetch("http://app/produced")).text());
      assert.ok(produced <= 1024 * 1024, `the app produced ${produced} bytes ahead of a client that read 64 KiB`);
      await reader.cancel();
    }));

  test("a response whose body is not ready yet sends its head at once, then its chunks in order as they come", () =>
    withApp(main(`let release; const gate = new Promise((resolve) => (release = resolve));
      export default { fetch(request) {
        if (request.url.endsWith("/release")) { release(); return new Response("released"); }
        let step = 0;
        return new Response(new ReadableStream({ async pull(controller) {
          if (step === 0) await gate;
          controller.enqueue(new TextEncoder().encode(["first,", "second,", "third"][step]));
          if (++step === 3) controller.close();
        } }), { headers: { "content-type": "text/event-stream" } });
      } }`), async (app) => {
      const events = await app.fetch("http://app/events");
      assert.equal(events.headers.get("content-type"), "text/event-stream", "the head came while the body waited at the gate");
      assert.equal(await (await app.fetch("http://app/release")).text(), "released");
      assert.equal(await events.text(), "first,second,third");
    }));

  test("many tiny chunks made at once travel together; a body read partly before the answer does not reset the client", () =>
    withApp({ ...main(`export default { async fetch(request) {
      const path = new URL(request.url).pathname;
      if (path === "/tiny") { const one = new Uint8Array([120]); return new Response(new ReadableStream({ start(controller) { for (let i = 0; i < 65536; i++) controller.enqueue(one); controller.close(); } })); }
      if (path === "/upload") return new Response("refused", { status: 403 });
      return new Response("?");
    } }`), memoryMb: 64 }, async (app) => {
      const tiny = await app.fetch("http://app/tiny");
      assert.equal((await tiny.text()).length, 65536);
      const listener = await app.listen({ port: 0 });
      try {
        for (let i = 0; i < 5; i++) {
          const response = await fetch(`${listener.url}/upload`, { method: "POST", body: new Uint8Array(4 * 1024 * 1024) });
          assert.equal(response.status, 403);
          assert.equal(await response.text(), "refused");
        }
      } finally {
        await listener.close();
      }
      assert.equal(app.stats().starts, 1);
    }));

  test("a body that stops coming is given up (408) and frees its slot; a caller's failing body stream gets 400", async () => {
    await withApp({ ...main(`export default { async fetch(request) { return new Response(request.body ? String((await request.arrayBuffer()).byteLength) : "no body"); } }`), maxConcurrentRequests: 1, requestBodyIdleTimeoutMs: 300 }, async (app) => {
      const listener = await app.listen({ port: 0 });
      try {
        const slow = await rawRequest(listener.port, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789", { quietMs: 10_000 });
        assert.equal(statusOf(slow), 408, slow);
        const response = await fetch(`${listener.url}/`);
        assert.equal(await response.text(), "no body");
      } finally {
        await listener.close();
      }
      const failing = new ReadableStream<Uint8Array>({
        start(controller) {
          controller.enqueue(new Uint8Array(10));
          controller.error(new Error("the caller's stream broke"));
        },
      });
      const broken = await app.fetch("http://app/", { method: "POST", body: failing, duplex: "half" } as RequestInit);
      assert.equal(broken.status, 400);
      await broken.text();
      assert.equal(app.stats().failed.slowBody, 1);
    });
  });

  test("a caller that cancels the response body aborts the app's request; console output arrives without waiting for another request", async () => {
    const logs: string[] = [];
    await withApp({ ...main(`let aborted = false;
      export default { fetch(request) {
        if (request.url.endsWith("/aborted")) return new Response(String(aborted));
        request.signal.addEventListener("abort", () => { aborted = true; });
        console.log("serving", new URL(request.url).pathname);
        return new Response(new ReadableStream({ pull(controller) { return new Promise((resolve) => setTimeout(() => { controller.enqueue(new Uint8Array(10)); resolve(); }, 20)); } }));
      } }`), onLog: (entry) => logs.push(entry.message) }, async (app) => {
      const endless = await app.fetch("http://app/endless");
      const reader = endless.body!.getReader();
      await reader.read();
      await reader.cancel();
      let text = "false";
      for (let attempt = 0; attempt < 50 && text !== "true"; attempt++) {
        text = await (await app.fetch("http://app/aborted")).text();
        if (text !== "true") await new Promise((resolve) => setTimeout(resolve, 100));
      }
      assert.equal(text, "true");
      for (let waited = 0; !logs.includes("serving /endless") && waited < 10_000; waited += 50) await new Promise((resolve) => setTimeout(resolve, 50));
      assert.ok(logs.includes("serving /endless"), logs.join("; "));
    });
  });

  test("a carrier busy with honest work after another request timed out is not taken for stuck", () =>
    withApp({ ...main(`export default { fetch(request) {
      if (request.url.endsWith("/hang")) return new Promise(() => {});
      if (request.url.endsWith("/work")) { const until = Date.now() + 400; while (Date.now() < until) {} }
      return new Response("done");
    } }`), requestTimeoutMs: 3_000 }, async (app) => {
      const hang = app.fetch("http://app/hang");
      await new Promise((resolve) => setTimeout(resolve, 2_900));
      const work = app.fetch("http://app/work");
      assert.equal((await hang).status, 504);
      assert.equal(await (await work).text(), "done");
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      assert.equal(await (await app.fetch("http://app/")).text(), "done");
      assert.equal(app.stats().starts, 1, "the probe waited for the carrier's honest work");
    }));

  test("bodies over maxRequestBodyBytes are refused with 413, declared or streamed", () =>
    withApp({ ...main(`export default { async fetch(request) { return new Response(String((await request.arrayBuffer()).byteLength)); } }`), maxRequestBodyBytes: 1000 }, async (app) => {
      assert.equal(await (await app.fetch("http://app/", { method: "POST", body: "x".repeat(1000) })).text(), "1000");
      const declared = await app.fetch("http://app/", { method: "POST", body: "x".repeat(1001) });
      assert.equal(declared.status, 413);
      await declared.text();
      const streamed = new ReadableStream<Uint8Array>({
        start(controller) {
          for (let i = 0; i < 5; i++) controller.enqueue(new Uint8Array(500));
          controller.close();
        },
      });
      const chunked = await app.fetch("http://app/", { method: "POST", body: streamed, duplex: "half" } as RequestInit);
      assert.equal(chunked.status, 413);
      await chunked.text();
      assert.equal(app.stats().failed.tooLarge, 2);
    }));

  test("a memory bomb loses its own request (502) and the app comes back on the next one", () =>
    withApp({ ...main(`export default { fetch(request) { if (request.url.endsWith("/bomb")) { const a = []; for (;;) a.push(new Array(100000).fill(1)); } return new Response("alive"); } }`), memoryMb: 64 }, async (app) => {
      const bomb = await app.fetch("http://app/bomb");
      assert.equal(bomb.status, 502);
      await bomb.text();
      assert.equal(await (await app.fetch("http://app/")).text(), "alive");
      assert.equal(app.stats().starts, 2);
    }));

  test("a restart that fails is not retried for every request: 500, then 503 with Retry-After, then a retry a second later", async () => {
    let healthy = true;
    const config: Server = createServer((_, response) => {
      response.statusCode = healthy ? 200 : 500;
      response.end("config");
    });
    await new Promise<void>((resolve) => config.listen(0, "127.0.0.1", resolve));
    const port = (config.address() as { port: number }).port;
    const errors: string[] = [];
    try {
      const code = `const config = await fetch("http://127.0.0.1:${port}/");
        if (!config.ok) throw new Error("no config");
        export default { fetch(request) { if (request.url.endsWith("/bomb")) { const a = []; for (;;) a.push(new Array(100000).fill(1)); } return new Response("ok"); } };`;
      await withApp({ ...main(code), memoryMb: 64, net: { allow: [`127.0.0.1:${port}`], allowPrivate: ["127.0.0.1"] }, onError: (error) => errors.push(error.message) }, async (app) => {
        assert.equal(await (await app.fetch("http://app/")).text(), "ok");
        assert.equal((await app.fetch("http://app/bomb")).status, 502);
        healthy = false;
        assert.equal((await app.fetch("http://app/")).status, 500);
        const refused = await app.fetch("http://app/");
        assert.equal(refused.status, 503);
        assert.equal(refused.headers.get("retry-after"), "1");
        assert.ok(errors.some((message) => /no config/.test(message)), errors.join("; "));
        healthy = true;
        await new Promise((resolve) => setTimeout(resolve, 1_100));
        assert.equal(await (await app.fetch("http://app/")).text(), "ok");
      });
    } finally {
      config.close();
    }
  });

  test("a small app serves request after request without its carrier's heap filling up", () =>
    // A carrier that read each request in a blocking read kept ~2.5 KB of every request until its
    // heap ran out (about 8,000 requests at 32 MB): the app restarted and lost what was in flight.
    withApp({ ...main(`export default { fetch: () => new Response("Hello, world!") }`), memoryMb: 32 }, async (app) => {
      let next = 0;
      const worker = async () => {
        while (next++ < 20_000) await (await app.fetch("http://app/")).text();
      };
      await Promise.all(Array.from({ length: 4 }, worker));
      assert.equal(app.stats().starts, 1, JSON.stringify(app.stats()));
      assert.equal(app.stats().failed.lost, 0);
    }));

  test("an idle app gives its carrier back and starts again on the next request", () =>
    withApp({ ...main(`const started = Date.now(); export default { fetch: () => new Response("up") }`), idleTimeoutMs: 100 }, async (app) => {
      assert.equal(await (await app.fetch("http://app/")).text(), "up");
      for (let waited = 0; app.stats().running && waited < 10_000; waited += 50) await new Promise((resolve) => setTimeout(resolve, 50));
      assert.equal(app.stats().running, false);
      assert.equal(await (await app.fetch("http://app/")).text(), "up");
      assert.equal(app.stats().starts, 2);
    }));

  test("close() drains requests in progress and refuses new ones", async () => {
    const app = await App.create(main(`export default { async fetch() { await new Promise((resolve) => setTimeout(resolve, 300)); return new Response("slow but done"); } }`));
    const slow = app.fetch("http://app/");
    await new Promise((resolve) => setTimeout(resolve, 50));
    const closing = app.close();
    const late = await app.fetch("http://app/");
    assert.equal(late.status, 503);
    await late.text();
    assert.equal(await (await slow).text(), "slow but done");
    await closing;
  });

  test("outbound fetch follows the app's net policy: private addresses are refused", async () => {
    const origin: Server = createServer((_, response) => response.end("internal secret"));
    await new Promise<void>((resolve) => origin.listen(0, "127.0.0.1", resolve));
    const port = (origin.address() as { port: number }).port;
    try {
      const code = `export default { async fetch() { try { const r = await fetch("http://127.0.0.1:${port}/"); return new Response("reached: " + await r.text()); } catch (e) { return new Response(e.name + ": " + e.message); } } }`;
      await withApp({ ...main(code), net: { allow: ["*"] } }, async (app) => {
        const text = await (await app.fetch("http://app/")).text();
        assert.match(text, /^PolicyError/);
        assert.doesNotMatch(text, /internal secret/);
      });
      await withApp(main(code), async (app) => assert.match(await (await app.fetch("http://app/")).text(), /^PolicyError/));
    } finally {
      origin.close();
    }
  });

  describe("the host's listener against hostile clients", () => {
    let app: App;
    let listener: Awaited<ReturnType<App["listen"]>>;
    before(async () => {
      app = await App.create(main(`export default { async fetch(request) {
        const url = new URL(request.url);
        const body = request.body ? await request.text() : "";
        const later = (parts) => new ReadableStream({ async pull(controller) { await new Promise((resolve) => setTimeout(resolve, 5)); const part = parts.shift(); if (part === undefined) controller.close(); else controller.enqueue(new TextEncoder().encode(part)); } });
        if (url.pathname === "/lying") return new Response("short", { headers: { "content-length": "100" } });
        if (url.pathname === "/lying-stream") return new Response(later(["sh", "ort"]), { headers: { "content-length": "100" } });
        if (url.pathname === "/odd-length") return new Response(later(["x".repeat(50), "y".repeat(50)]), { headers: { "content-length": "1e2" } });
        if (url.pathname === "/framing") return new Response("x", { headers: { connection: "close", "transfer-encoding": "chunked", "x-kept": "1" } });
        return new Response(JSON.stringify({ path: url.pathname, body, headers: [...request.headers.keys()] }));
      } }`));
      listener = await app.listen({ port: 0, headersTimeoutMs: 1_000, maxHeaderBytes: 8 * 1024 });
    });
    after(async () => {
      await listener.close();
      await app.close(0);
    });

    test("conflicting Content-Length and Transfer-Encoding, or two Content-Lengths: 400, and nothing smuggled reaches the app", async () => {
      const smuggled = "GET /admin HTTP/1.1\r\nHost: x\r\n\r\n";
      const conflicting = await rawRequest(listener.port, `POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${smuggled}`);
      assert.equal(statusOf(conflicting), 400, conflicting);
      assert.doesNotMatch(conflicting, /\/admin/);
      const doubled = await rawRequest(listener.port, `POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 40\r\n\r\nhello${smuggled}`);
      assert.equal(statusOf(doubled), 400, doubled);
      assert.doesNotMatch(doubled, /\/admin/);
      const badChunk = await rawRequest(listener.port, `POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n${smuggled}`);
      assert.equal(statusOf(badChunk), 400, badChunk);
      assert.doesNotMatch(badChunk, /\/admin/);
      // A proper chunked body arrives whole, and hop-by-hop headers do not reach the app.
      const chunked = await rawRequest(listener.port, `POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n`);
      assert.equal(statusOf(chunked), 200, chunked);
      const json = JSON.parse(chunked.slice(chunked.indexOf("{"), chunked.lastIndexOf("}") + 1)) as { body: string; headers: string[] };
      assert.equal(json.body, "hello");
      assert.ok(!json.headers.includes("transfer-encoding") && !json.headers.includes("connection"), String(json.headers));
    });

    test("huge headers: 431; a slow client is cut off after headersTimeoutMs while others are served", async () => {
      const huge = await rawRequest(listener.port, `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(16 * 1024)}\r\n\r\n`);
      assert.equal(statusOf(huge), 431, huge.slice(0, 100));
      const started = performance.now();
      const slow = rawRequest(listener.port, ["GET / HTTP/1.1\r\n", "Host: x\r\n", "X-A: 1\r\n", "X-B: 1\r\n", "X-C: 1\r\n", "X-D: 1\r\n", "X-E: 1\r\n"], { gapMs: 600, quietMs: 20_000 });
      const response = await fetch(`${listener.url}/meanwhile`);
      assert.equal(response.status, 200);
      await response.text();
      const answer = await slow;
      assert.ok(answer === "" || statusOf(answer) === 408, answer);
      assert.ok(performance.now() - started < 15_000, "the slow client was cut off well before it finished");
    });

    test("the app cannot frame the connection: hop-by-hop headers are dropped, a whole body gets its real length, a streamed body that lies ends the connection", async () => {
      const framing = await fetch(`${listener.url}/framing`);
      assert.equal(framing.headers.get("x-kept"), "1");
      assert.equal(framing.headers.get("connection"), "keep-alive");
      assert.equal(await framing.text(), "x");
      const lying = await rawRequest(listener.port, "GET /lying HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
      assert.match(lying, /content-length: 5\r\n/i);
      assert.ok(lying.endsWith("\r\n\r\nshort"), lying);
      await assert.rejects(fetch(`${listener.url}/lying-stream`).then((response) => response.text()));
      // A length Node would read as a number but a client might not ("1e2") is not passed on.
      const odd = await rawRequest(listener.port, "GET /odd-length HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
      assert.doesNotMatch(odd, /1e2/);
      assert.match(odd, /transfer-encoding: chunked/i);
      assert.ok(odd.includes("x".repeat(50)) && odd.includes("y".repeat(50)), odd);
      const after = await fetch(`${listener.url}/still`);
      assert.equal(after.status, 200);
      await after.text();
    });

    test("forbidden methods get 405 from the host; absolute-form targets reach the app as paths", async () => {
      const trace = await rawRequest(listener.port, "TRACE / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
      assert.equal(statusOf(trace), 405, trace);
      const absolute = await rawRequest(listener.port, "GET http://elsewhere.example/secret HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
      assert.equal(statusOf(absolute), 200, absolute);
      assert.match(absolute, /"path":"\/secret"/);
      const twoHosts = await rawRequest(listener.port, "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n");
      assert.equal(statusOf(twoHosts), 400, twoHosts);
      const doubleSlash = await rawRequest(listener.port, "GET //elsewhere.example/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
      assert.match(doubleSlash, /"path":"\/\/elsewhere.example\/x"/);
    });
  });
});
