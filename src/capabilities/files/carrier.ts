/**
 * The carrier's part of node:fs: one function, `paddock:files`, that the realm's fs module (see
 * realm.ts, sent by the host as module units) calls for every operation. It trusts nothing it is
 * handed: it checks the operation, normalizes the paths itself (so a realm's code cannot make the
 * carrier send the host what the host would take for a lie), copies the bytes with the carrier's
 * own getters, asks the host, streams large files both ways, and throws Node's errors — the
 * realm's own Error with `code`, `errno`, `syscall` and `path` as the code gave it.
 */
import { types } from "node:util";
import type { Realm } from "../../carrier/realm.js";
import { liveScope } from "../../carrier/capability.js";
import type { CallHandle, CallResult } from "../../carrier/scope.js";
import { capabilityError, realmError } from "../../carrier/values.js";
import type { CallError } from "../../protocol/messages.js";
import { FILE_ERRORS, FILE_ERROR_NAME, fileErrorMessage, type FileErrorCode } from "./codes.js";
import { FILE_CHUNK_BYTES } from "./flow.js";
import { normalizePath } from "./path.js";
import type { FileOp, FileReplies } from "./messages.js";
import { FILE_CALL_FLAGS, type FileCall } from "./call.js";

/** The operation and the paths as the code gave them: what Node's error says. */
interface Where {
  syscall: string;
  path: string;
  dest?: string;
}

const { recursive: RECURSIVE, force: FORCE, exclusive: EXCLUSIVE } = FILE_CALL_FLAGS;
const WRITE_MODES = new Set(["replace", "append", "exclusive"]);
const REMOVALS = new Set(["file", "dir", "any"]);

