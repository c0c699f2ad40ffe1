/**
 * `paddock mcp`, spawned as a real process and driven by the MCP SDK's own Client, over stdio and
 * over Streamable HTTP on loopback. Its upstream is the fixture server: code run through
 * execute_code calls the fixture's tools.
 */
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { request as httpRequest } from "node:http";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { ExecuteCodeResult } from "../../src/index.js";
import { PaddockMcp, serveHttp } from "../../src/mcp-server/server.js";

const PADDOCK = fileURLToPath(new URL("../../../bin/paddock.js", import.meta.url));
const FIXTURE = fileURLToPath(new URL("./mcp-fixture.js", import.meta.url));

let dir: string;
let config: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), "paddock-mcp-serve-"));
  config = join(dir, "paddock.json");
  writeFileSync(config, JSON.stringify({
    mcpServers: { fx: { command: process.execPath, args: [FIXTURE, "stdio"], env: { FIXTURE_SECRET: "upstream-secret" } } },
    timeoutMs: 20_000,
  }));
});
after(() => rmSync(dir, { recursive: true, force: true }));

interface CallOutcome {
  result: ExecuteCodeResult;
  text: string;
  isError: boolean;
}

async function execute(client: Client, code: string): Promise<CallOutcome> {
  const reply = await client.callTool({ name: "execute_code", arguments: { code } });
  const content = reply.content as Array<{ type: string; text: string }>;
  return { result: reply.structuredContent as unknown as ExecuteCodeResult, text: content[0]!.text, isError: reply.isError === true };
}

