/**
 * The messages every eval sends (`ready` once, then `done` and `logs`), tool calls (an agent's
 * script may make hundreds) and batch reports (a transform's every call), checked by hand. The zod
 * schema in messages.ts stays the single definition of the protocol: this check only says "valid"
 * for messages the schema accepts too (test/unit/hot-messages.test.ts compares the two on
 * generated and mutated messages), and anything it does not vouch for goes to the schema, which
 * also writes the error. Why a second check: a schema walk touches a lot of code, and at an
 * agent's pace (an eval now and then, caches cold) it cost ~40 µs of every eval on the host.
 */
import { logLevels, type LogEntry } from "../capabilities/console/messages.js";
import { PROTOCOL_LIMITS } from "./limits.js";
import { MAX_TOOL_NAME_CHARS } from "../capabilities/tools/messages.js";
import { carrierPhaseNames, failureKinds, type CarrierMessage } from "./messages.js";
import { BATCH_DURATION_BUCKETS, MAX_BATCH_ITEMS } from "./batch.js";
import { RESPONSE_HEAD_LIMITS } from "./serve.js";

type Fields = Record<string, unknown>;

/** `header` itself, typed, if it certainly is a valid ready, done or logs message; else undefined. */
export function acceptHotMessage(header: unknown): CarrierMessage | undefined {
  if (!isRecord(header)) return undefined;
  switch (header.t) {
    case "ready":
      return hasOnlyKeys(header, READY_KEYS) ? (header as CarrierMessage) : undefined;
    case "logs":
      return hasOnlyKeys(header, LOGS_KEYS) && isEvalId(header.id) && isLogBatch(header.logs) ? (header as CarrierMessage) : undefined;
    case "done":
      return isDone(header) ? (header as CarrierMessage) : undefined;
    case "call":
      return isToolCall(header) ? (header as CarrierMessage) : undefined;
    case "progress":
      return isPlainProgress(header) ? (header as CarrierMessage) : undefined;
    case "response":
      return isResponseHead(header) ? (header as CarrierMessage) : undefined;
    case "body":
      return isExchangeBody(header) ? (header as CarrierMessage) : undefined;
    default:
      return undefined;
  }
}

const READY_KEYS = new Set(["t"]);
const LOGS_KEYS = new Set(["t", "id", "logs"]);
const DONE_OK_KEYS = new Set(["t", "id", "ok", "as", "v", "logs", "stats", "phases"]);
const DONE_FAILED_KEYS = new Set(["t", "id", "ok", "error", "logs", "stats", "phases"]);
const STATS_KEYS = new Set(["wallMs", "cpuMs"]);
const PHASE_KEYS = new Set<string>(carrierPhaseNames);
const LOG_KEYS = new Set(["level", "message", "time"]);
const FAILURE_KEYS = new Set(["kind", "name", "message", "stack", "line", "column"]);
const LOG_LEVELS = new Set<string>(logLevels);
const FAILURE_KINDS = new Set<string>(failureKinds);
const RESULT_FORMS = new Set(["inline", "undefined", "body"]);
const CALL_KEYS = new Set(["t", "id", "call", "cap", "args"]);
const TOOL_ARGS_KEYS = new Set(["tool"]);

const PROGRESS_KEYS = new Set(["t", "id", "from", "n", "empty", "us", "end"]);
const RESPONSE_KEYS = new Set(["t", "id", "req", "ok", "status", "statusText", "headers", "body", "whole"]);
const BODY_KEYS = new Set(["t", "id", "req", "op", "bytes"]);
const BODY_OPS = new Set(["data", "end", "error", "credit"]);

/** An app's response head (a failed exchange, rarer, is left to the schema). */
function isResponseHead(header: Fields): boolean {
  if (!hasOnlyKeys(header, RESPONSE_KEYS) || header.ok !== true || !isEvalId(header.id) || !isEvalId(header.req)) return false;
  const status = header.status;
  if (!Number.isInteger(status) || (status as number) < 200 || (status as number) > 599) return false;
  if (!isText(header.statusText, RESPONSE_HEAD_LIMITS.statusTextChars) || typeof header.body !== "boolean") return false;
  if ("whole" in header && header.whole !== true) return false;
  const headers = header.headers;
  if (!Array.isArray(headers) || headers.length > RESPONSE_HEAD_LIMITS.headers) return false;
  for (const pair of headers as unknown[]) {
    if (!Array.isArray(pair) || pair.length !== 2) return false;
    const [name, value] = pair as unknown[];
    if (!isText(name, RESPONSE_HEAD_LIMITS.headerNameChars) || (name as string).length === 0 || !isText(value, RESPONSE_HEAD_LIMITS.headerValueChars)) return false;
  }
  return true;
}

function isExchangeBody(header: Fields): boolean {
  if (!hasOnlyKeys(header, BODY_KEYS) || !isEvalId(header.id) || !isEvalId(header.req) || !BODY_OPS.has(header.op as string)) return false;
  return !("bytes" in header) || isEvalId(header.bytes);
}
const END_KEYS = new Set(["cpuMs", "durations"]);

