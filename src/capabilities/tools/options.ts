/**
 * Host tools as the host declares them: functions of the host that sandboxed code may call as
 * `tools.<name>(input)`, each with the schema its input must match.
 */
import type { Sandbox } from "../../host/sandbox.js";
import type { ToolCallRecord } from "./host.js";
import type { StandardSchemaV1, ToolSchema } from "./schema.js";

/** What a tool's `execute` gets besides its input. */
export interface ToolContext {
  /** Aborts when the call is over for the sandbox: its eval ended or timed out, the call timed out, the sandbox closed. */
  signal: AbortSignal;
  /** The tool's name as the sandbox calls it ("github.createIssue"). */
  tool: string;
  /** The sandbox whose code called. */
  sandbox: Sandbox;
}

export interface ToolDefinition<Input = unknown, Output = unknown> {
  /** Shown to the model in the declarations: say what the tool does and what it returns. */
  description?: string;
  /**
   * What the input must be: a JSON Schema, or a Standard Schema (zod, valibot…). Input that does
   * not match is refused before `execute` runs. Without one, any structured-cloneable value goes.
   */
  inputSchema?: ToolSchema;
  /** What the result is, for the declarations; a result that does not match fails the call. */
  outputSchema?: ToolSchema;
  /**
   * Runs on the host. Its result is structured-cloned into the sandbox; what it throws reaches the
   * sandbox as a ToolError with the message only.
   */
  execute(input: Input, context: ToolContext): Output | Promise<Output>;
}

/** Tools by name; an object of tools is a namespace (`tools.github.createIssue`). */
export interface ToolTree {
  readonly [name: string]: ToolDefinition<never> | ToolTree;
}

type InputOf<S> = S extends StandardSchemaV1<unknown, infer Output> ? Output : unknown;

/** Defines a tool with its input's type inferred from a Standard Schema (a zod schema, say). */
export function tool<S extends ToolSchema | undefined = undefined, Output = unknown>(definition: {
  description?: string;
  inputSchema?: S;
  outputSchema?: ToolSchema;
  execute(input: InputOf<S>, context: ToolContext): Output | Promise<Output>;
}): ToolDefinition<InputOf<S>, Output> {
  return definition as ToolDefinition<InputOf<S>, Output>;
}

export interface ToolLimits {
  /** Tool calls one eval may make; the next is refused with a ResourceLimitError. */
  maxToolCalls: number;
  /** Calls of one eval running at once; more wait their turn. */
  maxConcurrentToolCalls: number;
  /** A call that has not finished by then fails with a TimeoutError (its signal aborts). */
  toolTimeoutMs: number;
  /** Structured-clone size of one call's input. */
  maxToolInputBytes: number;
  /** Structured-clone size of one call's result. */
  maxToolResultBytes: number;
  /** Record each call's input in the audit (`input` in its record). Off: inputs may hold personal data. */
  auditArguments: boolean;
  onToolCall: ((record: ToolCallRecord) => void) | undefined;
}

const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;
/** Tools and namespaces a sandbox may have, and how deep namespaces nest. */
export const MAX_TOOLS = 10_000;
const MAX_DEPTH = 8;

export interface FlatTool {
  path: string[];
  definition: ToolDefinition<never>;
}

/** The tools of a tree, in order, with their paths; throws a TypeError naming the bad entry. */
export function flattenTools(tree: unknown, where: string): FlatTool[] {
  const found: FlatTool[] = [];
  const walk = (node: unknown, path: string[]) => {
    if (typeof node !== "object" || node === null || Array.isArray(node)) {
      throw new TypeError(`${where}: ${path.length > 0 ? `tools.${path.join(".")}` : "tools"} must be a tool ({ description, inputSchema, execute }) or an object of tools`);
    }
    if (path.length > 0 && typeof (node as { execute?: unknown }).execute === "function") {
      found.push({ path, definition: node as ToolDefinition<never> });
      return;
    }
    if (path.length >= MAX_DEPTH) throw new TypeError(`${where}: tools nest at most ${MAX_DEPTH} namespaces deep (at tools.${path.join(".")})`);
    for (const name of Object.keys(node)) {
      if (!IDENTIFIER.test(name)) throw new TypeError(`${where}: the tool name ${JSON.stringify(name)} (in tools${path.map((p) => "." + p).join("")}) is not a JavaScript identifier`);
      walk((node as Record<string, unknown>)[name], [...path, name]);
      if (found.length > MAX_TOOLS) throw new TypeError(`${where}: more than ${MAX_TOOLS} tools`);
    }
  };
  walk(tree, []);
  return found;
}
