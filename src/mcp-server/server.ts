/**
 * Paddock as an MCP server: one tool, `execute_code`, whose code can call every upstream MCP
 * server's tools (code mode). Each MCP session has its own persistent sandbox, closed when the
 * session ends; the upstream connections are the server's, shared by all sessions, and their
 * secrets never leave the host. Served over stdio or Streamable HTTP (with a bearer token).
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { randomBytes, randomUUID, timingSafeEqual } from "node:crypto";
import type { AddressInfo } from "node:net";
import type { Server } from "@modelcontextprotocol/sdk/server/index.js";
import type { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { Sandbox } from "../host/sandbox.js";
import { parseOptions, sandboxOptionsSchema } from "../host/options.js";
import { McpHub } from "../capabilities/tools/mcp.js";
import { toolDeclarations } from "../capabilities/tools/catalog.js";
import type { ToolCallRecord } from "../capabilities/tools/host.js";
import {
  EXECUTE_CODE, EXECUTE_CODE_INPUT_SCHEMA, EXECUTE_CODE_OUTPUT_SCHEMA, checkExecuteCodeInput, describeExecuteCode, executeCode, renderExecuteCode,
} from "../code-tool/execute-code.js";
import type { McpServeConfig } from "./config.js";

/** One JSON line of the server's log (stderr). */
export type McpServeLog = (event: Record<string, unknown>) => void;

const VERSION = "0.1.0";

/** What every session shares: the upstream servers, and the tool's description. */
export class PaddockMcp {
  readonly hub: McpHub | undefined;
  private description: Promise<string> | undefined;

  constructor(readonly config: McpServeConfig, readonly log: McpServeLog) {
    // Wrong options are found now, not when the first session runs code.
    parseOptions(sandboxOptionsSchema(), { ...config.sandbox, persistent: true }, "paddock mcp: the configuration");
    this.hub = Object.keys(config.servers).length > 0 ? new McpHub(config.servers, { allowPrivate: config.allowPrivate, stderr: "inherit" }) : undefined;
  }

  /** A session: its MCP server object, and its sandbox (made on the first call of execute_code). */
  async session(id: string): Promise<{ server: Server; close: () => Promise<void> }> {
    const [{ Server }, { CallToolRequestSchema, ListToolsRequestSchema }] = await Promise.all([
      import("@modelcontextprotocol/sdk/server/index.js"),
      import("@modelcontextprotocol/sdk/types.js"),
    ]);
    const server = new Server({ name: "paddock", version: VERSION }, { capabilities: { tools: {} } });
    let sandbox: Promise<Sandbox> | undefined;
    const onToolCall = (record: ToolCallRecord) => this.log({ event: "tool_call", session: id, tool: record.tool, ok: record.ok, ms: record.ms, ...(record.error ? { error: record.error } : {}) });
    server.setRequestHandler(ListToolsRequestSchema, async () => ({
      tools: [{
        name: EXECUTE_CODE,
        title: "Run code",
        description: await this.describe(),
        inputSchema: EXECUTE_CODE_INPUT_SCHEMA as { type: "object" },
        outputSchema: EXECUTE_CODE_OUTPUT_SCHEMA as { type: "object" },
        annotations: { readOnlyHint: false, destructiveHint: true, openWorldHint: true },
      }],
    }));
    server.setRequestHandler(CallToolRequestSchema, async (request) => {
      const failed = (text: string) => ({ content: [{ type: "text" as const, text }], isError: true });
      if (request.params.name !== EXECUTE_CODE) return failed(`there is no tool "${request.params.name}"; the only tool is ${EXECUTE_CODE}`);
      const input = checkExecuteCodeInput(request.params.arguments);
      if (typeof input === "string") return failed(input);
      let made: Sandbox;
      try {
        made = await (sandbox ??= Sandbox.create({ ...this.config.sandbox, persistent: true, ...(this.hub ? { mcp: this.hub } : {}), onToolCall }));
      } catch (error) {
        sandbox = undefined;
        return failed(`the sandbox could not be made: ${(error as Error).message}`);
      }
      const result = await executeCode(made, input);
      this.log({ event: EXECUTE_CODE, session: id, ok: result.ok, ms: result.ms, toolCalls: result.toolCalls.length, ...(result.error ? { error: `${result.error.name}: ${result.error.message}`.slice(0, 500) } : {}) });
      return { content: [{ type: "text" as const, text: renderExecuteCode(result) }], structuredContent: result as unknown as Record<string, unknown>, isError: !result.ok };
    });
    this.log({ event: "session", session: id, state: "open" });
    let closed = false;
    return {
      server,
      close: async () => {
        if (closed) return;
        closed = true;
        this.log({ event: "session", session: id, state: "closed" });
        await (await sandbox?.catch(() => undefined))?.close();
      },
    };
  }

  async close(): Promise<void> {
    await this.hub?.close();
  }

  /** The description, with the upstream tools' declarations (connecting the servers on first use; retried while they fail). */
  private async describe(): Promise<string> {
    this.description ??= toolDeclarations(undefined, this.hub).then((declarations) => describeExecuteCode(declarations, this.config.sandbox));
    try {
      return await this.description;
    } catch (error) {
      this.description = undefined;
      this.log({ event: "upstream_error", error: (error as Error).message });
      return describeExecuteCode("", this.config.sandbox) + `\n(The upstream MCP servers' tools are unavailable for now: ${(error as Error).message})`;
    }
  }
}

