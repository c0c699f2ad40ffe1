/**
 * Turning what user code produced (a value, or something thrown) into protocol data. Everything
 * here assumes the value is hostile: getters may throw, proxies may trap, stacks may be huge.
 */
import { DefaultSerializer } from "node:v8";
import { types } from "node:util";
import type { CallError, Failure, FailureKind } from "../protocol/messages.js";
import type { RealmHelpers } from "./capability.js";
import { PROTOCOL_LIMITS, isOverUtf8Bytes } from "../protocol/limits.js";
import { findUncloneable } from "../protocol/clone-path.js";
import type { EvalScope } from "./scope.js";
import { LimitBreach, carrierFailure } from "./scope.js";

export interface EncodedValue {
  as: "inline" | "undefined" | "body";
  v?: string | number | boolean | null;
  body?: Uint8Array;
}

const INLINE_STRING_MAX = 64 * 1024;
const typedArrayName = Object.getOwnPropertyDescriptor(Object.getPrototypeOf(Uint8Array.prototype), Symbol.toStringTag)!.get!;

/**
 * Node's serializer format, which the host reads. A Float16Array has no counterpart on the host
 * (Node 20), so it is refused here, with a clear message, instead of arriving as a broken frame.
 */
/** Node's serializer hook for typed arrays (not in @types/node). */
interface HostObjectWriter {
  _writeHostObject(object: object): void;
}
const writeHostObject = (DefaultSerializer.prototype as unknown as HostObjectWriter)._writeHostObject;

class ResultSerializer extends DefaultSerializer implements HostObjectWriter {
  _writeHostObject(object: object): void {
    if (typedArrayName.call(object) === "Float16Array") throw new UncloneableResult("the result contains a Float16Array, which the host cannot represent");
    writeHostObject.call(this, object);
  }
}

export function serializeValue(value: unknown): Uint8Array {
  const serializer = new ResultSerializer();
  serializer.writeHeader();
  serializer.writeValue(value);
  return serializer.releaseBuffer();
}
let describeValue: (value: unknown) => string = String;

export function setDescriber(describe: (value: unknown) => string): void {
  describeValue = describe;
}

export function encodeValue(value: unknown, maxBytes: number, scope: EvalScope): EncodedValue {
  switch (typeof value) {
    case "undefined":
      return { as: "undefined" };
    case "boolean":
      return { as: "inline", v: value };
    case "number":
      if (Number.isFinite(value) && !Object.is(value, -0)) return { as: "inline", v: value };
      break;
    case "string":
      if (value.length <= INLINE_STRING_MAX) {
        if (isOverUtf8Bytes(value, maxBytes, (text) => new TextEncoder().encode(text).byteLength)) break;
        return { as: "inline", v: value };
      }
      break;
    case "object":
      if (value === null) return { as: "inline", v: null };
  }
  let body: Uint8Array;
  try {
    body = serializeValue(value);
  } catch (error) {
    if (error instanceof LimitBreach || error instanceof UncloneableResult) throw error;
    if (error instanceof RangeError) {
      throw scope.breach("output", "OutputLimitError", "the result is nested too deeply to be returned");
    }
    const where = findUncloneable(value, "result");
    throw new UncloneableResult(where ? `${where} and cannot be returned from the sandbox (results must be structured-cloneable)` : `the result cannot be returned: ${safeMessage(error)}`);
  }
  if (body.byteLength > maxBytes) {
    throw scope.breach("output", "OutputLimitError", `the result is ${body.byteLength} bytes; the limit is ${maxBytes} bytes`);
  }
  return { as: "body", body };
}

/** A result that structured clone refuses: the message says what and where. */
export class UncloneableResult extends Error {
  override name = "DataCloneError";
}

function safeMessage(error: unknown): string {
  try {
    return String((error as Error).message);
  } catch {
    return "unknown error";
  }
}

function clip(text: string, max: number): string {
  return text.length > max ? text.slice(0, max - 1) + "…" : text;
}

/** Reads a property without letting a throwing getter escape. */
function readSafely(target: object, key: string): unknown {
  try {
    return (target as Record<string, unknown>)[key];
  } catch {
    return undefined;
  }
}

/** A string for any value, even one whose toString throws or that is a Proxy. */
function textOf(value: unknown, fallback: string): string {
  if (typeof value === "string") return value;
  if (value === undefined || types.isProxy(value)) return fallback;
  try {
    return String(value);
  } catch {
    return fallback;
  }
}

/** Errors capabilities made for user code, with the failure kind they end an eval with. */
const capabilityErrorKinds = new WeakMap<object, FailureKind>();

/**
 * The error user code sees for a failed capability call: the realm's own error class (or a
 * DOMException, for aborts and timeouts, as the web platform has it). If it ends the eval, the
 * eval fails with the call's kind (a PolicyError, say), which code cannot forge.
 */
