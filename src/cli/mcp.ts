/** `paddock mcp`: Paddock's code mode as an MCP server, over stdio or Streamable HTTP. */
import { readConfig } from "../mcp-server/config.js";
import { PaddockMcp, serveHttp, serveStdio } from "../mcp-server/server.js";

export interface McpCommandOptions {
  config: string | undefined;
  http: boolean;
  port: number | undefined;
  host: string | undefined;
  token: string | undefined;
}

export async function mcpCommand(options: McpCommandOptions): Promise<number> {
  // stdout is the protocol's (over stdio): the log is JSON lines on stderr.
  const log = (event: Record<string, unknown>) => process.stderr.write(JSON.stringify({ time: new Date().toISOString(), ...event }) + "\n");
  const mcp = new PaddockMcp(readConfig(options.config), log);
  if (!options.http) {
    await serveStdio(mcp);
    return 0;
  }
  const served = await serveHttp(mcp, {
    port: options.port ?? 0,
    ...(options.host !== undefined ? { host: options.host } : {}),
    ...(options.token !== undefined ? { token: options.token } : {}),
  });
  // A token made here is shown once, to whoever started the server.
  log({ event: "listening", url: served.url, ...(options.token === undefined ? { token: served.token } : {}) });
  await new Promise<void>((resolve) => {
    process.once("SIGINT", resolve);
    process.once("SIGTERM", resolve);
  });
  await served.stop();
  return 0;
}
