/**
 * MCP servers as tools: a real MCP server (mcp-fixture.ts, on the official SDK) over stdio and over
 * Streamable HTTP on loopback, reached with the SDK's own client from the host, its tools called by
 * code in real carriers.
 */
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { Sandbox, McpHub, McpError, TimeoutError, toolDeclarations, type McpServerConfig } from "../../src/index.js";
import { withSandbox, errorOf } from "../helpers.js";
import { uniqueIdentifier } from "../../src/capabilities/tools/mcp.js";

const FIXTURE = fileURLToPath(new URL("./mcp-fixture.js", import.meta.url));
const stdioServer = (env: Record<string, string> = {}): McpServerConfig => ({ command: process.execPath, args: [FIXTURE, "stdio"], env });
/** The fixture's tools, as the sandbox names them (22, over 8 pages of 3). */
const FIXTURE_TOOLS = [
  "add", "echo", "json_text", "multi", "image", "fail", "throws", "slow", "hang", "crash", "garbage", "secret",
  "get_user_profile", "constructor", "__proto__", "toString", "count_calls",
  "page_extra_0", "page_extra_1", "page_extra_2", "page_extra_3", "page_extra_4",
];

/** Starts the fixture over HTTP; resolves with its URL once it listens. */
async function startHttpFixture(env: Record<string, string> = {}): Promise<{ url: string; child: ChildProcess; stop: () => Promise<void> }> {
  const child = spawn(process.execPath, [FIXTURE, "http"], { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "inherit"] });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once("line", resolve);
    child.once("exit", (code) => reject(new Error(`the HTTP fixture exited (${code}) before listening`)));
  });
  const { url } = JSON.parse(line) as { url: string };
  return {
    url,
    child,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      await exited;
    },
  };
}

