/**
 * Self-test of the network fixtures: the origin's routes answer as servers.ts documents, a trap
 * counts connections, and (where `unshare -rn` works) the namespace runner sets up traps on every
 * forbidden address that a direct connection does reach, so an SSRF breach would be detected.
 *
 * All traffic from this file goes to loopback; anything else happens inside the namespace.
 */
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readlinkSync, mkdtempSync, writeFileSync, rmSync } from "node:fs";
import { get as httpGet, type IncomingHttpHeaders } from "node:http";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createGunzip, gunzipSync } from "node:zlib";
import { FORBIDDEN_ADDRESSES, NETNS_ENV, inNamespace, netnsAvailable, runInNamespace } from "./netns.js";
import { eventually } from "../processes.js";
import { SLACK_MS } from "../timing.js";
import {
  BOMB_INFLATED_BYTES, GZIP_JSON, JSON_BODY, SET_COOKIES, TEXT_PATTERN, startOrigin, startTrap, type Origin, type Trap,
} from "./servers.js";

/** A raw GET: no decompression, no redirect following, the body as bytes. */
function rawGet(url: string): Promise<{ status: number; headers: IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    httpGet(url, { agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on("error", reject);
    }).on("error", reject);
  });
}

/** Opens a TCP connection and closes it without sending anything. */
function touch(host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port });
    socket.once("connect", () => {
      socket.destroy();
      resolve();
    });
    socket.once("error", reject);
  });
}

/** Waits until `trap.hits` reaches `count` (the server sees a connection a moment after the client, later on a busy machine). */
async function hitsReach(trap: Trap, count: number): Promise<number> {
  await eventually(() => trap.hits >= count, SLACK_MS, 10);
  return trap.hits;
}

