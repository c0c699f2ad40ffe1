/**
 * A real MCP server for the tool tests, on the SDK's low-level `Server` (so that `tools/list` can be
 * paginated and tools can have names that a plain object would trip over).
 *
 *   node dist/test/tools/mcp-fixture.js stdio   JSON-RPC on stdin/stdout; stops when stdin ends.
 *   node dist/test/tools/mcp-fixture.js http    Streamable HTTP with stateful sessions on
 *                                               127.0.0.1, port 0; prints exactly one line,
 *                                               {"url":"http://127.0.0.1:PORT/mcp"}, and nothing
 *                                               else to stdout; stops on SIGTERM.
 *
 * Environment:
 *   FIXTURE_PAGE_SIZE        tools per tools/list page (default 3); later pages via nextCursor.
 *   FIXTURE_SECRET           what the `secret` tool returns ("" when unset).
 *   FIXTURE_REQUIRE_TOKEN    http only: any request without `Authorization: Bearer <token>` is
 *                            answered 401 (with `WWW-Authenticate: Bearer`).
 *   FIXTURE_NOTIFY_LIST_CHANGED
 *                            if set, every tools/call is followed by a
 *                            notifications/tools/list_changed (the list itself never changes).
 *
 * Tools: add, echo, json_text, multi, image, fail, throws, slow, hang, crash, garbage, secret,
 * get-user.profile, constructor, __proto__, toString, count_calls, page_extra_0 … page_extra_4.
 * `throws` throws from the handler, which the low-level Server answers with a JSON-RPC error
 * (-32603, "boom"), not an isError result. An unknown tool or bad arguments to `add`, `echo` or
 * `slow` are a JSON-RPC error -32602. `count_calls` counts tools/call requests served by this
 * process (stdio) or this session (http), itself included. Over http, `garbage` answers its
 * call with an SSE stream whose first event's data is `this is not json`, then the real result.
 *
 * node --test runs every .js file under dist/test/ (in Node 20 any file inside a `test` directory
 * matches), this one included; without a mode argument it does nothing.
 */
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { randomUUID } from "node:crypto";
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import {
  CallToolRequestSchema,
  ErrorCode,
  ListToolsRequestSchema,
  type CallToolResult,
  type Tool,
} from "@modelcontextprotocol/sdk/types.js";

type Mode = "stdio" | "http";

/** A 1×1 PNG. */
const PNG_BASE64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==";

const NO_ARGUMENTS: Tool["inputSchema"] = { type: "object", properties: {} };

