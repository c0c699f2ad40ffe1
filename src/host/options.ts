/** Sandbox and eval options: defaults, bounds, and clear messages for bad input. */
import type { z } from "zod";
import type { LogEntry } from "../capabilities/console/messages.js";
import type { FetchRecord } from "../capabilities/fetch/host.js";
import { netOptionsSchema } from "../capabilities/fetch/options.js";
import { modulesOptionsSchema } from "../capabilities/modules/options.js";
import type { ImportRecord } from "../capabilities/modules/host.js";
import type { ToolCallRecord } from "../capabilities/tools/host.js";
import { filesOptionsSchema } from "../capabilities/files/options.js";
import type { FileRecord } from "../capabilities/files/host.js";
import type { ToolTree } from "../capabilities/tools/options.js";
import { McpHub, type McpServerConfig } from "../capabilities/tools/mcp.js";
import { describeIssues, lazySchema } from "../shared/schema.js";
import { once } from "../shared/lazy.js";

const MiB = 1024 * 1024;

/** Bounds of `memoryMb`, also read before the schema is (see Sandbox.create). */
export const MEMORY_MB = { min: 16, max: 65_536, default: 128 } as const;

const isFunction = (value: unknown) => typeof value === "function";
const logListener = lazySchema((z) => z.custom<(entry: LogEntry) => void>(isFunction, "expected a function"));
const fetchListener = lazySchema((z) => z.custom<(record: FetchRecord) => void>(isFunction, "expected a function"));
const importListener = lazySchema((z) => z.custom<(record: ImportRecord) => void>(isFunction, "expected a function"));
const toolCallListener = lazySchema((z) => z.custom<(record: ToolCallRecord) => void>(isFunction, "expected a function"));
const fileListener = lazySchema((z) => z.custom<(record: FileRecord) => void>(isFunction, "expected a function"));
const isObject = (value: unknown) => typeof value === "object" && value !== null && !Array.isArray(value);

export const sandboxOptionsSchema = lazySchema((z) =>
  z.strictObject({
    /** Wall-clock limit for one eval, in milliseconds. */
    timeoutMs: z.number().int().min(1).max(3_600_000).default(5_000),
    /** Memory limit: the V8 heap, and (via the host's watchdog) everything else the carrier holds. */
    memoryMb: z.number().int().min(MEMORY_MB.min).max(MEMORY_MB.max).default(MEMORY_MB.default),
    /** Keep one realm across evals, like a REPL (only with one carrier). */
    persistent: z.boolean().default(false),
    /** Structured-cloned values visible as globals in every eval. */
    globals: z.record(z.string(), z.unknown()).optional(),
    /** Carrier processes serving this sandbox; more than one lets concurrent evals use more cores. */
    carriers: z.number().int().min(1).max(16).default(1),
    maxResultBytes: z.number().int().min(1024).max(1024 * MiB).default(16 * MiB),
    maxLogBytes: z.number().int().min(0).max(256 * MiB).default(1 * MiB),
    maxTimers: z.number().int().min(0).max(1_000_000).default(1_000),
    maxSourceBytes: z.number().int().min(1).max(256 * MiB).default(4 * MiB),
    /** Evals of this sandbox running or waiting at once; more are refused. */
    maxConcurrentEvals: z.number().int().min(1).max(100_000).default(1_000),
    /** Called with each console entry as it arrives (entries are also returned by run()). */
    onLog: logListener().optional(),
    /** Network access for fetch. Without it, every fetch is refused. */
    net: netOptionsSchema().optional(),
    /** Plain configuration values, visible in the sandbox as `env` (with net.secrets' placeholders). */
    env: z.record(z.string(), z.string().max(64 * 1024)).optional(),
    /** Called with each fetch record (one per request, redirect hops included) as it completes. */
    onFetch: fetchListener().optional(),
    /** npm packages the sandbox may import. Without it, every import is refused. */
    modules: modulesOptionsSchema().optional(),
    /** Called with each import record (one per specifier of an eval) once it is resolved. */
    onImport: importListener().optional(),
    /** Host functions the sandbox may call as `tools.<name>(input)` (checked in full by Sandbox.create). */
    tools: z.custom<ToolTree>(isObject, "expected an object of tools").optional(),
    /**
     * MCP servers whose tools the sandbox may call as `tools.<server>.<tool>(input)`: their
     * configurations (connected on first use, closed with the sandbox), or an McpHub shared with
     * other sandboxes (the host closes it).
     */
    mcp: z.union([z.instanceof(McpHub), z.record(z.string(), z.custom<McpServerConfig>(isObject, "expected { command, args?, env? } or { url, headers? }"))]).optional(),
    /** Tool calls one eval may make. */
    maxToolCalls: z.number().int().min(0).max(1_000_000).default(1_000),
    /** Tool calls of one eval running at once; more wait their turn. */
    maxConcurrentToolCalls: z.number().int().min(1).max(10_000).default(16),
    /** One tool call's time limit (its signal aborts, the call fails with a TimeoutError). */
    toolTimeoutMs: z.number().int().min(1).max(3_600_000).default(60_000),
    maxToolInputBytes: z.number().int().min(1024).max(256 * MiB).default(4 * MiB),
    maxToolResultBytes: z.number().int().min(1024).max(256 * MiB).default(16 * MiB),
    /** Record each tool call's input in its record (inputs may hold personal data). */
    auditArguments: z.boolean().default(false),
    /** Called with each tool call's record as it completes. */
    onToolCall: toolCallListener().optional(),
    /** Type-check TypeScript (and "auto") code against the tools' declarations before running it. */
    typecheck: z.boolean().default(false),
    /** Where the sandbox's files live (default: in memory) and how much they may hold. */
    files: filesOptionsSchema().optional(),
    /** Called with each file operation's record as it completes. */
    onFile: fileListener().optional(),
  }),
);