describe("origin", () => {
  let origin: Origin;
  before(async () => {
    origin = await startOrigin();
  });
  after(() => origin.close());

  test("url() and origin name the server", () => {
    assert.equal(origin.host, "127.0.0.1");
    assert.ok(origin.port > 0);
    assert.equal(origin.origin, `http://127.0.0.1:${origin.port}`);
    assert.equal(origin.url(), `http://127.0.0.1:${origin.port}/`);
    assert.equal(origin.url("/json?x=1"), `http://127.0.0.1:${origin.port}/json?x=1`);
  });

  test("/json", async () => {
    const response = await fetch(origin.url("/json"));
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-type"), "application/json");
    assert.deepEqual(await response.json(), JSON_BODY);
  });

  test("/text?bytes=N", async () => {
    const response = await fetch(origin.url("/text?bytes=100000"));
    assert.equal(response.headers.get("content-length"), "100000");
    const text = await response.text();
    assert.equal(text.length, 100_000);
    assert.ok(text.startsWith(TEXT_PATTERN + TEXT_PATTERN));
    assert.equal(await (await fetch(origin.url("/text"))).text(), TEXT_PATTERN.slice(0, 16));
    assert.equal((await fetch(origin.url("/text?bytes=-1"))).status, 400);
  });

  test("/echo returns the request, and the request is recorded", async () => {
    origin.requests.length = 0;
    const body = "héllo, wörld";
    const response = await fetch(origin.url("/echo?q=1"), {
      method: "POST",
      headers: { authorization: "Bearer secret-token", "x-custom": "yes", "content-type": "text/plain" },
      body,
    });
    const echo = (await response.json()) as { method: string; url: string; headers: Record<string, string>; body: string; bodyBytes: number };
    assert.equal(echo.method, "POST");
    assert.equal(echo.url, "/echo?q=1");
    assert.equal(echo.headers.authorization, "Bearer secret-token");
    assert.equal(echo.headers["x-custom"], "yes");
    assert.equal(echo.body, body);
    assert.equal(echo.bodyBytes, Buffer.byteLength(body));

    assert.equal(origin.requests.length, 1);
    const [recorded] = origin.requests;
    assert.ok(recorded);
    assert.equal(recorded.method, "POST");
    assert.equal(recorded.url, "/echo?q=1");
    assert.equal(recorded.headers.authorization, "Bearer secret-token");
    assert.ok(recorded.rawHeaders.includes("x-custom"));
    assert.equal(recorded.body.toString("utf8"), body);
    assert.equal(recorded.bodyBytes, Buffer.byteLength(body));
    assert.equal(recorded.bodyComplete, true);
    assert.equal(recorded.remoteAddress, "127.0.0.1");
    assert.ok(recorded.connection >= 1);
  });

  test("/status/N", async () => {
    const teapot = await fetch(origin.url("/status/418"));
    assert.equal(teapot.status, 418);
    assert.equal(await teapot.text(), "status 418");
    const empty = await fetch(origin.url("/status/204"));
    assert.equal(empty.status, 204);
    assert.equal(await empty.text(), "");
    assert.equal((await fetch(origin.url("/status/503"))).status, 503);
    assert.equal((await fetch(origin.url("/status/100"))).status, 400);
  });

  test("/redirect?to=…&status=S", async () => {
    const target = origin.url("/json");
    const plain = await fetch(origin.url(`/redirect?to=${encodeURIComponent(target)}`), { redirect: "manual" });
    assert.equal(plain.status, 302);
    assert.equal(plain.headers.get("location"), target);
    for (const status of [301, 303, 307, 308]) {
      const response = await fetch(origin.url(`/redirect?to=${encodeURIComponent(target)}&status=${status}`), { redirect: "manual" });
      assert.equal(response.status, status);
      assert.equal(response.headers.get("location"), target);
    }
    const followed = await fetch(origin.url(`/redirect?to=${encodeURIComponent(target)}`));
    assert.equal(followed.redirected, true);
    assert.deepEqual(await followed.json(), JSON_BODY);
    assert.equal((await fetch(origin.url("/redirect?to=/json&status=200"), { redirect: "manual" })).status, 400);
    assert.equal((await fetch(origin.url("/redirect"), { redirect: "manual" })).status, 400);
  });

  test("/redirect-chain?n=K makes K hops, then 200", async () => {
    origin.requests.length = 0;
    const response = await fetch(origin.url("/redirect-chain?n=4"));
    assert.equal(response.status, 200);
    assert.equal(response.redirected, true);
    assert.deepEqual(await response.json(), { done: true, hops: 4 });
    assert.equal(origin.requests.length, 5);
    const first = await fetch(origin.url("/redirect-chain?n=2&status=307"), { redirect: "manual" });
    assert.equal(first.status, 307);
    assert.equal(first.headers.get("location"), "/redirect-chain?n=1&status=307&hops=2");
    // More hops than fetch's limit of 20: the client must give up.
    await assert.rejects(fetch(origin.url("/redirect-chain?n=25")));
  });

  test("/stream sends chunks over time, after the headers", async () => {
    const start = performance.now();
    const response = await fetch(origin.url("/stream?chunks=4&delayMs=100"));
    assert.equal(response.headers.get("content-length"), null);
    assert.ok(response.body);
    const decoder = new TextDecoder();
    let text = "";
    let reads = 0;
    for await (const chunk of response.body) {
      text += decoder.decode(chunk, { stream: true });
      reads += 1;
    }
    const endAt = performance.now() - start;
    assert.equal(text, "chunk 0\nchunk 1\nchunk 2\nchunk 3\n");
    assert.ok(reads >= 2, `${reads} reads`);
    assert.ok(endAt >= 380, `body ended after ${endAt} ms`);
    // The headers go out before the first chunk: with that chunk a minute away, they still arrive
    // (within the slack a busy machine needs, not after 100 ms as a wall-clock bound would demand).
    const early = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const headers = await Promise.race([
      fetch(origin.url("/stream?chunks=1&delayMs=60000"), { signal: early.signal }).then((response) => response.status),
      new Promise<string>((resolve) => (timer = setTimeout(() => resolve("no headers"), SLACK_MS))),
    ]);
    clearTimeout(timer);
    early.abort();
    assert.equal(headers, 200, "the headers waited for the first chunk");
    const raw = await rawGet(origin.url("/stream?chunks=2&delayMs=0"));
    assert.equal(raw.headers["transfer-encoding"], "chunked");
    assert.equal(raw.body.toString(), "chunk 0\nchunk 1\n");
  });

  test("/slow-headers?ms=D waits before the headers", async () => {
    const start = performance.now();
    const response = await fetch(origin.url("/slow-headers?ms=300"));
    const elapsed = performance.now() - start;
    assert.equal(await response.text(), "slow");
    assert.ok(elapsed >= 290, `headers after ${elapsed} ms`);
  });

  test("/hang never answers, but is recorded", async () => {
    origin.requests.length = 0;
    // Long enough for the request to reach the origin on a busy machine before the client gives up.
    await assert.rejects(fetch(origin.url("/hang"), { signal: AbortSignal.timeout(1_000) }), { name: "TimeoutError" });
    assert.equal(origin.requests.length, 1);
    assert.equal(origin.requests[0]?.url, "/hang");
  });

  test("/reset drops the connection", async () => {
    await assert.rejects(fetch(origin.url("/reset")), TypeError);
  });

  test("/gzip is gzip-encoded JSON", async () => {
    const raw = await rawGet(origin.url("/gzip"));
    assert.equal(raw.headers["content-encoding"], "gzip");
    assert.equal(Number(raw.headers["content-length"]), raw.body.length);
    assert.deepEqual(JSON.parse(gunzipSync(raw.body).toString()), GZIP_JSON);
    // fetch decodes it transparently.
    assert.deepEqual(await (await fetch(origin.url("/gzip"))).json(), GZIP_JSON);
  });

  test("/bomb is a small gzip body that inflates to 100 MiB", async () => {
    const raw = await rawGet(origin.url("/bomb"));
    assert.equal(raw.status, 200);
    assert.equal(raw.headers["content-encoding"], "gzip");
    assert.equal(raw.headers["x-inflated-bytes"], String(BOMB_INFLATED_BYTES));
    assert.ok(raw.body.length < 200 * 1024, `${raw.body.length} compressed bytes`);
    // Inflated as a stream, counting, so the test itself never holds the 100 MiB.
    const inflated = await new Promise<number>((resolve, reject) => {
      let total = 0;
      const gunzip = createGunzip();
      gunzip.on("data", (chunk: Buffer) => (total += chunk.length));
      gunzip.on("end", () => resolve(total));
      gunzip.on("error", reject);
      gunzip.end(raw.body);
    });
    assert.equal(inflated, BOMB_INFLATED_BYTES);
    const small = await rawGet(origin.url("/bomb?mb=2"));
    assert.equal(small.headers["x-inflated-bytes"], String(2 * 1024 * 1024));
  });

  test("/big?bytes=N, and a body shorter than its content-length", async () => {
    const response = await fetch(origin.url("/big?bytes=3000000"));
    assert.equal(response.headers.get("content-length"), "3000000");
    assert.equal((await response.arrayBuffer()).byteLength, 3_000_000);
    const lying = await fetch(origin.url("/big?bytes=1000&declare=5000"));
    assert.equal(lying.headers.get("content-length"), "5000");
    await assert.rejects(lying.arrayBuffer());
    assert.equal((await fetch(origin.url("/big?bytes=10&declare=5"))).status, 400);
  });

  test("/headers?name=value sets response headers", async () => {
    const response = await fetch(origin.url("/headers?x-one=1&x-two=a&x-two=b&Cache-Control=no-store"));
    assert.equal(response.headers.get("x-one"), "1");
    assert.equal(response.headers.get("x-two"), "a, b");
    assert.equal(response.headers.get("cache-control"), "no-store");
    assert.deepEqual(await response.json(), { "x-one": ["1"], "x-two": ["a", "b"], "cache-control": ["no-store"] });
    assert.equal((await fetch(origin.url("/headers?bad%20name=1"))).status, 400);
  });

  test("/set-cookie", async () => {
    const response = await fetch(origin.url("/set-cookie"));
    assert.deepEqual(response.headers.getSetCookie(), [...SET_COOKIES]);
    assert.equal(await response.text(), "cookies set");
  });

  test("anything else is a 404", async () => {
    const response = await fetch(origin.url("/nope"));
    assert.equal(response.status, 404);
    assert.deepEqual(await response.json(), { error: "not found", path: "/nope" });
  });

  test("connections are counted, and HEAD works", async () => {
    const before = origin.connections;
    await rawGet(origin.url("/json"));
    assert.equal(origin.connections, before + 1);
    const head = await fetch(origin.url("/json"), { method: "HEAD" });
    assert.equal(head.status, 200);
    assert.equal(await head.text(), "");
  });
});