/** Every tool, in listing order. Names are data here, never object keys. */
const TOOLS: Tool[] = [
  {
    name: "add",
    description: "Adds two numbers; returns {sum} as structured content and as JSON text.",
    inputSchema: {
      type: "object",
      properties: { a: { type: "number", description: "first addend" }, b: { type: "number", description: "second addend" } },
      required: ["a", "b"],
    },
    outputSchema: { type: "object", properties: { sum: { type: "number" } }, required: ["sum"] },
  },
  {
    name: "echo",
    description: "Returns the given text as text content.",
    inputSchema: { type: "object", properties: { text: { type: "string" } }, required: ["text"] },
  },
  {
    name: "json_text",
    description: 'Returns the JSON {"items":[1,2,3]} as text content, without structured content.',
    inputSchema: NO_ARGUMENTS,
  },
  { name: "multi", description: 'Returns two text contents, "a" and "b".', inputSchema: NO_ARGUMENTS },
  { name: "image", description: "Returns a 1x1 PNG image content and a text content.", inputSchema: NO_ARGUMENTS },
  {
    name: "fail",
    description: 'Returns an error result (isError: true) whose text is the reason, or "it failed".',
    inputSchema: { type: "object", properties: { reason: { type: "string" } } },
  },
  { name: "throws", description: 'Its handler throws Error("boom").', inputSchema: NO_ARGUMENTS },
  {
    name: "slow",
    description: 'Waits ms milliseconds, then returns "done"; stops early when the call is cancelled.',
    inputSchema: { type: "object", properties: { ms: { type: "number", minimum: 0 } }, required: ["ms"] },
  },
  { name: "hang", description: "Never returns, until the call is cancelled.", inputSchema: NO_ARGUMENTS },
  {
    name: "crash",
    description: "Kills the server mid-call: exit code 3 (over http, after destroying every socket).",
    inputSchema: NO_ARGUMENTS,
  },
  {
    name: "garbage",
    description: 'Writes a line that is not JSON where messages go, then returns "after garbage".',
    inputSchema: NO_ARGUMENTS,
  },
  { name: "secret", description: "Returns the server's FIXTURE_SECRET environment variable.", inputSchema: NO_ARGUMENTS },
  {
    name: "get-user.profile",
    description: "Returns a user's profile {id, name} as structured content.",
    inputSchema: { type: "object", properties: { id: { type: "string" } }, required: ["id"] },
    outputSchema: {
      type: "object",
      properties: { id: { type: "string" }, name: { type: "string" } },
      required: ["id", "name"],
    },
  },
  { name: "constructor", description: "Returns its own name (a hostile name).", inputSchema: NO_ARGUMENTS },
  { name: "__proto__", description: "Returns its own name (a hostile name).", inputSchema: NO_ARGUMENTS },
  { name: "toString", description: "Returns its own name (a hostile name).", inputSchema: NO_ARGUMENTS },
  {
    name: "count_calls",
    description: "Returns {calls}: how many tools/call requests this process (stdio) or session (http) has served.",
    inputSchema: NO_ARGUMENTS,
    outputSchema: { type: "object", properties: { calls: { type: "number" } }, required: ["calls"] },
  },
  ...[0, 1, 2, 3, 4].map(
    (i): Tool => ({ name: `page_extra_${i}`, description: `Returns "page_extra_${i}"; here to make more pages.`, inputSchema: NO_ARGUMENTS }),
  ),
];

function pageSize(): number {
  const size = Number.parseInt(process.env.FIXTURE_PAGE_SIZE ?? "", 10);
  return Number.isInteger(size) && size > 0 ? size : 3;
}

function text(value: string): CallToolResult {
  return { content: [{ type: "text", text: value }] };
}

function structured(value: Record<string, unknown>): CallToolResult {
  return { content: [{ type: "text", text: JSON.stringify(value) }], structuredContent: value };
}

/**
 * An error that the SDK answers as a JSON-RPC error with this code and message. (An McpError would
 * do, but its message already starts "MCP error <code>: ", and the client's McpError adds that
 * prefix again.)
 */
function rpcError(code: number, message: string): Error & { code: number } {
  return Object.assign(new Error(message), { code });
}

function invalid(tool: string, message: string): Error {
  return rpcError(ErrorCode.InvalidParams, `Invalid arguments for tool ${tool}: ${message}`);
}

/** Resolves after `ms`, or rejects as soon as `signal` aborts. */
function wait(ms: number | undefined, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(new Error("cancelled"));
    const timer = ms === undefined ? undefined : setTimeout(done, ms);
    function done(): void {
      signal.removeEventListener("abort", cancelled);
      resolve();
    }
    function cancelled(): void {
      if (timer !== undefined) clearTimeout(timer);
      reject(new Error("cancelled"));
    }
    signal.addEventListener("abort", cancelled, { once: true });
  });
}

interface Session {
  calls: number;
}