/** The realm's `paddock:files` (a realm function, through the membrane). */
export function fileCallFor(realm: Realm): unknown {
  const fail = (code: FileErrorCode, where: Where, kind?: CallError["kind"]): Error => {
    const error = realmError(realm.helpers, { name: "Error", message: fileErrorMessage(code, where.syscall, where.path, where.dest), ...(kind ? { kind } : {}) });
    const fields: Record<string, unknown> = { errno: FILE_ERRORS[code].errno, code, syscall: where.syscall, path: where.path };
    if (where.dest !== undefined) fields.dest = where.dest;
    for (const [key, value] of Object.entries(fields)) Object.defineProperty(error, key, { value, writable: true, enumerable: true, configurable: true });
    return error;
  };
  const typeError = (message: string, code: string): Error => {
    const error = realmError(realm.helpers, { name: "TypeError", message });
    Object.defineProperty(error, "code", { value: code, writable: true, enumerable: true, configurable: true });
    return error;
  };
  const normal = (given: unknown, where: Where): string => {
    const path = typeof given === "string" ? normalizePath(given) : "ERR_INVALID_ARG_VALUE";
    if (path === "ERR_INVALID_ARG_VALUE") throw typeError(`The argument 'path' must be a string, Uint8Array, or URL without null bytes. Received ${JSON.stringify(String(given).slice(0, 64))}`, path);
    if (path === "ENAMETOOLONG") throw fail(path, where);
    return path;
  };
  /** The call's reply (a read's bytes may stream on after it: the read closes its call itself). */
  const replyOf = async (call: CallHandle, where: Where): Promise<CallResult> => {
    try {
      return await call.reply;
    } catch (error) {
      throw failure(error as CallError, where);
    }
  };
  /** The reply of a call that is over with it. */
  const settle = async (call: CallHandle, where: Where): Promise<CallResult> => {
    const result = await replyOf(call, where);
    call.close();
    return result;
  };
  const failure = (error: CallError, where: Where): Error => {
    if (error.name !== FILE_ERROR_NAME) return capabilityError(realm.helpers, error);
    const [code] = error.message.split(" ");
    return fail(Object.hasOwn(FILE_ERRORS, code!) ? (code as FileErrorCode) : "EIO", where, error.kind);
  };

  const fileCall = async (op: unknown, syscall: unknown, given: unknown, second: unknown, flags: unknown, data: unknown): Promise<unknown> => {
    const where: Where = { syscall: typeof syscall === "string" ? syscall.slice(0, 32) : "open", path: String(given).slice(0, 4096) };
    if (typeof second === "string" && (op === "rename" || op === "copy")) where.dest = second.slice(0, 4096);
    const path = normal(given, where);
    const bits = typeof flags === "number" ? flags : 0;
    const scope = liveScope(realm.slot);
    if (!scope) throw realmError(realm.helpers, { name: "Error", message: `${where.syscall} '${where.path}': the eval that made this call has ended` });
    const ask = async (request: FileOp, body?: Uint8Array) => (await settle(scope.call("files", request, body), where)).value;
    switch (op) {
      case "stat":
        return { ...(await ask({ op, path })) as FileReplies["stat"], normal: path };
      case "readdir":
        return ask({ op, path });
      case "mkdir":
        return ask({ op, path, recursive: (bits & RECURSIVE) !== 0 });
      case "remove":
        if (typeof second !== "string" || !REMOVALS.has(second)) break;
        return ask({ op, path, what: second as "file" | "dir" | "any", recursive: (bits & RECURSIVE) !== 0, force: (bits & FORCE) !== 0 });
      case "rename":
        return ask({ op, path, to: normal(second, where) });
      case "copy":
        return ask({ op, path, to: normal(second, where), exclusive: (bits & EXCLUSIVE) !== 0 });
      case "read": {
        const call = scope.call("files", { op, path } satisfies FileOp);
        const { value, body } = await replyOf(call, where);
        const { size } = value as FileReplies["read"];
        if (size > FILE_CHUNK_BYTES) return streamedRest(call, size, (error) => failure(error, where));
        call.close();
        return body ?? new Uint8Array(0);
      }
      case "write": {
        if (typeof second !== "string" || !WRITE_MODES.has(second) || !types.isArrayBufferView(data)) break;
        const bytes = copyOf(data);
        const mode = second as "replace" | "append" | "exclusive";
        const size = bytes.byteLength;
        if (size <= FILE_CHUNK_BYTES) return ask({ op, path, mode, size, body: "inline" }, bytes);
        const call = scope.call("files", { op, path, mode, size, body: "stream" } satisfies FileOp);
        let offset = 0;
        while (offset < size) {
          const granted = await call.takeCredit(Math.min(FILE_CHUNK_BYTES, size - offset));
          if (granted === 0) break;
          call.send("data", bytes.subarray(offset, offset + granted));
          offset += granted;
        }
        if (offset === size) call.send("end");
        return (await settle(call, where)).value;
      }
    }
    throw typeError(`paddock:files: invalid operation ${String(op).slice(0, 32)}`, "ERR_INVALID_ARG_VALUE");
  };
  return realm.helpers.membrane.hostFunction(fileCall satisfies FileCall as (...args: unknown[]) => unknown);
}

/** A larger file's bytes: the stream that follows the read's reply (its end closes the call). */
async function streamedRest(call: CallHandle, size: number, failure: (error: CallError) => Error): Promise<Uint8Array> {
  const bytes = new Uint8Array(size);
  let filled = 0;
  await new Promise<void>((resolve, reject) => {
    call.listen((event) => {
      if (event.op === "data") {
        bytes.set(event.data.subarray(0, size - filled), filled);
        filled += event.data.byteLength;
      } else if (event.op === "end") resolve();
      else reject(failure(event.error));
    });
  });
  return bytes;
}

const viewParts = (prototype: object) => {
  const get = (name: string) => Object.getOwnPropertyDescriptor(prototype, name)!.get!;
  return { buffer: get("buffer"), byteOffset: get("byteOffset"), byteLength: get("byteLength") };
};
const typedArrayParts = viewParts(Object.getPrototypeOf(Uint8Array.prototype) as object);
const dataViewParts = viewParts(DataView.prototype);

/**
 * A copy of the bytes the code wants written, in the carrier's own buffer (the code may change
 * its own while the write goes on), read with the carrier's getters (the realm's may be patched).
 */
function copyOf(view: ArrayBufferView): Uint8Array {
  const parts = types.isDataView(view) ? dataViewParts : typedArrayParts;
  return new Uint8Array(parts.buffer.call(view) as ArrayBuffer, parts.byteOffset.call(view) as number, parts.byteLength.call(view) as number).slice();
}