test("origin on ::1", async () => {
  const origin = await startOrigin("::1");
  try {
    assert.equal(origin.url("/json"), `http://[::1]:${origin.port}/json`);
    assert.deepEqual(await (await fetch(origin.url("/json"))).json(), JSON_BODY);
    assert.equal(origin.requests[0]?.remoteAddress, "::1");
  } finally {
    await origin.close();
  }
});

test("origin.close() ends hung, streaming and idle connections at once", async () => {
  const origin = await startOrigin();
  const hung = fetch(origin.url("/hang")).catch((error: unknown) => error);
  const streaming = fetch(origin.url("/stream?chunks=1000&delayMs=1000")).then((response) => response.text()).catch((error: unknown) => error);
  const slow = fetch(origin.url("/slow-headers?ms=60000")).catch((error: unknown) => error);
  await fetch(origin.url("/json")).then((response) => response.text()); // leaves an idle keep-alive socket
  while (origin.requests.length < 4) await new Promise((resolve) => setTimeout(resolve, 10));
  const start = performance.now();
  await origin.close();
  const elapsed = performance.now() - start;
  // At once: not after the keep-alive timeout (5 s), the slow headers (60 s) or the stream (1000 s).
  assert.ok(elapsed < 4_000, `close took ${elapsed} ms`);
  for (const outcome of await Promise.all([hung, streaming, slow])) assert.ok(outcome instanceof Error, String(outcome));
  await origin.close(); // idempotent
});