/** A Server with the fixture's tools; `crash` and `garbage` behave as `mode` says. */
function createMcpServer(mode: Mode, session: Session, crash: () => never): Server {
  const server = new Server(
    { name: "paddock-mcp-fixture", version: "1.0.0" },
    { capabilities: { tools: { listChanged: true } } },
  );

  server.setRequestHandler(ListToolsRequestSchema, (request) => {
    const cursor = request.params?.cursor;
    const start = cursor === undefined ? 0 : Number(cursor);
    if (!Number.isInteger(start) || start < 0 || start >= TOOLS.length || String(start) !== (cursor ?? "0")) {
      throw rpcError(ErrorCode.InvalidParams, `Invalid cursor: ${String(cursor)}`);
    }
    const end = start + pageSize();
    return end < TOOLS.length ? { tools: TOOLS.slice(start, end), nextCursor: String(end) } : { tools: TOOLS.slice(start) };
  });

  server.setRequestHandler(CallToolRequestSchema, async (request, extra): Promise<CallToolResult> => {
    session.calls += 1;
    if (process.env.FIXTURE_NOTIFY_LIST_CHANGED) {
      void server.sendToolListChanged().catch(() => {});
    }
    const { name } = request.params;
    const args = request.params.arguments ?? {};
    switch (name) {
      case "add": {
        const { a, b } = args;
        if (typeof a !== "number" || typeof b !== "number") throw invalid(name, "a and b must be numbers");
        return structured({ sum: a + b });
      }
      case "echo": {
        if (typeof args.text !== "string") throw invalid(name, "text must be a string");
        return text(args.text);
      }
      case "json_text":
        return text(JSON.stringify({ items: [1, 2, 3] }));
      case "multi":
        return {
          content: [
            { type: "text", text: "a" },
            { type: "text", text: "b" },
          ],
        };
      case "image":
        return {
          content: [
            { type: "image", data: PNG_BASE64, mimeType: "image/png" },
            { type: "text", text: "a 1x1 png" },
          ],
        };
      case "fail":
        return { ...text(typeof args.reason === "string" ? args.reason : "it failed"), isError: true };
      case "throws":
        throw new Error("boom");
      case "slow": {
        const { ms } = args;
        if (typeof ms !== "number" || !(ms >= 0)) throw invalid(name, "ms must be a number >= 0");
        await wait(ms, extra.signal);
        return text("done");
      }
      case "hang":
        await wait(undefined, extra.signal);
        return text("cancelled");
      case "crash":
        return crash();
      case "garbage":
        // Over http the request handler answers this call itself (see serveHttp).
        if (mode === "stdio") process.stdout.write("this is not json\n");
        return text("after garbage");
      case "secret":
        return text(process.env.FIXTURE_SECRET ?? "");
      case "get-user.profile": {
        if (typeof args.id !== "string") throw invalid(name, "id must be a string");
        return structured({ id: args.id, name: "Ada" });
      }
      case "constructor":
      case "__proto__":
      case "toString":
        return text(name);
      case "count_calls":
        return structured({ calls: session.calls });
      default:
        if (/^page_extra_[0-4]$/.test(name)) return text(name);
        throw rpcError(ErrorCode.InvalidParams, `Unknown tool: ${name}`);
    }
  });

  return server;
}

async function serveStdio(): Promise<void> {
  const session: Session = { calls: 0 };
  const server = createMcpServer("stdio", session, () => process.exit(3));
  let stopping = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    // Closing aborts the signals of calls in flight (slow, hang); then nothing is left to do.
    void server.close().finally(() => process.exit(0));
  };
  // StdioServerTransport does not watch for the end of stdin: the client went away.
  process.stdin.once("end", stop);
  process.stdin.once("close", stop);
  process.once("SIGTERM", stop);
  // A client that stops reading gets EPIPE on our stdout: it is gone too.
  process.stdout.on("error", stop);
  await server.connect(new StdioServerTransport());
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

function sendJsonRpcError(res: ServerResponse, status: number, code: number, message: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { "content-type": "application/json", ...headers });
  res.end(JSON.stringify({ jsonrpc: "2.0", error: { code, message }, id: null }));
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isInitialize(body: unknown): boolean {
  const messages = Array.isArray(body) ? body : [body];
  return messages.some((m) => isRecord(m) && m.method === "initialize");
}

