/**
 * The paddock command.
 *   paddock eval <code>     run code, print the value as JSON
 *   paddock run <file>      run a .js/.ts file the same way
 *   paddock bench           run the benchmark
 *   paddock mcp             serve code mode over MCP
 *   paddock transform <file> NDJSON through a transform function
 *   paddock serve-apps       serve every subfolder of a folder as an app
 *   paddock serve <file>     serve one file as an app
 */
import { readFileSync } from "node:fs";
import { basename } from "node:path";
import { inspect, parseArgs } from "node:util";
import { Sandbox, SandboxError, ScriptError, configurePool, type LogEntry, type SandboxOptions } from "../index.js";

const USAGE = `usage:
  paddock eval <code> [flags]     run code; its value is printed as JSON on stdout
  paddock run <file> [flags]      run a JavaScript or TypeScript file the same way
  paddock bench [--quick] [--fetch | --modules | --tools | --transforms | --apps | --files]  run the benchmark (same as npm run bench); the flags: only those rows
  paddock modules add <package…>   fetch and prepare npm packages into the module cache (npm:lodash-es@4, date-fns)
  paddock modules list | clear     what the module cache holds; empty it
  paddock mcp [--config paddock.json] [--http --port <n> [--host <addr>] [--token <t>]]
                                   serve MCP (stdio, or Streamable HTTP at /mcp with a bearer token): one tool,
                                   execute_code, whose code can call the tools of the config's mcpServers
  paddock transform <file> [--errors <file>] [--batch <n>] [--carriers <n>] [--in-flight <n>] [flags]
                                   NDJSON from stdin through the file's \`export default\` function to stdout;
                                   undefined and null results are dropped; failed messages (dead letters) go
                                   to --errors as JSON lines (else to stderr); --timeout-ms is per message
  paddock serve-apps --root <folder> [--port <n>] [--hostname <addr>] [--data <folder>] [--poll-ms <n>] [--hosts-only]
                                   serve every subfolder of --root as an app (limits and grants in its paddock.json)
                                   at http://<app>.localhost:<port>/ and (unless --hosts-only: one browser origin for
                                   all) at /<app>/; folders added, changed or removed are installed, updated or
                                   removed as they are; --port 0 picks a free port
  paddock serve <file> [--port <n>] [--hostname <addr>] [--timeout-ms <n>] [--memory-mb <n>] [--max-log-bytes <n>]
         [--allow…] [--allow-import…]  serve one file's \`export default { fetch }\` as an app; --timeout-ms is per request

flags:
  --timeout-ms <n>        wall-clock limit per eval (default 5000)
  --memory-mb <n>         memory limit (default 128)
  --max-result-bytes <n>  result size limit (default 16 MiB)
  --max-log-bytes <n>     console output limit (default 1 MiB)
  --globals <json>        JSON object whose keys become globals
  --ts                    treat the code as TypeScript
  --allow <pattern>       let fetch reach hosts matching the pattern (repeatable): api.github.com, *.example.com, host:8080
  --allow-private <cidr>  let fetch reach this private address or range anyway (repeatable): 127.0.0.1, 10.1.2.0/24
  --allow-import <pattern>  let the code import npm packages matching the pattern (repeatable): npm:lodash-es, npm:@scope/*, npm:*
  --registry <url>        the npm registry to import from (default: npm's own configuration)
  --offline               import only what the module cache already holds
  --cache-dir <dir>       the module cache (default: PADDOCK_CACHE_DIR, else ~/.cache/paddock)

console output goes to stderr; on failure a readable error goes to stderr and the exit code is 1.`;