describe("trap", () => {
  test("counts TCP connections on 127.0.0.2 and answers HTTP with 200 trap", async () => {
    const trap = await startTrap("127.0.0.2");
    try {
      assert.equal(trap.host, "127.0.0.2");
      assert.equal(trap.hits, 0);
      await touch("127.0.0.2", trap.port); // no byte sent: still a hit
      assert.equal(await hitsReach(trap, 1), 1);
      const response = await fetch(trap.url("/anything"));
      assert.equal(response.status, 200);
      assert.equal(await response.text(), "trap");
      assert.equal(await hitsReach(trap, 2), 2);
    } finally {
      await trap.close();
    }
  });

  test("on ::1, and on a chosen port", async () => {
    const first = await startTrap("::1");
    const port = first.port;
    await first.close();
    const trap = await startTrap("::1", port);
    const other = await startTrap("127.0.0.3", port);
    try {
      assert.equal(trap.port, port);
      assert.equal(trap.url(), `http://[::1]:${port}/`);
      await touch("::1", port);
      assert.equal(await hitsReach(trap, 1), 1);
      assert.equal(other.hits, 0);
      await touch("127.0.0.3", port);
      assert.equal(await hitsReach(other, 1), 1);
      assert.equal(trap.hits, 1);
    } finally {
      await trap.close();
      await other.close();
    }
  });

  test("close() ends connections that never sent anything", async () => {
    const trap = await startTrap("127.0.0.2");
    const socket = connect({ host: "127.0.0.2", port: trap.port });
    const closed = new Promise((resolve) => socket.once("close", resolve));
    socket.on("error", () => {});
    await hitsReach(trap, 1);
    await trap.close();
    await closed;
  });
});

describe("network namespace", () => {
  const netnsJs = new URL("./netns.js", import.meta.url).href;

  test("the normal suite is not in a namespace", () => {
    assert.equal(inNamespace(), false);
  });

  test("a forged PADDOCK_NETNS does not make the host's namespace count as one", () => {
    const env: NodeJS.ProcessEnv = { ...process.env, [NETNS_ENV]: readlinkSync("/proc/self/ns/net") };
    delete env.NODE_TEST_CONTEXT;
    const answer = execFileSync(process.execPath, ["--input-type=module", "-e", `import { inNamespace } from ${JSON.stringify(netnsJs)}; console.log(inNamespace());`], { env, encoding: "utf8" });
    assert.equal(answer.trim(), "false");
  });

  test("the self-test child, run in a namespace, reaches a trap on every forbidden address", { skip: !netnsAvailable() && "unshare -rn is not available here (needs Linux, user namespaces and iproute2)", timeout: 120_000 }, async (t) => {
    const child = fileURLToPath(new URL("./netns-selftest.child.js", import.meta.url));
    const start = performance.now();
    const { code, output } = await runInNamespace(child);
    t.diagnostic(`namespace run took ${Math.round(performance.now() - start)} ms`);
    assert.equal(code, 0, output);
    // It ran for real: none of its tests skipped (as they would outside a namespace), one per address at least.
    assert.match(output, /ℹ skipped 0\b/, output);
    assert.match(output, /ℹ fail 0\b/, output);
    const passed = Number(/ℹ pass (\d+)/.exec(output)?.[1] ?? 0);
    assert.ok(passed >= FORBIDDEN_ADDRESSES.length + 5, `${passed} passed\n${output}`);
    for (const address of FORBIDDEN_ADDRESSES) assert.ok(output.includes(`✔ ${address} `), `no passing test for ${address}\n${output}`);
  });

  test("runInNamespace reports a failing file's exit code and output", { skip: !netnsAvailable() && "unshare -rn is not available here", timeout: 60_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), "paddock-netns-"));
    try {
      const file = join(dir, "fails.test.mjs");
      writeFileSync(file, `import { test } from "node:test";\ntest("fails on purpose", () => { throw new Error("marker-4711"); });\n`);
      const { code, output } = await runInNamespace(file);
      assert.equal(code, 1, output);
      assert.match(output, /marker-4711/);
      const slow = join(dir, "slow.test.mjs");
      writeFileSync(slow, `import { test } from "node:test";\ntest("sleeps", () => new Promise((r) => setTimeout(r, 60_000)));\n`);
      const killed = await runInNamespace(slow, { timeoutMs: 500 });
      assert.equal(killed.code, 128 + 9, killed.output);
      assert.match(killed.output, /killed after 500 ms/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
