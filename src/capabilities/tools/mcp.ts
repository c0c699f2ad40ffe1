/**
 * MCP servers as tools. The host connects to each server with the official SDK's client (stdio
 * or Streamable HTTP), lists its tools, and offers each as `tools.<server>.<tool>(input)`. The
 * connections, and whatever secrets they hold (a server's env, its headers), stay on the host;
 * sandboxes only ever see the tools' names, schemas and results.
 */
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import type { Transport } from "@modelcontextprotocol/sdk/shared/transport.js";
import type { Agent } from "undici";
import { undici } from "../fetch/undici.js";
import { NetworkPolicy } from "../fetch/policy.js";
import { McpError } from "../../host/errors.js";
import type { ToolEntry } from "./host.js";
import { lazyJsonSchema, type CompiledSchema } from "./schema.js";

/** A server started as a child process, speaking MCP over its stdin and stdout. */
export interface McpStdioServer {
  command: string;
  args?: string[];
  /** Added to a minimal environment (PATH, HOME…): the place for the server's own secrets. */
  env?: Record<string, string>;
  cwd?: string;
}

/** A server reached over Streamable HTTP. */
export interface McpHttpServer {
  url: string;
  /** Sent with every request (an Authorization header, say); never seen by sandboxes. */
  headers?: Record<string, string>;
}

export type McpServerConfig = McpStdioServer | McpHttpServer;

export interface McpHubOptions {
  /**
   * Private addresses (CIDR ranges, as net.allowPrivate takes them) HTTP servers may be reached
   * at. The servers' URLs are the operator's choice, but their names are still resolved and
   * checked like a sandbox's fetch: a public name that resolves to a private address is refused.
   */
  allowPrivate?: string[];
  /** Connecting and listing a server's tools must finish within this (ms). */
  connectTimeoutMs?: number;
  /** Where stdio servers' stderr goes: the host's stderr ("inherit", the default) or nowhere. */
  stderr?: "inherit" | "ignore";
}

/** Pages of tools/list followed at most (a server that pages forever is cut off here). */
const MAX_LIST_PAGES = 100;
const IDENTIFIER_CHARS = /[^A-Za-z0-9_$]/g;
const MAX_IDENTIFIER_CHARS = 128;
/** The SDK's error code for a connection that closed under a request. */
const CONNECTION_CLOSED = -32000;

/**
 * Connections to MCP servers, shared by every sandbox given the hub. Each server is connected on
 * first use, reconnected on the next use after its connection is lost, and closed by `close()`.
 */
export class McpHub {
  private readonly servers: Map<string, McpServerLink>;
  private closed = false;

  constructor(servers: Record<string, McpServerConfig>, private readonly options: McpHubOptions = {}) {
    if (typeof servers !== "object" || servers === null) throw new TypeError("McpHub: servers must be an object of server configurations");
    this.servers = new Map();
    const taken = new Set<string>();
    for (const [name, config] of Object.entries(servers)) {
      checkConfig(name, config);
      this.servers.set(name, new McpServerLink(name, uniqueIdentifier(name, taken), config, options));
    }
  }

  /** The servers' names as namespaces of `tools` ("my-server" → my_server). */
  get namespaces(): string[] {
    return [...this.servers.values()].map((server) => server.namespace);
  }

  /** Every server's tools, connecting to servers not connected yet. Fails with an McpError naming the server that could not be reached. */
  async tools(): Promise<ToolEntry[]> {
    if (this.closed) throw new McpError("the MCP hub is closed");
    const lists = await Promise.all([...this.servers.values()].map((server) => server.tools()));
    return lists.flat();
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.servers.values()].map((server) => server.close()));
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** One server: its connection (made on demand) and its tools (listed once). */
class McpServerLink {
  private client: Promise<Client> | undefined;
  private listed: Promise<ToolEntry[]> | undefined;
  private agent: Agent | undefined;
  private closed = false;

  constructor(
    readonly name: string,
    /** The server's name as a namespace of `tools`. */
    readonly namespace: string,
    private readonly config: McpServerConfig,
    private readonly options: McpHubOptions,
  ) {}

  tools(): Promise<ToolEntry[]> {
    this.listed ??= this.list().catch((error: unknown) => {
      // The next use tries again: a server that was down may be up.
      this.listed = undefined;
      throw error;
    });
    return this.listed;
  }

  async close(): Promise<void> {
    this.closed = true;
    const client = this.client;
    this.client = undefined;
    await client?.then((connected) => connected.close()).catch(() => {});
    await this.agent?.close().catch(() => {});
  }

