/**
 * "Code mode": one tool, `execute_code`, that runs a model's script in a sandbox whose code can
 * call every tool it was given. This module is what the code tool (createCodeTool) and the MCP
 * server share: the tool's schemas and description, running one call, and rendering its outcome
 * as data (for programs) and as text (for the model).
 */
import type { Sandbox } from "../host/sandbox.js";
import type { SandboxOptions } from "../host/options.js";
import { ScriptError } from "../host/errors.js";
import type { FetchRecord } from "../capabilities/fetch/host.js";
import type { ToolCallRecord } from "../capabilities/tools/host.js";
import type { JsonSchema } from "../capabilities/tools/schema.js";

export const EXECUTE_CODE = "execute_code";

export interface ExecuteCodeInput {
  code: string;
  language?: "js" | "ts";
}

export const EXECUTE_CODE_INPUT_SCHEMA: JsonSchema = {
  type: "object",
  properties: {
    code: { type: "string", description: "JavaScript or TypeScript to run. Top-level await works; the value of the last expression statement is the result." },
    language: { type: "string", enum: ["js", "ts"], description: "Default: TypeScript when the code does not parse as JavaScript." },
  },
  required: ["code"],
  additionalProperties: false,
};

/** What one run of the code gave. Every field is JSON. */
export interface ExecuteCodeResult {
  ok: boolean;
  /** The code's value as JSON (Maps as entry lists, BigInts and non-finite numbers as strings…); absent when undefined. */
  value?: unknown;
  error?: { name: string; message: string; line?: number; column?: number; stack?: string };
  logs: Array<{ level: string; message: string }>;
  fetches: Array<Pick<FetchRecord, "method" | "url" | "status" | "verdict" | "rule" | "ms"> & { error?: string }>;
  toolCalls: Array<Pick<ToolCallRecord, "tool" | "ok" | "ms"> & { error?: string }>;
  ms: number;
}

export const EXECUTE_CODE_OUTPUT_SCHEMA: JsonSchema = {
  type: "object",
  properties: {
    ok: { type: "boolean" },
    value: {},
    error: {
      type: "object",
      properties: { name: { type: "string" }, message: { type: "string" }, line: { type: "number" }, column: { type: "number" }, stack: { type: "string" } },
      required: ["name", "message"],
    },
    logs: { type: "array", items: { type: "object", properties: { level: { type: "string" }, message: { type: "string" } }, required: ["level", "message"] } },
    fetches: { type: "array", items: { type: "object" } },
    toolCalls: { type: "array", items: { type: "object" } },
    ms: { type: "number" },
  },
  required: ["ok", "logs", "fetches", "toolCalls", "ms"],
};

/** The model reads this much of a value, of the logs and of an error at most; the structured result has all of it. */
const TEXT_BUDGET_CHARS = 20_000;

/**
 * The tool's description: what the environment is, what it may reach, and the TypeScript
 * declarations of every tool the code can call.
 */
export function describeExecuteCode(declarations: string, options: Pick<SandboxOptions, "net" | "modules" | "timeoutMs" | "persistent">): string {
  const lines = [
    "Run JavaScript or TypeScript in an isolated sandbox (standard Web APIs: fetch, URL, TextEncoder, crypto.subtle, streams…; no file system, no process, no Node APIs).",
    `Write one script that does the whole task${declarations ? ": call tools, combine and filter their results in code," : ""} and return only what is needed. The value of the last expression statement (or of top-level await) is returned as JSON; console.log output is returned too.`,
    options.persistent === false ? "Each call starts from a fresh sandbox." : "Variables and functions you declare persist between calls of this conversation.",
    `Each run may take ${options.timeoutMs ?? 5_000} ms at most.`,
    options.net?.allow && options.net.allow.length > 0 ? `fetch may reach only: ${options.net.allow.join(", ")}.` : "fetch is not available (no network).",
    options.modules?.allow && options.modules.allow.length > 0 ? `import may load only: ${options.modules.allow.join(", ")} (e.g. import { chunk } from "npm:lodash-es").` : "import is not available.",
  ];
  if (declarations) {
    lines.push(
      "Tools are async functions on the global `tools`; they throw a ToolError when the tool fails, and a TypeError when the input does not match its schema. Their declarations:",
      "```ts",
      declarations.trimEnd(),
      "```",
    );
  }
  return lines.join("\n");
}

/** Checks a call's input; a message that says what is wrong, if it is. */
export function checkExecuteCodeInput(input: unknown): ExecuteCodeInput | string {
  if (typeof input !== "object" || input === null) return "the input must be an object: { code: string, language?: \"js\" | \"ts\" }";
  const { code, language } = input as Record<string, unknown>;
  if (typeof code !== "string") return "`code` must be a string of JavaScript or TypeScript";
  if (language !== undefined && language !== "js" && language !== "ts") return "`language` must be \"js\" or \"ts\"";
  return language === undefined ? { code } : { code, language };
}