describe("an MCP server over stdio", () => {
  let sandbox: Sandbox;
  before(async () => {
    sandbox = await Sandbox.create({ timeoutMs: 30_000, mcp: { fx: stdioServer({ FIXTURE_SECRET: "s3cr3t-token" }) } });
  });
  after(() => sandbox.close());

  test("every page of its tools is listed, with names made into identifiers", async () => {
    assert.deepEqual(await sandbox.eval(`Object.keys(tools.fx)`), FIXTURE_TOOLS);
    assert.deepEqual(await sandbox.eval(`[typeof tools.fx.__proto__, typeof tools.fx.constructor, Object.getPrototypeOf(tools.fx)]`), ["function", "function", null]);
  });

  test("results are unwrapped: structured content, JSON text parsed, plain text, content items", async () => {
    assert.deepEqual(await sandbox.eval(`await tools.fx.add({ a: 2, b: 3 })`), { sum: 5 });
    assert.equal(await sandbox.eval(`await tools.fx.echo({ text: "hello" })`), "hello");
    assert.deepEqual(await sandbox.eval(`await tools.fx.json_text({})`), { items: [1, 2, 3] });
    assert.equal(await sandbox.eval(`await tools.fx.multi()`), "a\nb");
    const image = (await sandbox.eval(`await tools.fx.image()`)) as Array<{ type: string }>;
    assert.deepEqual(image.map((item) => item.type), ["image", "text"]);
    assert.deepEqual(await sandbox.eval(`await tools.fx.get_user_profile({ id: "7" })`), { id: "7", name: "Ada" });
    assert.equal(await sandbox.eval(`await tools.fx.constructor()`), "constructor");
    assert.equal(await sandbox.eval(`await tools.fx.__proto__()`), "__proto__");
  });

  test("isError and a server's error are ToolErrors with the server's words", async () => {
    assert.deepEqual(await sandbox.eval(`try { await tools.fx.fail({ reason: "no such repo" }) } catch (e) { [e instanceof ToolError, e.message] }`), [true, "no such repo"]);
    const thrown = (await sandbox.eval(`try { await tools.fx.throws() } catch (e) { [e instanceof ToolError, e.message] }`)) as [boolean, string];
    assert.equal(thrown[0], true);
    assert.match(thrown[1], /the MCP server "fx" failed the call: .*boom/);
  });

  test("input is checked against the tool's input schema on the host, before the server sees it", async () => {
    const before = (await sandbox.eval(`(await tools.fx.count_calls()).calls`)) as number;
    assert.equal(await sandbox.eval(`try { await tools.fx.add({ a: "two", b: 3 }) } catch (e) { e.name + ": " + e.message }`), `TypeError: tools.fx.add: invalid input: input.a must be number (got string "two")`);
    assert.equal(await sandbox.eval(`(await tools.fx.count_calls()).calls`), before + 1);
  });

  test("an input JSON cannot carry is refused on the host; the shared connection lives on", async () => {
    const before = (await sandbox.eval(`(await tools.fx.count_calls()).calls`)) as number;
    assert.match((await sandbox.eval(`try { await tools.fx.json_text({ big: 10n }) } catch (e) { e.name + ": " + e.message }`)) as string, /^ToolError: the input cannot be sent to an MCP server as JSON/);
    // The same server process: its count went on.
    assert.equal(await sandbox.eval(`(await tools.fx.count_calls()).calls`), before + 1);
  });

  test("the server's env reaches the server, never the sandbox", async () => {
    assert.equal(await sandbox.eval(`await tools.fx.secret()`), "s3cr3t-token");
    assert.deepEqual(await sandbox.eval(`[typeof env, typeof Deno, JSON.stringify(globalThis).includes("s3cr3t")]`), ["undefined", "undefined", false]);
  });

  test("garbage on the server's stdout does not break the connection", async () => {
    assert.equal(await sandbox.eval(`await tools.fx.garbage()`), "after garbage");
    assert.deepEqual(await sandbox.eval(`await tools.fx.add({ a: 1, b: 1 })`), { sum: 2 });
  });

  test("a tool that hangs: the call's time limit, then the eval's, both hold; the connection lives on", async () => {
    await withSandbox({ toolTimeoutMs: 200, mcp: { fx: stdioServer() } }, async (limited) => {
      assert.deepEqual(await limited.eval(`try { await tools.fx.hang() } catch (e) { e.name }`), "TimeoutError");
      assert.deepEqual(await limited.eval(`await tools.fx.add({ a: 1, b: 2 })`), { sum: 3 });
    });
    const error = errorOf(await sandbox.run(`await tools.fx.hang()`, { timeoutMs: 300 }));
    assert.ok(error instanceof TimeoutError);
    assert.deepEqual(await sandbox.eval(`await tools.fx.add({ a: 1, b: 2 })`), { sum: 3 });
  });

  test("a server that crashes mid-call: that call fails, the next one starts it again", async () => {
    const message = (await sandbox.eval(`try { await tools.fx.crash() } catch (e) { e.name + ": " + e.message }`)) as string;
    assert.equal(message, `ToolError: the MCP server "fx" failed the call: the connection was lost (it is made again on the next call)`);
    // A new process: its call count starts again.
    assert.deepEqual(await sandbox.eval(`await tools.fx.count_calls()`), { calls: 1 });
  });

  test("declarations cover the server's tools, with their original names and schemas", async () => {
    const declarations = await sandbox.toolDeclarations();
    assert.match(declarations, /fx: \{/);
    assert.match(declarations, /get_user_profile\(input: \{\n\s+id: string;\n\s+\}\): Promise<\{/);
    assert.match(declarations, /MCP tool "get-user\.profile"/);
    assert.match(declarations, /add\(input: \{[^}]*a: number;[^}]*b: number;\n\s+\}\): Promise<\{\n\s+sum: number;/);
  });
});

describe("names", () => {
  test("identifiers: made valid, unique, never `then`, and short enough", () => {
    const taken = new Set<string>();
    assert.deepEqual(["get-user.profile", "get_user_profile", "1st", "", "then", "x".repeat(2000)].map((name) => uniqueIdentifier(name, taken)), [
      "get_user_profile", "get_user_profile_2", "_1st", "_", "then_", "x".repeat(128),
    ]);
  });
});

describe("connections", () => {
  test("a hub shares its connections between sandboxes, and outlives them", async () => {
    const hub = new McpHub({ fx: stdioServer() }, { stderr: "ignore" });
    try {
      await withSandbox({ mcp: hub }, async (first) => {
        assert.deepEqual(await first.eval(`await tools.fx.count_calls()`), { calls: 1 });
      });
      await withSandbox({ mcp: hub }, async (second) => {
        assert.deepEqual(await second.eval(`await tools.fx.count_calls()`), { calls: 2 });
      });
      assert.match(await toolDeclarations(undefined, hub), /count_calls/);
    } finally {
      await hub.close();
    }
    await assert.rejects(hub.tools(), McpError);
  });

  test("a server that cannot start fails the eval with an McpError that names it; the sandbox goes on", () =>
    withSandbox({ mcp: { broken: { command: "/nonexistent/paddock-mcp-server" } } }, async (sandbox) => {
      const error = errorOf(await sandbox.run(`1 + 1`));
      assert.ok(error instanceof McpError, `${error.name}: ${error.message}`);
      assert.match(error.message, /the MCP server "broken" could not be reached/);
      assert.ok(errorOf(await sandbox.run(`2`)) instanceof McpError);
    }));

  test("a host tool and an MCP server may not share a name", async () => {
    await assert.rejects(Sandbox.create({ tools: { fx: { execute: () => 1 } }, mcp: { fx: stdioServer() } }), /tools\.fx clashes with the MCP server/);
  });

  test("server configurations are checked at Sandbox.create", async () => {
    await assert.rejects(Sandbox.create({ mcp: { x: { command: "" } } }), /mcp\.x\.command must be a non-empty string/);
    await assert.rejects(Sandbox.create({ mcp: { x: { url: "ftp://example.com" } } as never }), /mcp\.x needs a command .* or an http\(s\) url/);
  });
});

describe("an MCP server over Streamable HTTP", () => {
  let server: Awaited<ReturnType<typeof startHttpFixture>>;
  before(async () => {
    server = await startHttpFixture({ FIXTURE_REQUIRE_TOKEN: "tok-123" });
  });
  after(() => server.stop());

  test("tools are called with the configured headers; the token never reaches the sandbox", async () => {
    const hub = new McpHub({ remote: { url: server.url, headers: { authorization: "Bearer tok-123" } } }, { allowPrivate: ["127.0.0.1"] });
    try {
      await withSandbox({ mcp: hub }, async (sandbox) => {
        assert.equal((await sandbox.eval(`Object.keys(tools.remote).length`)), FIXTURE_TOOLS.length);
        assert.deepEqual(await sandbox.eval(`await tools.remote.add({ a: 40, b: 2 })`), { sum: 42 });
        assert.deepEqual(await sandbox.eval(`await tools.remote.json_text({})`), { items: [1, 2, 3] });
        assert.equal((await sandbox.toolDeclarations()).includes("tok-123"), false);
      });
    } finally {
      await hub.close();
    }
  });

  test("without the token the server refuses, as an McpError", async () => {
    const hub = new McpHub({ remote: { url: server.url } }, { allowPrivate: ["127.0.0.1"] });
    try {
      await withSandbox({ mcp: hub }, async (sandbox) => {
        const error = errorOf(await sandbox.run(`1`));
        assert.ok(error instanceof McpError);
        assert.match(error.message, /"remote" could not be reached/);
      });
    } finally {
      await hub.close();
    }
  });

  test("a loopback server is refused unless allowPrivate admits it", async () => {
    const hub = new McpHub({ remote: { url: server.url, headers: { authorization: "Bearer tok-123" } } });
    try {
      await assert.rejects(hub.tools(), (error: Error) => error instanceof McpError && /loopback/.test(error.message));
    } finally {
      await hub.close();
    }
  });

  test("a name that resolves to a private address is refused at connect time too", async () => {
    const hub = new McpHub({ remote: { url: server.url.replace("127.0.0.1", "localhost"), headers: { authorization: "Bearer tok-123" } } });
    try {
      await assert.rejects(hub.tools(), (error: Error) => error instanceof McpError && /could not be reached|refused/.test(error.message));
    } finally {
      await hub.close();
    }
  });
});