describe("paddock mcp over stdio", () => {
  let client: Client;
  let stderr = "";
  before(async () => {
    const transport = new StdioClientTransport({ command: process.execPath, args: [PADDOCK, "mcp", "--config", config], stderr: "pipe" });
    transport.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    client = new Client({ name: "test", version: "1" });
    await client.connect(transport);
  });
  after(() => client.close());

  test("it offers one tool, execute_code, whose description declares the upstream tools", async () => {
    const { tools } = await client.listTools();
    assert.deepEqual(tools.map((tool) => tool.name), ["execute_code"]);
    const description = tools[0]!.description!;
    assert.match(description, /declare const tools: \{\n\s+fx: \{/);
    assert.match(description, /add\(input: \{/);
    assert.equal(description.includes("upstream-secret"), false);
    assert.deepEqual(tools[0]!.inputSchema.required, ["code"]);
  });

  test("code calls upstream tools; the value, logs and tool calls come back", async () => {
    const { result, text, isError } = await execute(client, `const { sum } = await tools.fx.add({ a: 20, b: 22 }); console.log("sum is", sum); ({ sum, secret: await tools.fx.secret() })`);
    assert.equal(isError, false);
    assert.deepEqual(result.value, { sum: 42, secret: "upstream-secret" });
    assert.deepEqual(result.logs, [{ level: "log", message: "sum is 42" }]);
    assert.deepEqual(result.toolCalls.map((call) => [call.tool, call.ok]), [["fx.add", true], ["fx.secret", true]]);
    assert.match(text, /^Value:\n\{\n\s+"sum": 42/);
    assert.match(text, /Console:\nsum is 42/);
  });

  test("variables persist between calls of the session", async () => {
    await execute(client, `var counter = 10; function bump() { return ++counter }`);
    assert.equal((await execute(client, `bump()`)).result.value, 11);
  });

  test("a failing script is an error result that says what and where", async () => {
    const { result, isError, text } = await execute(client, `const x = 1;\nnull.boom`);
    assert.equal(isError, true);
    assert.equal(result.ok, false);
    assert.equal(result.error!.name, "TypeError");
    assert.equal(result.error!.line, 2);
    assert.match(text, /^Failed: TypeError/);
  });

  test("values JSON cannot say are said in JSON's words", async () => {
    const { result } = await execute(client, `({ m: new Map([["a", 1]]), big: 10n, nan: NaN, when: new Date(0), nothing: undefined })`);
    assert.deepEqual(result.value, { m: [["a", 1]], big: "10n", nan: "NaN", when: "1970-01-01T00:00:00.000Z" });
  });

  test("bad input is an error result, not a crash", async () => {
    const reply = await client.callTool({ name: "execute_code", arguments: { language: "js" } });
    assert.equal(reply.isError, true);
    assert.match((reply.content as Array<{ text: string }>)[0]!.text, /`code` must be a string/);
    assert.equal((await execute(client, `1 + 1`)).result.value, 2);
  });

  test("tool calls are logged to stderr as JSON lines", async () => {
    await execute(client, `await tools.fx.echo({ text: "logged" })`);
    const events = stderr.split("\n").filter(Boolean).map((line) => JSON.parse(line) as Record<string, unknown>);
    assert.ok(events.some((event) => event.event === "tool_call" && event.tool === "fx.echo" && event.ok === true), stderr);
    assert.ok(events.some((event) => event.event === "execute_code"));
  });
});

describe("the HTTP server's session limit", () => {
  test("a burst of initializations cannot open more sessions than maxSessions", async () => {
    const mcp = new PaddockMcp({ servers: {}, allowPrivate: [], sandbox: {} }, () => {});
    const served = await serveHttp(mcp, { port: 0, token: "t", maxSessions: 2 });
    try {
      const initialize = { jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "t", version: "1" } } };
      const statuses = await Promise.all(Array.from({ length: 6 }, async () => {
        const response = await fetch(served.url, { method: "POST", headers: { authorization: "Bearer t", "content-type": "application/json", accept: "application/json, text/event-stream" }, body: JSON.stringify(initialize) });
        await response.body?.cancel();
        return response.status;
      }));
      assert.deepEqual(statuses.sort(), [200, 200, 503, 503, 503, 503]);
    } finally {
      await served.stop();
    }
  });
});

describe("paddock mcp over Streamable HTTP", () => {
  let server: ChildProcess;
  let url: string;
  const token = "test-token-123";
  before(async () => {
    server = spawn(process.execPath, [PADDOCK, "mcp", "--config", config, "--http", "--port", "0", "--token", token], { stdio: ["ignore", "ignore", "pipe"] });
    url = await new Promise<string>((resolve, reject) => {
      const lines = createInterface({ input: server.stderr! });
      lines.on("line", (line) => {
        const event = JSON.parse(line) as { event: string; url?: string };
        if (event.event === "listening") resolve(event.url!);
      });
      server.once("exit", (code) => reject(new Error(`paddock mcp exited (${code}) before listening`)));
    });
  });
  after(async () => {
    const exited = new Promise((resolve) => server.once("exit", resolve));
    server.kill("SIGTERM");
    await exited;
  });

  const connect = async (): Promise<Client> => {
    const client = new Client({ name: "test", version: "1" });
    await client.connect(new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: { authorization: `Bearer ${token}` } } }));
    return client;
  };

  test("sessions are kept apart: each has its own sandbox", async () => {
    const [first, second] = await Promise.all([connect(), connect()]);
    try {
      await execute(first, `var mine = "first"`);
      assert.equal((await execute(first, `mine`)).result.value, "first");
      assert.equal((await execute(second, `typeof mine`)).result.value, "undefined");
      const { result } = await execute(second, `(await tools.fx.add({ a: 1, b: 2 })).sum`);
      assert.equal(result.value, 3);
    } finally {
      await Promise.all([first.close(), second.close()]);
    }
  });

  test("without the bearer token, or through another host name, requests are refused", async () => {
    const initialize = { jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "t", version: "1" } } };
    const post = (headers: Record<string, string>) =>
      fetch(url, { method: "POST", headers: { "content-type": "application/json", accept: "application/json, text/event-stream", ...headers }, body: JSON.stringify(initialize) });
    assert.equal((await post({})).status, 401);
    assert.equal((await post({ authorization: "Bearer wrong" })).status, 401);
    // (fetch will not send another Host header: node:http will.)
    const rebound = await new Promise<number>((resolve, reject) => {
      const request = httpRequest(url, { method: "POST", headers: { host: "evil.example", authorization: `Bearer ${token}`, "content-type": "application/json", accept: "application/json, text/event-stream" } }, (response) => {
        response.resume();
        resolve(response.statusCode!);
      });
      request.once("error", reject);
      request.end(JSON.stringify(initialize));
    });
    assert.equal(rebound, 403);
    const ok = await post({ authorization: `Bearer ${token}` });
    assert.equal(ok.status, 200);
    await ok.body?.cancel();
  });

  test("an unknown session is a 404, so the client starts a new one", async () => {
    const response = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json, text/event-stream", authorization: `Bearer ${token}`, "mcp-session-id": "no-such-session" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 2, method: "tools/list" }),
    });
    assert.equal(response.status, 404);
  });
});
