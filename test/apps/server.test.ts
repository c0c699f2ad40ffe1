/**
 * The app server end to end: real carriers, one listener on loopback, real clients (node:http, and
 * raw sockets for what a client library will not send), folders written to a temporary root. Time
 * is never raced: installs and updates are waited for by polling their effect with a deadline of a
 * minute, and a limit under test is hit by a handler that never ends.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { Agent, createServer, request as httpRequest } from "node:http";
import { connect, type AddressInfo } from "node:net";
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { AppServer, type AppServerEvent } from "../../src/index.js";
import { eventually } from "../processes.js";

/** Long enough for several carriers to start on a loaded 2-core machine. */
const DEADLINE_MS = 60_000;

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One request; rejects only if the connection fails. */
function get(port: number, path: string, options: { host?: string; method?: string; agent?: Agent; signal?: AbortSignal } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const request = httpRequest(
      { port, host: "127.0.0.1", path, method: options.method ?? "GET", agent: options.agent ?? false, headers: options.host ? { host: options.host } : {}, ...(options.signal ? { signal: options.signal } : {}) },
      (response) => {
        let body = "";
        response.setEncoding("utf8");
        response.on("data", (chunk: string) => (body += chunk));
        response.on("end", () => resolve({ status: response.statusCode!, headers: response.headers, body }));
        response.on("error", reject);
      },
    );
    request.on("error", reject);
    request.end();
  });
}

/** Sends `text` (one request with `connection: close`) on a raw socket; resolves with all the server answered. */
function raw(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1", () => socket.write(text));
    let answer = "";
    socket.setEncoding("latin1");
    socket.on("data", (data: string) => (answer += data));
    socket.on("close", () => resolve(answer));
    socket.on("error", reject);
  });
}

/** The responses in what a raw socket received, their bodies framed by Content-Length or chunked. */
function responsesOf(text: string): Array<{ status: number; body: string }> {
  const responses: Array<{ status: number; body: string }> = [];
  let rest = text;
  while (rest.length > 0) {
    const end = rest.indexOf("\r\n\r\n");
    const head = rest.slice(0, end);
    rest = rest.slice(end + 4);
    const length = /\r\ncontent-length: *(\d+)/i.exec(head)?.[1];
    let body = "";
    if (length !== undefined) {
      body = rest.slice(0, Number(length));
      rest = rest.slice(Number(length));
    } else if (/\r\ntransfer-encoding: *chunked/i.test(head)) {
      for (;;) {
        const size = parseInt(rest, 16);
        rest = rest.slice(rest.indexOf("\r\n") + 2);
        body += rest.slice(0, size);
        rest = rest.slice(size + 2);
        if (size === 0) break;
      }
    }
    responses.push({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1]), body });
  }
  return responses;
}
const rawStatus = (answer: string) => responsesOf(answer)[0]?.status;
const rawBody = (answer: string) => responsesOf(answer)[0]?.body;

/** An app that says its name (and `version`) and the path it saw. */
const echoApp = (name: string, version = "") => `export default {
  async fetch(request) {
    const url = new URL(request.url);
    if (url.pathname === "/echo") {
      console.log("echo started");
      return new Response("${name}${version}:" + await request.text());
    }
    if (url.pathname === "/hang") return new Promise(() => {});
    return new Response("${name}${version}:" + url.pathname + url.search, { headers: { "x-app": "${name}" } });
  },
};
`;

/** For apps whose request bodies a test holds open while something slow (an update, a stop) happens. */
const PATIENT = JSON.stringify({ requestBodyIdleTimeoutMs: 600_000 });

function writeApp(root: string, name: string, files: Record<string, string>): void {
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, name, path)), { recursive: true });
    writeFileSync(join(root, name, path), text);
  }
}

/**
 * A POST whose body ("hello world") is sent in two parts, the second once `release` resolves: a
 * request in progress for as long as a test needs. Resolves with "<status> <body>".
 */