const FLAGS = {
  "timeout-ms": { type: "string" },
  "memory-mb": { type: "string" },
  "max-result-bytes": { type: "string" },
  "max-log-bytes": { type: "string" },
  globals: { type: "string" },
  ts: { type: "boolean" },
  allow: { type: "string", multiple: true },
  "allow-private": { type: "string", multiple: true },
  "allow-import": { type: "string", multiple: true },
  registry: { type: "string" },
  offline: { type: "boolean" },
  "cache-dir": { type: "string" },
  quick: { type: "boolean" },
  fetch: { type: "boolean" },
  modules: { type: "boolean" },
  tools: { type: "boolean" },
  transforms: { type: "boolean" },
  apps: { type: "boolean" },
  files: { type: "boolean" },
  config: { type: "string" },
  http: { type: "boolean" },
  port: { type: "string" },
  host: { type: "string" },
  token: { type: "string" },
  errors: { type: "string" },
  batch: { type: "string" },
  carriers: { type: "string" },
  "in-flight": { type: "string" },
  root: { type: "string" },
  hostname: { type: "string" },
  data: { type: "string" },
  "poll-ms": { type: "string" },
  "hosts-only": { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const;

function integerFlag(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  const number = Number(value);
  if (!Number.isInteger(number)) throw new UsageError(`--${name} must be an integer (got "${value}")`);
  return number;
}

/** A TCP port (0: a free one), 8080 when not given. */
function portFlag(value: string | undefined): number {
  const port = integerFlag(value, "port") ?? 8080;
  if (port < 0 || port > 65_535) throw new UsageError(`--port must be between 0 and 65535 (got ${port})`);
  return port;
}

/** Refuses flags that `command` would otherwise ignore without a word. */
function onlyFlags(command: string, values: Flags, allowed: ReadonlyArray<keyof typeof FLAGS>): void {
  const stray = Object.keys(values).filter((flag) => !allowed.includes(flag as keyof typeof FLAGS));
  if (stray.length > 0) throw new UsageError(`paddock ${command}: ${stray.map((flag) => `--${flag}`).join(", ")} ${stray.length === 1 ? "does" : "do"} not apply (see paddock --help)`);
}

class UsageError extends Error {}

/** JSON where the value allows it, else Node's inspect (Map, BigInt, undefined, cycles…). */
function formatValue(value: unknown): string {
  try {
    const json = JSON.stringify(value);
    if (json !== undefined && !containsNonJson(value, new Set())) return json;
  } catch {
    // cycles, BigInt
  }
  return inspect(value, { depth: 6, colors: false });
}

function containsNonJson(value: unknown, seen: Set<unknown>): boolean {
  if (typeof value === "number") return !Number.isFinite(value);
  if (typeof value !== "object" || value === null) return typeof value === "undefined";
  if (seen.has(value)) return true;
  seen.add(value);
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== Array.prototype && proto !== null) return true;
  return Object.values(value).some((v) => containsNonJson(v, seen));
}

function printLog(entry: LogEntry): void {
  process.stderr.write(entry.message + "\n");
}

type Flags = ReturnType<typeof parseArgs<{ options: typeof FLAGS; allowPositionals: true; strict: true }>>["values"];

/** What the flags grant: network and imports. */
function sandboxGrants(values: Flags): Pick<SandboxOptions, "net" | "modules"> {
  return {
    ...(values.allow ? { net: { allow: values.allow, allowPrivate: values["allow-private"] ?? [] } } : {}),
    ...(values["allow-import"] ? { modules: {
      allow: values["allow-import"], offline: values.offline === true,
      ...(values.registry ? { registry: values.registry } : {}), ...(values["cache-dir"] ? { cacheDir: values["cache-dir"] } : {}),
    } } : {}),
  };
}

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, options: FLAGS, allowPositionals: true, strict: true });
  const [command, target] = positionals;
  if (values.help || !command) {
    console.log(USAGE);
    return command || values.help ? 0 : 2;
  }
  if (command === "bench") {
    const { runBenchmark } = await import("../../bench/run.js");
    await runBenchmark({ quick: values.quick ?? false, fetchOnly: values.fetch ?? false, modulesOnly: values.modules ?? false, toolsOnly: values.tools ?? false, transformsOnly: values.transforms ?? false, appsOnly: values.apps ?? false, filesOnly: values.files ?? false });
    return 0;
  }
  if (command === "modules") {
    const { modulesCommand } = await import("./modules.js");
    return modulesCommand(target, positionals.slice(2), { cacheDir: values["cache-dir"], registry: values.registry });
  }
  if (command === "mcp") {
    const { mcpCommand } = await import("./mcp.js");
    return mcpCommand({ config: values.config, http: values.http === true, port: integerFlag(values.port, "port"), host: values.host, token: values.token ?? process.env.PADDOCK_MCP_TOKEN });
  }
  if (command === "transform" && target !== undefined) {
    const { transformCommand } = await import("./transform.js");
    return transformCommand(target, {
      errors: values.errors,
      batchSize: integerFlag(values.batch, "batch"),
      carriers: integerFlag(values.carriers, "carriers"),
      maxInFlight: integerFlag(values["in-flight"], "in-flight"),
      timeoutMsPerMessage: integerFlag(values["timeout-ms"], "timeout-ms"),
      memoryMb: integerFlag(values["memory-mb"], "memory-mb"),
      maxResultBytes: integerFlag(values["max-result-bytes"], "max-result-bytes"),
      maxLogBytes: integerFlag(values["max-log-bytes"], "max-log-bytes"),
      language: values.ts ? "ts" : "auto",
      ...sandboxGrants(values),
    });
  }
  if (command === "serve-apps") {
    onlyFlags(command, values, ["root", "port", "hostname", "data", "poll-ms", "hosts-only"]);
    if (values.root === undefined || target !== undefined) throw new UsageError("usage: paddock serve-apps --root <folder> [--port <n>] [--hostname <addr>] [--data <folder>] [--poll-ms <n>] [--hosts-only]");
    const { serveAppsCommand } = await import("./apps.js");
    return serveAppsCommand({
      root: values.root, port: portFlag(values.port), hostname: values.hostname, dataDir: values.data,
      pollMs: integerFlag(values["poll-ms"], "poll-ms"), pathRouting: values["hosts-only"] !== true,
    });
  }
  if (command === "serve") {
    onlyFlags(command, values, ["port", "hostname", "timeout-ms", "memory-mb", "max-log-bytes", "allow", "allow-private", "allow-import", "registry", "offline", "cache-dir"]);
    if (target === undefined || positionals.length > 2) throw new UsageError("usage: paddock serve <file> [--port <n>] [--hostname <addr>] [--timeout-ms <n>] [--memory-mb <n>] [--max-log-bytes <n>] [--allow…] [--allow-import…]");
    const { serveCommand } = await import("./apps.js");
    return serveCommand(target, {
      port: portFlag(values.port),
      hostname: values.hostname,
      requestTimeoutMs: integerFlag(values["timeout-ms"], "timeout-ms"),
      memoryMb: integerFlag(values["memory-mb"], "memory-mb"),
      maxLogBytes: integerFlag(values["max-log-bytes"], "max-log-bytes"),
      ...sandboxGrants(values),
    });
  }
  if ((command !== "eval" && command !== "run") || target === undefined) throw new UsageError(USAGE);
  const code = command === "eval" ? target : readFileSync(target, "utf8");
  const filename = command === "eval" ? (values.ts ? "eval.ts" : "eval.js") : basename(target);
  let globals: Record<string, unknown> | undefined;
  if (values.globals !== undefined) {
    try {
      globals = JSON.parse(values.globals) as Record<string, unknown>;
    } catch {
      throw new UsageError("--globals must be a JSON object");
    }
  }
  // One eval and out: warm carriers for later sandboxes would only take CPU from this one's start.
  configurePool({ size: 0 });
  const sandbox = await Sandbox.create({
    timeoutMs: integerFlag(values["timeout-ms"], "timeout-ms"),
    memoryMb: integerFlag(values["memory-mb"], "memory-mb"),
    maxResultBytes: integerFlag(values["max-result-bytes"], "max-result-bytes"),
    maxLogBytes: integerFlag(values["max-log-bytes"], "max-log-bytes"),
    globals,
    onLog: printLog,
    ...sandboxGrants(values),
  });
  try {
    const result = await sandbox.run(code, { filename, language: values.ts ? "ts" : "auto" });
    if (!result.ok) {
      const detail = result.error instanceof ScriptError ? result.error.stack : result.error.message;
      process.stderr.write(`${result.error.name}: ${detail}\n`);
      return 1;
    }
    if (result.value !== undefined) process.stdout.write(formatValue(result.value) + "\n");
    return 0;
  } finally {
    await sandbox.close();
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    if (error instanceof UsageError || (error instanceof TypeError && (error as { code?: string }).code?.startsWith("ERR_PARSE_ARGS"))) {
      console.error(error.message);
      process.exitCode = 2;
    } else if (error instanceof SandboxError || error instanceof TypeError) {
      console.error(`${error.name}: ${error.message}`);
      process.exitCode = 1;
    } else if ((error as NodeJS.ErrnoException).syscall === "listen") {
      // serve, serve-apps: a port taken or not ours to take (EADDRINUSE, EACCES).
      console.error(`paddock: cannot listen: ${(error as Error).message}`);
      process.exitCode = 1;
    } else {
      throw error;
    }
  },
);