  private async list(): Promise<ToolEntry[]> {
    const client = await this.connected();
    const found: ToolEntry[] = [];
    const taken = new Set<string>();
    let cursor: string | undefined;
    for (let page = 0; page < MAX_LIST_PAGES; page++) {
      let listing;
      try {
        listing = await client.listTools(cursor === undefined ? {} : { cursor }, { timeout: this.connectTimeoutMs });
      } catch (error) {
        throw new McpError(`the MCP server "${this.name}" could not list its tools: ${messageOf(error)}`);
      }
      for (const tool of listing.tools) found.push(this.entry(tool, taken));
      cursor = listing.nextCursor;
      if (cursor === undefined) break;
    }
    return found;
  }

  private entry(tool: { name: string; description?: string | undefined; inputSchema: object; outputSchema?: object | undefined }, taken: Set<string>): ToolEntry {
    const key = uniqueIdentifier(tool.name, taken);
    const path = [this.namespace, key];
    const name = path.join(".");
    return {
      path,
      name,
      description: tool.description,
      originalName: key === tool.name ? undefined : tool.name,
      input: argumentsSchema(lazyJsonSchema(tool.inputSchema as Record<string, unknown>, "input")),
      output: tool.outputSchema ? lazyJsonSchema(tool.outputSchema as Record<string, unknown>, "the result") : undefined,
      // (The SDK's client checks only the tools of the last page it listed.)
      checksOutput: true,
      run: (input, { signal, timeoutMs }) => this.call(tool.name, input, signal, timeoutMs),
    };
  }

  private async call(tool: string, input: unknown, signal: AbortSignal, timeoutMs: number): Promise<unknown> {
    // What JSON cannot carry (a BigInt, a Map's entries) is refused here, before the connection
    // (shared with other sandboxes) could take an encoding failure for a broken connection.
    try {
      JSON.stringify(input);
    } catch (error) {
      throw new Error(`the input cannot be sent to an MCP server as JSON (${error instanceof Error ? error.message : "unencodable"})`);
    }
    let client: Client;
    try {
      client = await this.connected();
    } catch {
      // Why (a path, an address) is the host's business: the eval's McpError tells the host.
      throw new Error(`the MCP server "${this.name}" cannot be reached right now`);
    }
    let result;
    try {
      result = await client.callTool({ name: tool, arguments: input as Record<string, unknown> }, undefined, { signal, timeout: timeoutMs });
    } catch (error) {
      // A JSON-RPC error is the server's answer; anything else (a closed connection, a failed
      // request) means the connection is gone, even when the SDK does not notice (an HTTP server
      // that died): the next call connects again.
      const code = (error as { code?: unknown }).code;
      if (typeof code === "number" && code !== CONNECTION_CLOSED) throw new Error(`the MCP server "${this.name}" failed the call: ${messageOf(error)}`);
      this.disconnect(client);
      // A transport's own words may hold URLs or paths: the sandbox gets these instead.
      throw new Error(`the MCP server "${this.name}" failed the call: the connection was lost (it is made again on the next call)`);
    }
    return unwrapResult(result as CallResult);
  }

  private disconnect(client: Client): void {
    void this.client?.then((current) => {
      if (current !== client) return;
      this.client = undefined;
      void client.close().catch(() => {});
    }, () => {});
  }

  private get connectTimeoutMs(): number {
    return this.options.connectTimeoutMs ?? 30_000;
  }

  /** The live client, connecting first if there is none (or the last one's connection was lost). */
  private connected(): Promise<Client> {
    if (this.closed) return Promise.reject(new McpError(`the MCP server "${this.name}" is closed`));
    this.client ??= this.connect().catch((error: unknown) => {
      this.client = undefined;
      throw error;
    });
    return this.client;
  }

  private async connect(): Promise<Client> {
    const { Client } = await import("@modelcontextprotocol/sdk/client/index.js");
    const client = new Client({ name: "paddock", version: "0.1.0" }, { capabilities: {} });
    const transport = await this.transport();
    const current = this.client;
    client.onclose = () => {
      // Lost (the server exited, or its session ended): the next call connects again.
      if (this.client === current) this.client = undefined;
    };
    try {
      await client.connect(transport, { timeout: this.connectTimeoutMs });
    } catch (error) {
      await client.close().catch(() => {});
      throw new McpError(`the MCP server "${this.name}" could not be reached: ${messageOf(error)}`);
    }
    if (this.closed) {
      await client.close().catch(() => {});
      throw new McpError(`the MCP server "${this.name}" is closed`);
    }
    return client;
  }