/** A batch's report without errors or logs (those, and "missing", are left to the schema). */
function isPlainProgress(header: Fields): boolean {
  if (!hasOnlyKeys(header, PROGRESS_KEYS) || !isEvalId(header.id) || !isItemIndex(header.from) || !isItemIndex(header.n)) return false;
  if ("empty" in header && !isArrayOf(header.empty, isItemIndex)) return false;
  if ("us" in header && !isArrayOf(header.us, isDuration)) return false;
  if (!("end" in header)) return true;
  const end = header.end;
  if (!isRecord(end) || !hasOnlyKeys(end, END_KEYS) || !isDuration(end.cpuMs) || !Array.isArray(end.durations) || end.durations.length > BATCH_DURATION_BUCKETS) return false;
  return isArrayOf(end.durations, (pair) => Array.isArray(pair) && pair.length === 2 && isItemIndex(pair[0]) && isItemIndex(pair[1]));
}

function isItemIndex(value: unknown): boolean {
  return Number.isSafeInteger(value) && (value as number) >= 0 && (value as number) <= MAX_BATCH_ITEMS;
}

function isArrayOf(value: unknown, check: (item: unknown) => boolean): boolean {
  if (!Array.isArray(value)) return false;
  for (const item of value as unknown[]) if (!check(item)) return false;
  return true;
}

/** A tool call; fetch calls (rarer, and larger) are left to the schema. */
function isToolCall(header: Fields): boolean {
  if (!hasOnlyKeys(header, CALL_KEYS) || header.cap !== "tool" || !isEvalId(header.id) || !isEvalId(header.call)) return false;
  const args = header.args;
  return isRecord(args) && hasOnlyKeys(args, TOOL_ARGS_KEYS) && typeof args.tool === "string" && args.tool.length >= 1 && args.tool.length <= MAX_TOOL_NAME_CHARS;
}

function isDone(header: Fields): boolean {
  if (!isEvalId(header.id) || !isLogBatch(header.logs) || !isStats(header.stats)) return false;
  if ("phases" in header && !isPhases(header.phases)) return false;
  if (header.ok === true) {
    if (!hasOnlyKeys(header, DONE_OK_KEYS) || !RESULT_FORMS.has(header.as as string)) return false;
    return !("v" in header) || isInlineValue(header.v);
  }
  return header.ok === false && hasOnlyKeys(header, DONE_FAILED_KEYS) && isFailure(header.error);
}

function isLogBatch(value: unknown): boolean {
  if (!Array.isArray(value)) return false;
  for (const entry of value as unknown[]) if (!isLogEntry(entry)) return false;
  return true;
}

function isLogEntry(entry: unknown): entry is LogEntry {
  return isRecord(entry) && hasOnlyKeys(entry, LOG_KEYS) && LOG_LEVELS.has(entry.level as string) && typeof entry.message === "string" && isDuration(entry.time);
}

function isStats(value: unknown): boolean {
  return isRecord(value) && hasOnlyKeys(value, STATS_KEYS) && isDuration(value.wallMs) && isDuration(value.cpuMs);
}

function isPhases(value: unknown): boolean {
  if (!isRecord(value) || !hasOnlyKeys(value, PHASE_KEYS)) return false;
  for (const name of carrierPhaseNames) if (!isDuration(value[name])) return false;
  return true;
}

function isFailure(value: unknown): boolean {
  if (!isRecord(value) || !hasOnlyKeys(value, FAILURE_KEYS) || !FAILURE_KINDS.has(value.kind as string)) return false;
  if (!isText(value.name, PROTOCOL_LIMITS.maxNameText) || !isText(value.message, PROTOCOL_LIMITS.maxErrorText)) return false;
  if ("stack" in value && !isText(value.stack, PROTOCOL_LIMITS.maxErrorText)) return false;
  if ("line" in value && !isCount(value.line)) return false;
  return !("column" in value) || isCount(value.column);
}

function isInlineValue(value: unknown): boolean {
  return value === null || typeof value === "string" || typeof value === "boolean" || (typeof value === "number" && Number.isFinite(value));
}

/** A plain object as JSON.parse makes them (arrays are not records). */
function isRecord(value: unknown): value is Fields {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** No key outside `allowed` (inherited ones included); callers check each required key themselves. */
function hasOnlyKeys(value: Fields, allowed: ReadonlySet<string>): boolean {
  for (const key in value) if (!allowed.has(key)) return false;
  return true;
}

function isEvalId(value: unknown): boolean {
  return Number.isSafeInteger(value) && (value as number) > 0;
}

function isCount(value: unknown): boolean {
  return Number.isSafeInteger(value) && (value as number) >= 0;
}

function isDuration(value: unknown): boolean {
  return typeof value === "number" && Number.isFinite(value) && value >= 0;
}

function isText(value: unknown, maxLength: number): boolean {
  return typeof value === "string" && value.length <= maxLength;
}