/** The id of a lone tools/call request for `garbage`, if `body` is one. */
function garbageCallId(body: unknown): string | number | undefined {
  if (!isRecord(body) || body.method !== "tools/call" || !isRecord(body.params) || body.params.name !== "garbage") return undefined;
  return typeof body.id === "string" || typeof body.id === "number" ? body.id : undefined;
}

interface HttpSession {
  transport: StreamableHTTPServerTransport;
  server: Server;
  counter: Session;
}

async function serveHttp(): Promise<void> {
  const sessions = new Map<string, HttpSession>();
  const sockets = new Set<Socket>();
  const token = process.env.FIXTURE_REQUIRE_TOKEN;

  const crash = (): never => {
    for (const socket of sockets) socket.destroy();
    process.exit(3);
  };

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? "/", "http://127.0.0.1").pathname;
    if (path !== "/mcp") {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found");
      return;
    }
    if (token !== undefined && req.headers.authorization !== `Bearer ${token}`) {
      sendJsonRpcError(res, 401, -32001, "Unauthorized", { "www-authenticate": 'Bearer realm="mcp-fixture"' });
      return;
    }

    let body: unknown;
    if (req.method === "POST") {
      try {
        body = JSON.parse(await readBody(req));
      } catch {
        sendJsonRpcError(res, 400, ErrorCode.ParseError, "Parse error");
        return;
      }
    }

    const sessionId = req.headers["mcp-session-id"];
    if (typeof sessionId === "string") {
      const session = sessions.get(sessionId);
      if (!session) {
        sendJsonRpcError(res, 404, -32001, "Session not found");
        return;
      }
      const garbageId = garbageCallId(body);
      if (garbageId !== undefined) {
        session.counter.calls += 1;
        const result = { jsonrpc: "2.0", id: garbageId, result: text("after garbage") };
        res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", "mcp-session-id": sessionId });
        res.end(`event: message\ndata: this is not json\n\nevent: message\ndata: ${JSON.stringify(result)}\n\n`);
        return;
      }
      await session.transport.handleRequest(req, res, body);
      return;
    }

    if (req.method !== "POST" || !isInitialize(body)) {
      sendJsonRpcError(res, 400, -32000, "Bad Request: Mcp-Session-Id header is required");
      return;
    }
    const counter: Session = { calls: 0 };
    const server = createMcpServer("http", counter, crash);
    const transport: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      onsessioninitialized: (id) => {
        sessions.set(id, { transport, server, counter });
      },
    });
    // A DELETE from the client, or our own shutdown, closes the transport.
    transport.onclose = () => {
      if (transport.sessionId !== undefined) sessions.delete(transport.sessionId);
      void server.close().catch(() => {});
    };
    await server.connect(transport);
    await transport.handleRequest(req, res, body);
  }

  const httpServer = createHttpServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      process.stderr.write(`mcp-fixture: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
      if (!res.headersSent) sendJsonRpcError(res, 500, ErrorCode.InternalError, "Internal error");
      else res.destroy();
    });
  });
  httpServer.on("connection", (socket: Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  });

  let stopping = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    const closing = [...sessions.values()].map(({ transport }) => transport.close().catch(() => {}));
    sessions.clear();
    httpServer.close();
    void Promise.all(closing).finally(() => {
      for (const socket of sockets) socket.destroy();
      process.exit(0);
    });
  };
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);

  await new Promise<void>((resolve, reject) => {
    httpServer.once("error", reject);
    httpServer.listen(0, "127.0.0.1", () => resolve());
  });
  const { port } = httpServer.address() as AddressInfo;
  process.stdout.write(`${JSON.stringify({ url: `http://127.0.0.1:${port}/mcp` })}\n`);
}

const mode = process.argv[2];
if (mode === "stdio") await serveStdio();
else if (mode === "http") await serveHttp();
