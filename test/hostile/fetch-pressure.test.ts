/**
 * Sandboxed code pressing on the host through fetch: endless calls, uploads the server does not
 * read, a burst of waiting requests at the end of an eval, large inline bodies, and secrets
 * echoed back in forms exact matching misses. Loopback servers only.
 */
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { Sandbox, ResourceLimitError, type SandboxOptions } from "../../src/index.js";
import { hostRssMb } from "../helpers.js";
import { LONG_TIMEOUT_MS } from "../timing.js";

const SECRET = "Pressure+Secret/Value=42";

interface Seen {
  url: string;
  range: string | undefined;
  bodyBytes: number;
}

let server: Server;
let base: string;
let port: number;
const seen: Seen[] = [];
/** Bytes the slow reader has taken in, per request. */
let slowReadBytes = 0;
/**
 * How long the slow reader reads nothing. The sandbox looks at what it has produced after 500 ms:
 * the margin is for a busy machine, where the sandbox's timer may fire late.
 */
const SLOW_READER_PAUSE_MS = 2_500;

function handle(request: IncomingMessage, response: ServerResponse): void {
  const url = new URL(request.url ?? "/", "http://x.invalid");
  const entry: Seen = { url: url.pathname, range: request.headers.range, bodyBytes: 0 };
  seen.push(entry);
  if (url.pathname === "/slow-reader") {
    // Reads nothing for a while: the upload backs up into the host, which must not buffer it.
    request.pause();
    setTimeout(() => {
      request.on("data", (chunk: Buffer) => (slowReadBytes += chunk.byteLength));
      request.resume();
      request.on("end", () => response.end("read"));
    }, SLOW_READER_PAUSE_MS);
    return;
  }
  request.on("data", (chunk: Buffer) => (entry.bodyBytes += chunk.byteLength));
  request.on("end", () => {
    if (url.pathname === "/hang") return;
    if (url.pathname === "/big") {
      response.end(Buffer.alloc(4 * 1024 * 1024, 120));
      return;
    }
    if (url.pathname === "/encoded-location") {
      const token = String(request.headers["x-token"] ?? "");
      response.writeHead(302, { location: `/landing?t=${encodeURIComponent(token)}%ff` });
      response.end();
      return;
    }
    if (url.pathname === "/echo-range") {
      const token = String(request.headers["x-token"] ?? "");
      response.end(token.slice(0, 10));
      return;
    }
    response.end(String(entry.bodyBytes));
  });
}

before(async () => {
  server = createServer(handle);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  port = (server.address() as AddressInfo).port;
  base = `http://127.0.0.1:${port}`;
});
after(() => {
  server.closeAllConnections();
  server.close();
});

function options(net: Partial<NonNullable<SandboxOptions["net"]>> = {}, rest: SandboxOptions = {}): SandboxOptions {
  return {
    ...rest,
    globals: { BASE: base },
    net: {
      allow: [`127.0.0.1:${port}`],
      allowPrivate: ["127.0.0.1"],
      secrets: { TOKEN: { value: SECRET, hosts: [`http://127.0.0.1:${port}`] } },
      ...net,
    },
  };
}