  private async transport(): Promise<Transport> {
    const config = this.config;
    if ("command" in config) {
      const { StdioClientTransport } = await import("@modelcontextprotocol/sdk/client/stdio.js");
      return new StdioClientTransport({
        command: config.command,
        ...(config.args ? { args: config.args } : {}),
        ...(config.env ? { env: config.env } : {}),
        ...(config.cwd ? { cwd: config.cwd } : {}),
        stderr: this.options.stderr ?? "inherit",
      });
    }
    const { StreamableHTTPClientTransport } = await import("@modelcontextprotocol/sdk/client/streamableHttp.js");
    const url = new URL(config.url);
    const policy = new NetworkPolicy({ allow: [url.origin], allowPrivate: this.options.allowPrivate ?? [], lookup: undefined });
    const verdict = policy.checkUrl(url);
    if (!verdict.ok) throw new McpError(`the MCP server "${this.name}" at ${url.origin} is refused: ${verdict.rule}`);
    // Connections only to addresses the policy checked, and no redirects elsewhere.
    this.agent ??= new (undici().Agent)({ connect: { lookup: policy.lookup, timeout: this.connectTimeoutMs } });
    const agent = this.agent;
    const fetch = ((input: string | URL | Request, init?: RequestInit) =>
      undici().fetch(input as string, { ...(init as object), redirect: "error", dispatcher: agent } as Parameters<ReturnType<typeof undici>["fetch"]>[1])) as unknown as typeof globalThis.fetch;
    return new StreamableHTTPClientTransport(url, { fetch, ...(config.headers ? { requestInit: { headers: config.headers } } : {}) });
  }
}

/** An MCP tool's arguments are an object: none given is `{}`, as a tool without parameters expects. */
function argumentsSchema(schema: CompiledSchema): CompiledSchema {
  return {
    json: schema.json,
    check(value) {
      const args = value === undefined ? {} : value;
      if (typeof args !== "object" || args === null || Array.isArray(args)) return { ok: false, problems: ["input must be an object (the tool's arguments)"] };
      return schema.check(args);
    },
  };
}

interface CallResult {
  content?: Array<{ type: string; text?: string }>;
  structuredContent?: unknown;
  isError?: boolean;
}

/**
 * What the sandbox gets for a tool's result: its structured content if it has one, else its text
 * (parsed when it is JSON), else its content items as they are (images, resources…). A result
 * marked as an error becomes the call's error, with its text as the message.
 */
export function unwrapResult(result: CallResult): unknown {
  const content = Array.isArray(result.content) ? result.content : [];
  const texts = content.filter((item) => item.type === "text" && typeof item.text === "string").map((item) => item.text as string);
  if (result.isError) throw new Error(texts.join("\n") || "the MCP tool reported an error");
  if (result.structuredContent !== undefined) return result.structuredContent;
  if (texts.length !== content.length) return content;
  const text = texts.join("\n");
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function checkConfig(name: string, config: unknown): asserts config is McpServerConfig {
  const where = `mcp.${name}`;
  if (typeof config !== "object" || config === null) throw new TypeError(`${where} must be { command, args?, env? } or { url, headers? }`);
  const fields = config as Record<string, unknown>;
  const strings = (value: unknown) => Array.isArray(value) && value.every((item) => typeof item === "string");
  const stringRecord = (value: unknown) => typeof value === "object" && value !== null && Object.values(value).every((item) => typeof item === "string");
  if ("command" in fields) {
    if (typeof fields.command !== "string" || fields.command === "") throw new TypeError(`${where}.command must be a non-empty string`);
    if (fields.args !== undefined && !strings(fields.args)) throw new TypeError(`${where}.args must be an array of strings`);
    if (fields.env !== undefined && !stringRecord(fields.env)) throw new TypeError(`${where}.env must be an object of strings`);
    if (fields.cwd !== undefined && typeof fields.cwd !== "string") throw new TypeError(`${where}.cwd must be a string`);
    return;
  }
  if (typeof fields.url !== "string" || !URL.canParse(fields.url) || !/^https?:$/.test(new URL(fields.url).protocol)) {
    throw new TypeError(`${where} needs a command (a stdio server) or an http(s) url (a Streamable HTTP server)`);
  }
  if (fields.headers !== undefined && !stringRecord(fields.headers)) throw new TypeError(`${where}.headers must be an object of strings`);
}

/** A JavaScript identifier for a name ("get-user.profile" → "get_user_profile"), unique among `taken`. */
export function uniqueIdentifier(name: string, taken: Set<string>): string {
  // Short enough that a server's name and a tool's stay within a tool name's limit, dotted.
  let base = name.slice(0, MAX_IDENTIFIER_CHARS).replace(IDENTIFIER_CHARS, "_");
  // A namespace with a `then` would be a thenable: `await tools.server` would call the tool.
  if (base === "then") base = "then_";
  if (base === "" || /^\d/.test(base)) base = "_" + base;
  let candidate = base;
  for (let n = 2; taken.has(candidate); n++) candidate = `${base}_${n}`;
  taken.add(candidate);
  return candidate;
}

function messageOf(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.length > 2000 ? message.slice(0, 1999) + "…" : message;
}