function heldPost(port: number, path: string, release: Promise<void>): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const request = httpRequest({ port, host: "127.0.0.1", path, method: "POST", agent: false, headers: { "transfer-encoding": "chunked" } }, (response) => {
      let body = "";
      response.setEncoding("utf8");
      response.on("data", (chunk: string) => (body += chunk));
      response.on("end", () => resolve(`${response.statusCode} ${body}`));
    });
    request.on("error", reject);
    request.write("hello ");
    release.then(() => request.end("world"), reject);
  });
}

async function until(what: string, done: () => boolean): Promise<void> {
  assert.ok(await eventually(done, DEADLINE_MS, 20), `timed out waiting for ${what}`);
}

const temp: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "paddock-app-server-"));
  temp.push(dir);
  return dir;
}
after(() => {
  for (const dir of temp) rmSync(dir, { recursive: true, force: true });
});

describe("app server", () => {
  let server: AppServer;
  let port: number;
  const events: AppServerEvent[] = [];

  before(async () => {
    const root = tempDir();
    writeApp(root, "a", { "main.ts": echoApp("a") });
    writeApp(root, "b", { "main.ts": echoApp("b") });
    writeApp(root, "one", { "main.ts": echoApp("one"), "paddock.json": JSON.stringify({ maxConcurrentRequests: 1 }) });
    writeApp(root, "quick", { "main.ts": echoApp("quick"), "paddock.json": JSON.stringify({ requestTimeoutMs: 300 }) });
    writeApp(root, "multi", { "main.ts": `import { greet } from "./lib/greet.ts";\nexport default { fetch: () => new Response(greet()) };`, "lib/greet.ts": `export const greet = () => "from lib";` });
    writeApp(root, "bad-type", { "main.ts": echoApp("bad-type"), "paddock.json": JSON.stringify({ memoryMb: "lots" }) });
    writeApp(root, "bad-key", { "main.ts": echoApp("bad-key"), "paddock.json": JSON.stringify({ tools: {} }) });
    writeApp(root, "bad-path", { "main.ts": echoApp("bad-path"), "paddock.json": JSON.stringify({ modules: { allow: ["npm:x"], cacheDir: "/tmp/elsewhere" } }) });
    writeApp(root, "not-json", { "main.ts": echoApp("not-json"), "paddock.json": "{ memoryMb: 64" });
    writeApp(root, "crash", { "main.ts": `throw new Error("boom at start");\nexport default { fetch: () => new Response("never") };` });
    writeApp(root, "Bad_Name", { "main.ts": echoApp("Bad_Name") });
    // Apps that try to take another app's code as their own: a relative import out of their folder.
    writeApp(root, "sneaky", { "main.ts": `import other from "../a/main.ts";\nexport default other;` });
    writeApp(root, "sneaky-bundle", { "main.ts": `import other from "../a/main.ts";\nimport "./lib.ts";\nexport default other;`, "lib.ts": "export {};" });
    symlinkSync(join(root, "a"), join(root, "linked"));
    writeFileSync(join(root, "README.md"), "not an app");
    server = await AppServer.start({ root, pollMs: 50, onEvent: (event) => events.push(event) });
    port = server.port;
  });
  after(() => server.close());

  test("start waits for every app: those that start serve, the others are reported with their name", () => {
    assert.deepEqual(
      server.apps().map(({ name, serving }) => `${name}:${serving}`),
      ["a:true", "b:true", "bad-key:false", "bad-path:false", "bad-type:false", "crash:false", "multi:true", "not-json:false", "one:true", "quick:true", "sneaky:false", "sneaky-bundle:false"],
    );
    const failed = (app: string) => {
      const event = events.find((event) => event.type === "failed" && event.app === app);
      assert.ok(event?.type === "failed" && !event.serving, `no failed event for ${app}`);
      return event.error.message;
    };
    assert.match(failed("bad-type"), /paddock\.json[\s\S]*memoryMb/);
    assert.match(failed("bad-key"), /paddock\.json[\s\S]*tools/);
    assert.match(failed("bad-path"), /paddock\.json[\s\S]*cacheDir/);
    assert.match(failed("not-json"), /paddock\.json is not JSON/);
    assert.match(failed("crash"), /boom at start/);
    assert.match(failed("sneaky"), /\.\.\/a\/main\.ts/);
    assert.match(failed("sneaky-bundle"), /climbs out of the app's sources/);
    assert.deepEqual(
      events.filter((event) => event.type === "ignored").map((event) => event.type === "ignored" && `${event.folder}: ${event.reason}`).sort(),
      ["Bad_Name: its name is not an app name (a-z, 0-9 and -, at most 63 characters, not starting with -)", "linked: it is a link (links are not followed)"],
    );
  });

  test("path prefix: the app sees the path without it, query included", async () => {
    const answer = await get(port, "/a/posts/1?x=y");
    assert.deepEqual([answer.status, answer.headers["x-app"], answer.body], [200, "a", "a:/posts/1?x=y"]);
    assert.equal((await get(port, "/b/")).body, "b:/");
    assert.equal((await get(port, "/multi/")).body, "from lib");
  });

  test("/<name> without a slash is redirected (308) to /<name>/, keeping the query", async () => {
    const answer = await get(port, "/a?q=1");
    assert.equal(answer.status, 308);
    assert.equal(answer.headers.location, "/a/?q=1");
  });

  test("Host <name>.localhost routes by name, any port, a trailing dot, any case; the path is the app's whole", async () => {
    for (const host of ["b.localhost", "b.localhost:8080", "b.localhost.", "B.LocalHost:1"]) {
      assert.equal((await get(port, "/x?y", { host })).body, "b:/x?y", host);
    }
  });

  test("unknown apps, the root and names that are not app names are a plain 404 with no host detail", async () => {
    for (const path of ["/", "/nope/", "/nope", "/Bad_Name/", "/README.md", "//a/", "/%61/"]) {
      const answer = await get(port, path);
      assert.equal(answer.status, 404, path);
      assert.equal(answer.body, "Not Found\n", path);
    }
    const byHost = await get(port, "/", { host: "nope.localhost" });
    assert.deepEqual([byHost.status, byHost.body], [404, "Not Found\n"]);
  });

  test("an app that is not served (bad paddock.json, crash at start) answers 503 with Retry-After; the others go on", async () => {
    for (const name of ["bad-type", "bad-key", "bad-path", "not-json", "crash"]) {
      for (const answer of [await get(port, `/${name}/`), await get(port, "/", { host: `${name}.localhost` })]) {
        assert.equal(answer.status, 503, name);
        assert.ok(Number(answer.headers["retry-after"]) > 0, name);
        assert.doesNotMatch(answer.body, /boom|paddock\.json/);
      }
    }
    assert.equal((await get(port, "/a/")).status, 200);
  });

  test("paddock.json maxConcurrentRequests: 1 — a second request while one runs gets 503 with Retry-After", async () => {
    const aborter = new AbortController();
    const hanging = get(port, "/one/hang", { signal: aborter.signal }).catch((error: Error) => error);
    const one = () => server.apps().find(({ name }) => name === "one")!.stats!;
    await until("the hanging request to be in flight", () => one().inFlight === 1);
    const refused = await get(port, "/one/");
    assert.equal(refused.status, 503);
    assert.ok(Number(refused.headers["retry-after"]) > 0);
    aborter.abort();
    assert.ok((await hanging) instanceof Error);
    await until("the aborted request to end", () => one().inFlight === 0);
    assert.equal((await get(port, "/one/")).body, "one:/");
  });

  test("paddock.json requestTimeoutMs — a request that never ends gets 504, then the app answers again", async () => {
    const answer = await get(port, "/quick/hang");
    assert.equal(answer.status, 504);
    assert.equal((await get(port, "/quick/ok")).body, "quick:/ok");
    assert.ok(events.some((event) => event.type === "request-failed" && event.app === "quick" && event.error.name === "TimeoutError"));
  });

  test("isolation: a request reaches exactly one app, whatever Host, path or target tricks it uses", async () => {
    const ask = (target: string, host = `127.0.0.1:${port}`, extra = "") => raw(port, `GET ${target} HTTP/1.1\r\nHost: ${host}\r\n${extra}Connection: close\r\n\r\n`);
    // Host wins when it names a known app: the path is b's to interpret.
    assert.equal(rawBody(await ask("/a/secret", "b.localhost")), "b:/a/secret");
    // A Host naming no app falls back to the path.
    assert.equal(rawBody(await ask("/a/x", "nope.localhost")), "a:/x");
    assert.equal(rawBody(await ask("/a/x", "b.localhost.evil")), "a:/x");
    assert.equal(rawBody(await ask("/a/x", "evil.b.localhost")), "a:/x");
    // Encoded slashes and dots stay in a's path; dot segments are resolved before routing.
    assert.equal(rawBody(await ask("/a/..%2fb/x")), "a:/..%2fb/x");
    assert.equal(rawBody(await ask("/a/%2e%2e/b/x")), "b:/x");
    assert.equal(rawBody(await ask("/a/../b/x")), "b:/x");
    assert.equal(rawBody(await ask("/a//b/x")), "a://b/x");
    assert.equal(rawStatus(await ask("//b/x")), 404);
    assert.equal(rawStatus(await ask("/%62/x")), 404);
    // Targets that carry a host of their own, and a second Host line, are refused.
    assert.equal(rawStatus(await ask("http://b.localhost/", "a.localhost")), 400);
    assert.equal(rawStatus(await ask("http://b.localhost/a/", "127.0.0.1")), 400);
    assert.equal(rawStatus(await ask("*", "a.localhost")), 400);
    assert.equal(rawStatus(await ask("/", "a.localhost", "Host: b.localhost\r\n")), 400);
    // The answers of one app on a keep-alive connection never mix with another's.
    const pipelined = await raw(port, `GET /a/1 HTTP/1.1\r\nHost: x\r\n\r\nGET /x HTTP/1.1\r\nHost: b.localhost\r\n\r\nGET /a/3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    assert.deepEqual(responsesOf(pipelined).map(({ body }) => body), ["a:/1", "b:/x", "a:/3"]);
  });
});

describe("app server: hot install, update and removal under load", () => {
  test("every answer is 404 before the install, then v1, then v2, then 404 after the removal; never an error", async () => {
    const root = tempDir();
    const staging = tempDir();
    const events: AppServerEvent[] = [];
    await using server = await AppServer.start({ root, pollMs: 50, onEvent: (event) => events.push(event) });
    writeApp(root, "other", { "main.ts": echoApp("other") });
    await until("the other app's install", () => server.apps().some(({ name, serving }) => name === "other" && serving));

    const agent = new Agent({ keepAlive: true, maxSockets: 4 });
    const seen: string[][] = [[], []];
    const problems: string[] = [];
    let running = true;
    const loop = async (index: number, options: { path: string; host?: string }) => {
      while (running) {
        try {
          const answer = await get(server.port, options.path, { agent, ...(options.host ? { host: options.host } : {}) });
          const state = answer.status === 404 ? "missing" : answer.status === 200 && /^hotv[12]:\/$/.test(answer.body) ? answer.body.slice(3, 5) : undefined;
          if (state === undefined) problems.push(`${answer.status} ${answer.body}`);
          else if (seen[index]!.at(-1) !== state) seen[index]!.push(state);
        } catch (error) {
          problems.push(String(error));
        }
      }
    };
    // A third loop asks the other app, which nothing done to "hot" may disturb.
    const others = { answers: 0, wrong: [] as string[] };
    const loops = [
      loop(0, { path: "/hot/" }),
      loop(1, { path: "/", host: "hot.localhost" }),
      (async () => {
        while (running) {
          const answer = await get(server.port, "/other/", { agent }).catch((error: Error) => ({ status: 0, body: error.message }));
          others.answers++;
          if (answer.body !== "other:/") others.wrong.push(`${answer.status} ${answer.body}`);
        }
      })(),
    ];
    const latest = () => seen.map((states) => states.at(-1));
    try {
      // Install: the folder moves in whole, as an installer would put it.
      writeApp(staging, "hot", { "main.ts": echoApp("hot", "v1"), "paddock.json": PATIENT });
      renameSync(join(staging, "hot"), join(root, "hot"));
      await until("v1 to serve both loops", () => latest().every((state) => state === "v1"));

      // A request in progress on v1 (its body still coming) when v2 is swapped in.
      const held = heldPost(server.port, "/hot/echo", until("v2 to serve both loops", () => latest().every((state) => state === "v2")));
      await until("the held request to reach v1", () => events.some((event) => event.type === "log" && event.app === "hot" && event.entry.message === "echo started"));

      // Update: main.ts replaced (renamed over, so the poll never reads half a file).
      writeFileSync(join(root, "hot", "main.ts.new"), echoApp("hot", "v2"));
      renameSync(join(root, "hot", "main.ts.new"), join(root, "hot", "main.ts"));
      assert.equal(await held, "200 hotv1:hello world");

      // Removal.
      rmSync(join(root, "hot"), { recursive: true });
      await until("the removal to reach both loops", () => latest().every((state) => state === "missing") && seen.every((states) => states.length === 4));
    } finally {
      running = false;
      await Promise.all(loops);
      agent.destroy();
    }
    assert.deepEqual(problems, []);
    assert.deepEqual(others.wrong, []);
    assert.ok(others.answers > 0);
    assert.deepEqual(seen, [["missing", "v1", "v2", "missing"], ["missing", "v1", "v2", "missing"]]);
    assert.deepEqual(
      events.filter((event) => event.type !== "log" && event.type !== "request-failed").map((event) => `${event.type}:${"app" in event ? event.app : ""}`),
      ["installed:other", "installed:hot", "updated:hot", "removed:hot"],
    );
    assert.equal((await get(server.port, "/other/")).body, "other:/");
  });

  test("a root that disappears is reported once; the apps served go on", async () => {
    const root = tempDir();
    writeApp(root, "app", { "main.ts": echoApp("app") });
    const events: AppServerEvent[] = [];
    await using server = await AppServer.start({ root, pollMs: 20, onEvent: (event) => events.push(event) });
    renameSync(root, `${root}-away`);
    try {
      await until("the failed scan", () => events.some((event) => event.type === "scan-failed"));
      // Some more polls (how many does not matter: none may say it again).
      await new Promise((resolve) => setTimeout(resolve, 300));
      assert.equal(events.filter((event) => event.type === "scan-failed").length, 1);
      assert.equal((await get(server.port, "/app/")).body, "app:/");
    } finally {
      renameSync(`${root}-away`, root);
    }
  });

  test("a version that does not start leaves the one serving in place", async () => {
    const root = tempDir();
    writeApp(root, "app", { "main.ts": echoApp("app", "v1") });
    const events: AppServerEvent[] = [];
    await using server = await AppServer.start({ root, pollMs: 50, onEvent: (event) => events.push(event) });
    writeFileSync(join(root, "app", "paddock.json"), JSON.stringify({ net: "everything" }));
    await until("the failed update", () => events.some((event) => event.type === "failed"));
    const failed = events.find((event) => event.type === "failed");
    assert.ok(failed?.type === "failed" && failed.serving && /net/.test(failed.error.message));
    assert.equal((await get(server.port, "/app/")).body, "appv1:/");
    // Fixed: the next version serves.
    writeFileSync(join(root, "app", "paddock.json"), JSON.stringify({ memoryMb: 64 }));
    writeFileSync(join(root, "app", "main.ts"), echoApp("app", "v2"));
    await until("the fixed update", () => events.some((event) => event.type === "updated"));
    assert.equal((await get(server.port, "/app/")).body, "appv2:/");
  });
});

describe("app server: options", () => {
  test("a root that is not a folder, a dataDir inside the root and unknown options are refused", async () => {
    const root = tempDir();
    await assert.rejects(AppServer.start({ root: join(root, "missing") }), /root ".*missing" is not a directory/);
    await assert.rejects(AppServer.start({ root, dataDir: join(root, "data") }), /dataDir ".*" is inside root/);
    await assert.rejects(AppServer.start({ root, pollMs: 0 }), /pollMs/);
    await assert.rejects(AppServer.start({ root, tools: {} } as never), /tools/);
  });
});

describe("app server: files", () => {
  test("each app has a store of its own under dataDir, sized by its paddock.json, kept across an update; no app reaches another's", async () => {
    const root = tempDir();
    const data = tempDir();
    const notes = (version: string) => `import { readFile, writeFile, readdir } from "node:fs/promises";
export default { async fetch(request) {
  const url = new URL(request.url);
  if (request.method === "POST") { await writeFile(url.pathname, await request.text()); return new Response("saved"); }
  if (url.pathname === "/ls") return new Response(JSON.stringify(await readdir("/")));
  const path = url.searchParams.get("path") ?? url.pathname;
  try { return new Response("${version}:" + await readFile(path, "utf8")); } catch (error) { return new Response(error.code, { status: 404 }); }
} };`;
    writeApp(root, "a", { "main.js": notes("v1"), "paddock.json": JSON.stringify({ files: { quotaBytes: 1000 } }) });
    writeApp(root, "b", { "main.js": notes("b") });
    await using server = await AppServer.start({ root, dataDir: data, pollMs: 50 });
    const post = (app: string, path: string, body: string) =>
      new Promise<number>((resolve, reject) => {
        const request = httpRequest({ port: server.port, host: "127.0.0.1", path: `/${app}${path}`, method: "POST", agent: false }, (response) => {
          response.resume();
          response.on("end", () => resolve(response.statusCode!));
        });
        request.on("error", reject);
        request.end(body);
      });
    assert.equal(await post("a", "/secret.txt", "a's secret"), 200);
    assert.equal((await get(server.port, "/a/secret.txt")).body, "v1:a's secret");
    assert.equal(await post("a", "/big.txt", "x".repeat(2000)), 500, "over the quota of a's paddock.json");
    // b's own code, reading whatever path it likes, finds only its own (empty) store.
    for (const path of ["/secret.txt", "../a/secret.txt", "/../../a/secret.txt", "%2e%2e/a/secret.txt", `${data}/a/secret.txt`, join(data, "a", "secret.txt")]) {
      const answer = await get(server.port, `/b/read?path=${encodeURIComponent(path)}`);
      assert.equal(answer.status, 404, path);
      assert.doesNotMatch(answer.body, /secret/, path);
    }
    assert.equal((await get(server.port, "/b/ls")).body, "[]");
    writeApp(root, "a", { "main.js": notes("v2") });
    let body = "";
    const deadline = Date.now() + DEADLINE_MS;
    while (!body.startsWith("v2") && Date.now() < deadline) {
      body = (await get(server.port, "/a/secret.txt")).body;
      if (!body.startsWith("v2")) await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.equal(body, "v2:a's secret", "a's files after its update");
  });
});

describe("app server: pathRouting false", () => {
  test("apps are reached only by Host, each on an origin of its own", async () => {
    const root = tempDir();
    writeApp(root, "a", { "main.ts": echoApp("a") });
    await using server = await AppServer.start({ root, pathRouting: false });
    assert.equal((await get(server.port, "/a/x", { host: "a.localhost" })).body, "a:/a/x");
    for (const path of ["/a/x", "/a"]) assert.equal((await get(server.port, path)).status, 404, path);
  });
});

describe("app server: retries", () => {
  test("a version whose start failed for a reason outside its folder is tried again, and serves once it starts", async () => {
    // The app's top-level code needs this server, which answers 503 to its first two requests.
    let asked = 0;
    const upstream = createServer((_, response) => response.writeHead(++asked <= 2 ? 503 : 200).end("ready"));
    await new Promise<void>((resolve) => upstream.listen(0, "127.0.0.1", resolve));
    const upstreamPort = (upstream.address() as AddressInfo).port;
    try {
      const root = tempDir();
      writeApp(root, "needy", {
        "main.ts": `const response = await fetch("http://127.0.0.1:${upstreamPort}/");\nif (!response.ok) throw new Error("upstream said " + response.status);\nexport default { fetch: () => new Response("needy is up") };`,
        "paddock.json": JSON.stringify({ net: { allow: [`127.0.0.1:${upstreamPort}`], allowPrivate: ["127.0.0.1"] } }),
      });
      const events: AppServerEvent[] = [];
      await using server = await AppServer.start({ root, pollMs: 50, onEvent: (event) => events.push(event) });
      const first = events.find((event) => event.type === "failed");
      assert.ok(first?.type === "failed" && first.retryInMs === 1_000 && /upstream said 503/.test(first.error.message), JSON.stringify(first));
      const refused = await get(server.port, "/needy/");
      assert.equal(refused.status, 503);
      assert.ok(Number(refused.headers["retry-after"]) >= 1);
      await until("the retries to install it", () => events.some((event) => event.type === "installed"));
      assert.deepEqual(
        events.filter((event) => event.type === "failed").map((event) => event.type === "failed" && event.retryInMs),
        [1_000, 2_000],
      );
      assert.equal((await get(server.port, "/needy/")).body, "needy is up");
    } finally {
      await new Promise((resolve) => upstream.close(resolve));
    }
  });

  test("a version that only a change can fix (a bad paddock.json) is not tried again until its folder changes", async () => {
    const root = tempDir();
    writeApp(root, "app", { "main.ts": echoApp("app"), "paddock.json": JSON.stringify({ memoryMb: 1 }) });
    const events: AppServerEvent[] = [];
    await using server = await AppServer.start({ root, pollMs: 50, onEvent: (event) => events.push(event) });
    const failed = events.find((event) => event.type === "failed");
    assert.ok(failed?.type === "failed" && failed.retryInMs === undefined);
    writeFileSync(join(root, "app", "paddock.json"), JSON.stringify({ memoryMb: 64 }));
    await until("the fixed install", () => events.some((event) => event.type === "installed"));
    assert.equal(events.filter((event) => event.type === "failed").length, 1);
    assert.equal((await get(server.port, "/app/")).body, "app:/");
  });
});

describe("paddock serve-apps and paddock serve", () => {
  const root = fileURLToPath(new URL("../../../", import.meta.url));
  const children: ChildProcess[] = [];

  /** Starts the command and resolves with the URL it printed on stderr, and what it printed. */
  function start(args: string[], urlPattern: RegExp): Promise<{ child: ChildProcess; url: string; stderr: () => string }> {
    const child = spawn(process.execPath, [join(root, "bin", "paddock.js"), ...args], { cwd: root, stdio: ["ignore", "ignore", "pipe"] });
    children.push(child);
    let stderr = "";
    return new Promise((resolve, reject) => {
      child.stderr!.setEncoding("utf8");
      child.stderr!.on("data", (data: string) => {
        stderr += data;
        const url = urlPattern.exec(stderr)?.[1];
        if (url) resolve({ child, url, stderr: () => stderr });
      });
      child.on("exit", (code) => reject(new Error(`paddock ${args[0]} exited (${code}) before printing its URL: ${stderr}`)));
    });
  }

  /** Runs a command that ends by itself; resolves with its exit code and stderr. */
  async function run(args: string[]): Promise<{ code: number | null; stderr: string }> {
    const child = spawn(process.execPath, [join(root, "bin", "paddock.js"), ...args], { cwd: root, stdio: ["ignore", "ignore", "pipe"] });
    children.push(child);
    let stderr = "";
    child.stderr.setEncoding("utf8").on("data", (data: string) => (stderr += data));
    return { code: await exited(child), stderr };
  }

  const exited = (child: ChildProcess) => new Promise<number | null>((resolve) => (child.exitCode !== null ? resolve(child.exitCode) : child.once("exit", resolve)));

  after(async () => {
    for (const child of children) if (child.exitCode === null) child.kill("SIGKILL");
    await Promise.all(children.map(exited));
  });

  test("serve-apps --port 0 prints its URL, serves the root's apps, reports an install, and stops on SIGTERM", async () => {
    const apps = tempDir();
    writeApp(apps, "first", { "main.ts": echoApp("first"), "paddock.json": PATIENT });
    const { child, url, stderr } = await start(["serve-apps", "--root", apps, "--port", "0", "--poll-ms", "50"], /serving .* at (http:\/\/127\.0\.0\.1:\d+):/);
    const port = Number(new URL(url).port);
    assert.equal((await get(port, "/first/x")).body, "first:/x");
    writeApp(apps, "second", { "main.ts": `export default { fetch() { console.log("second says hi"); return new Response("second"); } };` });
    await until("the second app's install on stderr", () => /installed second/.test(stderr()));
    assert.equal((await get(port, "/", { host: "second.localhost" })).body, "second");
    await until("the second app's log on stderr", () => /\[second\] second says hi/.test(stderr()));
    // SIGTERM with a request in progress: it finishes, then the server stops.
    let stopping!: () => void;
    const held = heldPost(port, "/first/echo", new Promise((resolve) => (stopping = resolve)));
    await until("the held request to reach the app", () => /\[first\] echo started/.test(stderr()));
    child.kill("SIGTERM");
    await until("the server to say it stops", () => /stopping/.test(stderr()));
    stopping();
    assert.equal(await held, "200 first:hello world");
    assert.equal(await exited(child), 0);
  });

  test("serve <file> serves one file as an app", async () => {
    const dir = tempDir();
    const file = join(dir, "hello.ts");
    writeFileSync(file, `export default { fetch: (request: Request) => new Response("hello from " + new URL(request.url).pathname) };`);
    const { child, url } = await start(["serve", file, "--port", "0", "--timeout-ms", "5000"], /at (http:\/\/127\.0\.0\.1:\d+)\//);
    assert.equal((await get(Number(new URL(url).port), "/there")).body, "hello from /there");
    child.kill("SIGINT");
    assert.equal(await exited(child), 0);
  });

  test("a port already taken is a one-line error, exit code 1", async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve));
    try {
      const dir = tempDir();
      writeFileSync(join(dir, "app.ts"), `export default { fetch: () => new Response("x") };`);
      const { code, stderr } = await run(["serve", join(dir, "app.ts"), "--port", String((taken.address() as AddressInfo).port)]);
      assert.equal(code, 1);
      assert.match(stderr, /^paddock: cannot listen: .*EADDRINUSE.*\n$/);
    } finally {
      await new Promise((resolve) => taken.close(resolve));
    }
  });

  test("bad flags are refused with the usage, exit code 2", async () => {
    for (const args of [["serve-apps"], ["serve-apps", "--root", ".", "--memory-mb", "64"], ["serve"], ["serve", "x.ts", "--port", "70000"], ["serve", "x.ts", "--batch", "2"]]) {
      const { code, stderr } = await run(args);
      assert.equal(code, 2, args.join(" "));
      assert.match(stderr, /usage|does not apply|--port/, args.join(" "));
    }
  });
});