/** Runs one call's code in `sandbox`. */
export async function executeCode(sandbox: Sandbox, input: ExecuteCodeInput): Promise<ExecuteCodeResult> {
  const started = performance.now();
  const run = await sandbox.run(input.code, { language: input.language ?? "auto", filename: input.language === "ts" ? "code.ts" : "code.js" });
  const result: ExecuteCodeResult = {
    ok: run.ok,
    logs: run.logs.map(({ level, message }) => ({ level, message })),
    fetches: run.fetches.map(({ method, url, status, verdict, rule, ms, error }) => ({ method, url, status, verdict, rule, ms, ...(error !== undefined ? { error } : {}) })),
    toolCalls: run.toolCalls.map(({ tool, ok, ms, error }) => ({ tool, ok, ms, ...(error !== undefined ? { error } : {}) })),
    ms: Math.round(performance.now() - started),
  };
  if (run.ok) {
    const value = toJson(run.value);
    if (value !== undefined) result.value = value;
  } else {
    const error = run.error;
    result.error = { name: error instanceof ScriptError ? error.errorName : error.name, message: error.message };
    if (error instanceof ScriptError) {
      if (error.line !== undefined) result.error.line = error.line;
      if (error.column !== undefined) result.error.column = error.column;
      if (error.stack) result.error.stack = error.stack;
    }
  }
  return result;
}

/** The result as the model reads it: the value or the error first, then the logs and what the code reached. */
export function renderExecuteCode(result: ExecuteCodeResult): string {
  const parts: string[] = [];
  if (result.ok) parts.push(result.value === undefined ? "Finished (no value)." : `Value:\n${clip(JSON.stringify(result.value, null, 2))}`);
  else parts.push(`Failed: ${clip(result.error!.stack ?? `${result.error!.name}: ${result.error!.message}`)}`);
  if (result.logs.length > 0) parts.push(`Console:\n${clip(result.logs.map((entry) => (entry.level === "log" ? entry.message : `[${entry.level}] ${entry.message}`)).join("\n"))}`);
  if (result.toolCalls.length > 0) {
    const failed = result.toolCalls.filter((call) => !call.ok);
    parts.push(`Tool calls: ${result.toolCalls.length}${failed.length > 0 ? ` (${failed.length} failed: ${clip(failed.map((call) => `${call.tool}: ${call.error}`).join("; "), 2_000)})` : ""}`);
  }
  if (result.fetches.length > 0) parts.push(`Requests: ${result.fetches.map((fetch) => `${fetch.method} ${fetch.url} → ${fetch.status ?? fetch.rule}`).slice(0, 20).join("; ")}`);
  return parts.join("\n\n");
}

function clip(text: string, budget = TEXT_BUDGET_CHARS): string {
  return text.length > budget ? `${text.slice(0, budget)}… (${text.length - budget} more characters in the structured result)` : text;
}

/** Values (objects, elements, primitives) of a result shown as JSON at most; the rest is cut. */
const JSON_VALUES = 100_000;
const CUT = "[…]";

/**
 * A JSON form of any value a sandbox returns: what JSON cannot say is said in JSON's words (a Map
 * as its entries, a Date as its ISO text, a BigInt as its digits and "n", a cycle as "[Circular]").
 * Every visit spends one unit of a budget, shared references included (a value that refers to the
 * same array twice, forty levels deep, is small in memory and astronomically large as JSON): past
 * it, what is left is shown as "[…]".
 */
export function toJson(value: unknown, budget: { left: number } = { left: JSON_VALUES }): unknown {
  return convert(value, new Set(), budget);
}

function convert(value: unknown, ancestors: Set<object>, budget: { left: number }): unknown {
  if (budget.left-- <= 0) return CUT;
  switch (typeof value) {
    case "undefined":
    case "function":
    case "symbol":
      return undefined;
    case "bigint":
      return `${value}n`;
    case "number":
      return Number.isFinite(value) ? value : String(value);
    case "string":
    case "boolean":
      return value;
  }
  if (value === null) return null;
  const object = value as object;
  if (ancestors.has(object)) return "[Circular]";
  if (object instanceof Date) return Number.isNaN(object.getTime()) ? "Invalid Date" : object.toISOString();
  if (object instanceof RegExp || object instanceof Error) return String(object);
  ancestors.add(object);
  try {
    const items = (list: ArrayLike<unknown>) => {
      const out: unknown[] = [];
      for (let index = 0; index < list.length; index++) {
        if (budget.left <= 0) {
          out.push(CUT);
          break;
        }
        out.push(convert(list[index], ancestors, budget) ?? null);
      }
      return out;
    };
    if (ArrayBuffer.isView(object)) return object instanceof DataView ? items(new Uint8Array(object.buffer, object.byteOffset, object.byteLength)) : items(object as unknown as ArrayLike<unknown>);
    if (object instanceof ArrayBuffer) return items(new Uint8Array(object));
    if (object instanceof Map) return items([...object.entries()].slice(0, Math.max(0, budget.left)).map(([key, item]) => [key, item]));
    if (object instanceof Set) return items([...object].slice(0, Math.max(0, budget.left)));
    if (Array.isArray(object)) return items(object);
    const copy: Record<string, unknown> = {};
    for (const key of Object.keys(object)) {
      if (budget.left <= 0) {
        copy["…"] = CUT;
        break;
      }
      const json = convert((object as Record<string, unknown>)[key], ancestors, budget);
      if (json !== undefined) Object.defineProperty(copy, key, { value: json, enumerable: true, writable: true, configurable: true });
    }
    return copy;
  } finally {
    ancestors.delete(object);
  }
}