/** Serves one session over stdin and stdout until stdin ends. */
export async function serveStdio(mcp: PaddockMcp): Promise<void> {
  const { StdioServerTransport } = await import("@modelcontextprotocol/sdk/server/stdio.js");
  const session = await mcp.session("stdio");
  const transport = new StdioServerTransport();
  const ended = new Promise<void>((resolve) => {
    // The SDK's transport does not watch for the client going away: stdin's end is the session's.
    process.stdin.once("end", resolve);
    process.stdin.once("close", resolve);
    transport.onclose = () => resolve();
  });
  await session.server.connect(transport);
  await ended;
  await session.close();
  await session.server.close().catch(() => {});
  await mcp.close();
}

export interface HttpServeOptions {
  port: number;
  /** The address to listen on (default 127.0.0.1). */
  host?: string;
  /** Clients must send `Authorization: Bearer <token>`; one is made (and logged) when none is given. */
  token?: string;
  /** Sessions at once (default 64); more are refused with 503. */
  maxSessions?: number;
  /** A session without requests for this long is closed (default 30 minutes). */
  sessionIdleMs?: number;
}

interface HttpSession {
  transport: StreamableHTTPServerTransport;
  lastUsed: number;
}

/** Serves MCP over Streamable HTTP at /mcp; resolves once listening, with the URL and a stop function. */
export async function serveHttp(mcp: PaddockMcp, options: HttpServeOptions): Promise<{ url: string; token: string; stop: () => Promise<void> }> {
  const { StreamableHTTPServerTransport } = await import("@modelcontextprotocol/sdk/server/streamableHttp.js");
  const host = options.host ?? "127.0.0.1";
  const token = options.token ?? randomBytes(24).toString("base64url");
  const expected = Buffer.from(`Bearer ${token}`);
  const maxSessions = options.maxSessions ?? 64;
  const idleMs = options.sessionIdleMs ?? 30 * 60_000;
  const sessions = new Map<string, HttpSession>();
  /** Sessions being opened (their initialize not yet answered). */
  let opening = 0;
  const closing = new Set<Promise<void>>();
  const loopbackOnly = /^(127\.|::1$|localhost$)/.test(host);

  const refuse = (res: ServerResponse, status: number, message: string, headers: Record<string, string> = {}) => {
    res.writeHead(status, { "content-type": "application/json", ...headers }).end(JSON.stringify({ jsonrpc: "2.0", error: { code: -32000, message }, id: null }));
  };
  const authorized = (req: IncomingMessage) => {
    const given = Buffer.from(req.headers.authorization ?? "");
    return given.length === expected.length && timingSafeEqual(given, expected);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? "").split("?")[0];
    if (path !== "/mcp") return refuse(res, 404, "not found: the MCP endpoint is /mcp");
    // A page in a browser must not reach a loopback server through a name it controls (DNS rebinding).
    const hostname = (req.headers.host ?? "").replace(/:\d+$/, "");
    if (loopbackOnly && !["127.0.0.1", "localhost", "[::1]"].includes(hostname)) return refuse(res, 403, "forbidden host");
    if (!authorized(req)) return refuse(res, 401, "unauthorized: send Authorization: Bearer <token>", { "www-authenticate": "Bearer" });
    const id = req.headers["mcp-session-id"];
    if (typeof id === "string") {
      const existing = sessions.get(id);
      if (!existing) return refuse(res, 404, "session not found (it ended, or the server restarted): start a new session");
      existing.lastUsed = Date.now();
      return existing.transport.handleRequest(req, res);
    }
    // Counted before the first await: a burst of initializations cannot overshoot the limit.
    if (sessions.size + opening >= maxSessions) return refuse(res, 503, `too many sessions (${maxSessions})`, { "retry-after": "30" });
    opening++;
    try {
      // A new session: its id is made when the client's initialize arrives.
      const sessionId = randomUUID();
      const session = await mcp.session(sessionId);
      const transport: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
        sessionIdGenerator: () => sessionId,
        onsessioninitialized: () => void sessions.set(sessionId, { transport, lastUsed: Date.now() }),
      });
      transport.onclose = () => {
        sessions.delete(sessionId);
        // Its sandbox closes in the background; stop() waits for every one.
        const done = session.close();
        closing.add(done);
        void done.finally(() => closing.delete(done));
      };
      await session.server.connect(transport);
      await transport.handleRequest(req, res);
      // Not an initialize (the transport refused it): no session came of it.
      if (!sessions.has(sessionId)) await transport.close();
    } finally {
      opening--;
    }
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      mcp.log({ event: "http_error", error: (error as Error).message });
      if (!res.headersSent) refuse(res, 500, "internal error");
      else res.destroy();
    });
  });
  const sweep = setInterval(() => {
    const now = Date.now();
    for (const [id, session] of sessions) {
      if (now - session.lastUsed > idleMs) {
        sessions.delete(id);
        void session.transport.close();
      }
    }
  }, Math.min(idleMs, 60_000));
  sweep.unref();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const url = `http://${host.includes(":") ? `[${host}]` : host}:${port}/mcp`;
  return {
    url,
    token,
    stop: async () => {
      clearInterval(sweep);
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      await Promise.all([...sessions.values()].map((session) => session.transport.close()));
      sessions.clear();
      server.closeAllConnections();
      await closed;
      await Promise.all(closing);
      await mcp.close();
    },
  };
}
