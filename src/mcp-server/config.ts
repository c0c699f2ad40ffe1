/**
 * `paddock mcp --config paddock.json`: the `mcpServers` object MCP clients already use for the
 * upstream servers, and Paddock's own sandbox options beside it.
 *
 *   {
 *     "mcpServers": { "github": { "command": "npx", "args": [...], "env": {...} }, "search": { "url": "https://…", "headers": {...} } },
 *     "mcpAllowPrivate": ["10.0.0.0/8"],
 *     "timeoutMs": 10000, "memoryMb": 256, "net": { "allow": ["api.example.com"] }, "modules": { "allow": ["npm:*"] }
 *   }
 */
import { readFileSync } from "node:fs";
import type { SandboxOptions } from "../host/options.js";
import type { McpServerConfig } from "../capabilities/tools/mcp.js";

export interface McpServeConfig {
  servers: Record<string, McpServerConfig>;
  /** Private addresses HTTP upstream servers may be reached at. */
  allowPrivate: string[];
  /** Options of each session's sandbox (checked when the first one is made). */
  sandbox: Omit<SandboxOptions, "tools" | "mcp">;
}

/** Sandbox options a JSON file cannot sensibly hold (functions, listeners). */
const NOT_FROM_FILES = new Set(["tools", "mcp", "onLog", "onFetch", "onImport", "onToolCall", "globals"]);

export function readConfig(path: string | undefined): McpServeConfig {
  if (path === undefined) return { servers: {}, allowPrivate: [], sandbox: {} };
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, "utf8"));
  } catch (error) {
    throw new TypeError(`${path}: ${(error as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (error as Error).message}`);
  }
  return parseConfig(parsed, path);
}

export function parseConfig(parsed: unknown, where: string): McpServeConfig {
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new TypeError(`${where}: the configuration must be a JSON object`);
  const { mcpServers = {}, mcpAllowPrivate = [], ...sandbox } = parsed as Record<string, unknown>;
  if (typeof mcpServers !== "object" || mcpServers === null || Array.isArray(mcpServers)) throw new TypeError(`${where}: "mcpServers" must be an object of servers`);
  if (!Array.isArray(mcpAllowPrivate) || !mcpAllowPrivate.every((entry) => typeof entry === "string")) throw new TypeError(`${where}: "mcpAllowPrivate" must be an array of addresses or ranges`);
  for (const key of Object.keys(sandbox)) {
    if (NOT_FROM_FILES.has(key)) throw new TypeError(`${where}: "${key}" cannot be set in a configuration file`);
  }
  return { servers: mcpServers as Record<string, McpServerConfig>, allowPrivate: mcpAllowPrivate as string[], sandbox: sandbox as McpServeConfig["sandbox"] };
}