export type SandboxOptions = z.input<ReturnType<typeof sandboxOptionsSchema>>;
export type ResolvedSandboxOptions = z.output<ReturnType<typeof sandboxOptionsSchema>>;

export const evalOptionsSchema = lazySchema((z) =>
  z.strictObject({
    /** Globals for this eval only, merged over the sandbox's. */
    globals: z.record(z.string(), z.unknown()).optional(),
    timeoutMs: z.number().int().min(1).max(3_600_000).optional(),
    /** Shown in stacks; a .ts/.mts/.cts name makes the code TypeScript. */
    filename: z.string().min(1).max(256).regex(/^[^\n\r/\\]+$/, "must be a plain file name").optional(),
    /** "auto" (default): TypeScript types are stripped when the code does not parse as JavaScript. */
    language: z.enum(["auto", "js", "ts"]).optional(),
    onLog: logListener().optional(),
    onFetch: fetchListener().optional(),
    onToolCall: toolCallListener().optional(),
    onFile: fileListener().optional(),
    /** Overrides the sandbox's `typecheck` for this eval. */
    typecheck: z.boolean().optional(),
    /** Report where the eval's time went, phase by phase, in `stats.phases`. */
    trace: z.boolean().optional(),
  }),
);

export type EvalOptions = z.input<ReturnType<typeof evalOptionsSchema>>;
type ResolvedEvalOptions = z.output<ReturnType<typeof evalOptionsSchema>>;

export function parseOptions<T extends z.ZodType>(schema: T, input: unknown, where: string): z.output<T> {
  const result = schema.safeParse(input ?? {});
  if (result.success) return result.data;
  throw new TypeError(`${where}: invalid options\n${describeIssues(result.error)}`);
}

const noEvalOptions = once(() => evalOptionsSchema().parse({}));

/** Eval options are parsed on every eval; the common case, none at all, skips the schema. */
export function parseEvalOptions(input: EvalOptions | undefined): ResolvedEvalOptions {
  return input === undefined ? noEvalOptions() : parseOptions(evalOptionsSchema(), input, "Sandbox.run");
}