describe("fetch pressure on the host", () => {
  test("calls past maxRequests are refused cheaply, and recorded once", async () => {
    // Cheaply: no request, no record; 2000 calls still take seconds on a busy machine, so the eval
    // gets all the time it needs (the limit under test is maxRequests).
    await using sandbox = await Sandbox.create(options({ maxRequests: 5 }, { timeoutMs: LONG_TIMEOUT_MS }));
    const result = await sandbox.run(`
      let refused = 0;
      for (let i = 0; i < 2000; i++) {
        try { await fetch("https://nope.test/" + "a".repeat(10000)); } catch (error) { if (error.name === "ResourceLimitError") refused++; }
      }
      refused`);
    assert.equal(result.ok && result.value, 1995, result.ok ? "" : `${result.error.name}: ${result.error.message}`);
    // Five refused by the allow list, then one record for the limit: never one per call.
    assert.deepEqual(result.fetches.map((record) => record.rule), [...Array(5).fill("not in the allow list"), "net.maxRequests"]);
    assert.ok(result.fetches.every((record) => record.url.length <= 2048), "URLs in records are cut short");
    const next = await sandbox.run("(await fetch(BASE + '/ok')).status");
    assert.equal(next.ok && next.value, 200, "the next eval starts a fresh count");
  });

  test("an upload the server does not read is not pushed into the host's memory", async () => {
    slowReadBytes = 0;
    await using sandbox = await Sandbox.create(options({ maxRequestBytes: 256 * 1024 * 1024 }, { timeoutMs: LONG_TIMEOUT_MS }));
    const result = await sandbox.run(`
      let pulled = 0;
      const chunk = new Uint8Array(1024 * 1024);
      const body = new ReadableStream({ pull(controller) { if (pulled >= 24 * 1024 * 1024) return controller.close(); pulled += chunk.byteLength; controller.enqueue(chunk); } });
      const response = fetch(BASE + "/slow-reader", { method: "POST", body, duplex: "half" });
      await new Promise((resolve) => setTimeout(resolve, 500));
      const before = pulled;
      await (await response).text();
      [before, pulled]`);
    assert.equal(result.ok, true, result.ok ? "" : result.error.message);
    const [pulledWhileUnread, pulledInAll] = result.ok ? (result.value as [number, number]) : [0, 0];
    // While the server read nothing, the sandbox could only fill the sockets' buffers (about 6 MiB
    // here) and one window of credit; without credit it would have pushed all 24 MiB into the host.
    assert.ok(pulledWhileUnread < 12 * 1024 * 1024, `the sandbox had produced ${pulledWhileUnread} bytes while the server read none`);
    assert.equal(pulledInAll, 24 * 1024 * 1024);
    assert.equal(slowReadBytes, 24 * 1024 * 1024, "the whole body arrives once the server reads");
  });

  test("a body streamed a byte at a time arrives whole", async () => {
    await using sandbox = await Sandbox.create(options({}, { timeoutMs: LONG_TIMEOUT_MS }));
    const result = await sandbox.run(`
      let sent = 0;
      const body = new ReadableStream({ pull(controller) { if (sent === 20000) return controller.close(); sent++; controller.enqueue(new Uint8Array([sent % 256])); } });
      await (await fetch(BASE + "/count", { method: "POST", body, duplex: "half" })).text()`);
    assert.equal(result.ok && result.value, "20000", result.ok ? "" : result.error.message);
    assert.equal(result.fetches[0]?.bytesOut, 20000);
  });

  test("requests still waiting for a slot when their eval ends are never sent", async () => {
    await using sandbox = await Sandbox.create(options({ maxConcurrent: 3 }));
    const before = seen.length;
    // Three responses hold the slots with bodies nobody reads; three more wait; the eval returns.
    const result = await sandbox.run(`
      const held = await Promise.all([1, 2, 3].map(() => fetch(BASE + "/big")));
      for (let i = 0; i < 3; i++) fetch(BASE + "/hang").catch(() => {});
      held.length`);
    assert.equal(result.ok && result.value, 3);
    await new Promise((resolve) => setTimeout(resolve, 300));
    const urls = seen.slice(before).map((entry) => entry.url);
    assert.deepEqual(urls, ["/big", "/big", "/big"], "a waiting request went out after its eval ended");
    assert.equal(await sandbox.eval("(await fetch(BASE + '/ok')).status"), 200);
  });

  test("a request body larger than a frame of results and logs does not kill the carrier", async () => {
    await using sandbox = await Sandbox.create(options({ maxRequestBytes: 8 * 1024 * 1024 }, { maxResultBytes: 1024 * 1024, maxLogBytes: 64 * 1024 }));
    const result = await sandbox.run(`await (await fetch(BASE + "/count", { method: "POST", body: new Uint8Array(3 * 1024 * 1024) })).text()`);
    assert.equal(result.ok && result.value, String(3 * 1024 * 1024), result.ok ? "" : result.error.message);
  });

  test("a secret echoed percent-encoded into a Location is withheld, even with redirect: manual", async () => {
    await using sandbox = await Sandbox.create(options());
    const manual = await sandbox.run(`(await fetch(BASE + "/encoded-location", { headers: { "x-token": env.TOKEN }, redirect: "manual" })).headers.get("location")`);
    assert.equal(manual.ok && manual.value, "(withheld: it carries a secret)");
    const followed = await sandbox.run(`await fetch(BASE + "/encoded-location", { headers: { "x-token": env.TOKEN } })`);
    assert.equal(followed.ok, false);
    assert.match(followed.ok ? "" : followed.error.message, /the redirect URL carries a secret/);
    const everything = JSON.stringify([manual, followed]);
    assert.ok(!everything.includes(SECRET) && !everything.includes(encodeURIComponent(SECRET)));
  });

  test("a request that carries a secret loses its Range header; a partial echo is not given out", async () => {
    await using sandbox = await Sandbox.create(options());
    const before = seen.length;
    const result = await sandbox.run(`await (await fetch(BASE + "/echo-range", { headers: { "x-token": env.TOKEN, range: "bytes=0-9" } })).text()`);
    assert.equal(seen[before]?.range, undefined, "Range went out with a secret");
    // The server echoed the first 10 characters of the secret: a prefix, withheld at the end.
    assert.equal(result.ok && result.value, "paddock-secret:withheld");
    const plain = await sandbox.run(`await (await fetch(BASE + "/echo-range", { headers: { range: "bytes=0-9" } })).text()`);
    assert.equal(plain.ok, true);
    assert.equal(seen.at(-1)?.range, "bytes=0-9", "without a secret, Range goes out as written");
  });

  test("a limit refusal ends the eval as ResourceLimitError when not caught, and the host's memory stays put", async () => {
    await using sandbox = await Sandbox.create(options({ maxRequests: 2 }));
    const rss = hostRssMb();
    const result = await sandbox.run(`for (let i = 0; i < 3; i++) await fetch(BASE + "/ok")`);
    assert.ok(!result.ok && result.error instanceof ResourceLimitError);
    assert.ok(hostRssMb() - rss < 100);
  });
});