export function capabilityError(realm: RealmHelpers, failure: CallError): Error {
  const { name, message, kind } = failure;
  if (name !== "AbortError" && name !== "TimeoutError") return realmError(realm, failure);
  const error = new DOMException(message, name);
  if (kind) capabilityErrorKinds.set(error, kind);
  return error;
}

/** Like capabilityError, always an error of the realm's own classes (never a platform object). */
export function realmError(realm: RealmHelpers, { name, message, kind }: CallError): Error {
  const error = realm.makeError(name, message);
  if (kind) capabilityErrorKinds.set(error, kind);
  return error;
}

/**
 * Describes a thrown value as a failure. Native errors give their name, message and a stack cut
 * down to the user's frames; anything else is described with the console's formatter. Proxies are
 * never touched.
 */
export function describeThrown(thrown: unknown, scope: EvalScope | undefined, filename = ""): Failure {
  try {
    return carrierFailure(describe(thrown, scope, filename));
  } catch {
    return carrierFailure({ kind: "script", name: "Uncaught", message: "a thrown value that could not be described" });
  }
}

function describe(thrown: unknown, scope: EvalScope | undefined, filename: string): Failure {
  if (thrown instanceof LimitBreach) return { kind: thrown.kind, name: thrown.errorName, message: thrown.message };
  if (thrown instanceof UncloneableResult) return { kind: "script", name: thrown.name, message: thrown.message };
  if (scope?.recordedFailure) return scope.recordedFailure;
  const capabilityKind = typeof thrown === "object" && thrown !== null ? capabilityErrorKinds.get(thrown) : undefined;
  if (capabilityKind) {
    const name = textOf(readSafely(thrown as object, "name"), "Error");
    return { kind: capabilityKind, name: clip(name, PROTOCOL_LIMITS.maxNameText), message: clip(textOf(readSafely(thrown as object, "message"), ""), PROTOCOL_LIMITS.maxErrorText / 2) };
  }
  if (typeof thrown === "object" && thrown !== null && !types.isProxy(thrown) && types.isNativeError(thrown)) {
    const name = textOf(readSafely(thrown, "name"), "Error");
    const message = textOf(readSafely(thrown, "message"), "");
    const rawStack = readSafely(thrown, "stack");
    const failure: Failure = {
      kind: "script",
      name: clip(name, PROTOCOL_LIMITS.maxNameText),
      message: clip(message, PROTOCOL_LIMITS.maxErrorText / 2),
    };
    if (typeof rawStack === "string") Object.assign(failure, userStack(rawStack, failure.name, failure.message, filename));
    return failure;
  }
  let description: string;
  try {
    description = types.isProxy(thrown) ? "a Proxy" : describeValue(thrown);
  } catch {
    description = "a value that could not be described";
  }
  return { kind: "script", name: "Uncaught", message: clip(description, PROTOCOL_LIMITS.maxErrorText / 2) };
}

const PACKAGE_FRAME = /[( ]npm:[^\s()]+:\d+:\d+\)?$/;

/**
 * The part of a V8 stack that belongs to the user's code: the message, then only frames in the
 * eval's own file. Frames of the carrier and of Deno's internals are dropped, so no stack shows
 * how the sandbox is built. Syntax errors carry their position in a header line instead.
 */
function userStack(raw: string, name: string, message: string, filename: string): Pick<Failure, "stack" | "line" | "column"> {
  const head = `${name}: ${message}`;
  if (!filename) return { stack: clip(head, PROTOCOL_LIMITS.maxErrorText) };
  const lines = raw.split("\n");
  const compileHeader = lines[0]?.startsWith(filename + ":") ? /:(\d+)$/.exec(lines[0]) : null;
  if (compileHeader) {
    const line = Number(compileHeader[1]);
    const caret = lines.find((l) => /^\s*\^+\s*$/.test(l));
    const column = caret ? caret.indexOf("^") + 1 : 1;
    return { stack: `${head}\n    at ${filename}:${line}:${column}`, line, column };
  }
  const own = (l: string) => l.includes(filename + ":");
  // Frames in imported packages ("npm:name@1.2.3:12:5") stay too: the host maps them to the package's files.
  const frames = lines.filter((l) => l.startsWith("    at ") && (own(l) || PACKAGE_FRAME.test(l)) && !/:0:\d+\)?$/.test(l));
  const first = frames.find(own);
  const position = first ? /:(\d+):(\d+)\)?$/.exec(first) : null;
  const result: Pick<Failure, "stack" | "line" | "column"> = {
    stack: clip([head, ...frames.slice(0, 50)].join("\n"), PROTOCOL_LIMITS.maxErrorText),
  };
  if (position) {
    result.line = Number(position[1]);
    result.column = Number(position[2]);
  }
  return result;
}
