/**
 * `node:fs/promises` and `node:fs` for realms, over the sandbox's files on the host. Made for a
 * realm when it first imports one of them (an eval that never does pays nothing). The functions
 * are the carrier's, handed to the realm through the membrane (so their promises, arrays and bytes
 * are the realm's); what needs a class of the realm's — Stats, Dirent, Node's errors, callbacks,
 * the synchronous functions' refusals — is made by a small script run in the realm.
 */
import vm from "node:vm";
import { types } from "node:util";
import { Buffer } from "node:buffer";
import type { Realm } from "../../carrier/realm.js";
import { liveScope, type RealmHelpers, type ScopeSlot } from "../../carrier/capability.js";
import type { CallHandle, CallResult, EvalScope } from "../../carrier/scope.js";
import { capabilityError, realmError } from "../../carrier/values.js";
import type { CallError } from "../../protocol/messages.js";
import { FILE_ERRORS, FILE_ERROR_NAME, fileErrorMessage, type FileErrorCode } from "./codes.js";
import { FILE_CHUNK_BYTES } from "./flow.js";
import { join, normalizePath } from "./path.js";
import type { FileOp, FileReplies } from "./messages.js";

/**
 * Realm-side: Node's Stats and Dirent, the callback and synchronous forms, and how the two modules
 * are put together. Not run by the carrier: its source is compiled in the realm (so what it makes
 * is the realm's), hence self-contained, and naming what it defines explicitly (the carrier bundle
 * is minified). It is made at the realm's first import of node:fs, which code of a persistent
 * realm may have preceded: what it takes from the realm then is what code left there (a realm's
 * code can only break its own fs this way; the carrier's functions trust none of it).
 */
function realmShapes(): Shapes {
  "use strict";
  const { Date, Object, TypeError, Error, Math, WeakMap } = globalThis;
  const S_IFMT = 0o170000, S_IFREG = 0o100000, S_IFDIR = 0o040000;
  const named = <T extends object>(value: T, name: string): T => Object.defineProperty(value, "name", { value: name });
  const Stats = named(class {
    mode = 0;
    isFile(): boolean {
      return (this.mode & S_IFMT) === S_IFREG;
    }
    isDirectory(): boolean {
      return (this.mode & S_IFMT) === S_IFDIR;
    }
  }, "Stats");
  const kinds = new WeakMap<object, string>();
  const Dirent = named(class {
    isFile(): boolean {
      return kinds.get(this) === "file";
    }
    isDirectory(): boolean {
      return kinds.get(this) === "dir";
    }
  }, "Dirent");
  for (const name of ["isSymbolicLink", "isBlockDevice", "isCharacterDevice", "isFIFO", "isSocket"]) {
    const no = named(() => false, name);
    Object.defineProperty(Stats.prototype, name, { value: no, writable: true, configurable: true });
    Object.defineProperty(Dirent.prototype, name, { value: no, writable: true, configurable: true });
  }
  const stats = (kind: string, size: number, mtimeMs: number, birthtimeMs: number): object => {
    const mtime = () => new Date(mtimeMs);
    return Object.assign(new Stats(), {
      dev: 0, mode: kind === "dir" ? 0o40755 : 0o100644, nlink: 1, uid: 0, gid: 0, rdev: 0, blksize: 4096, ino: 0, size, blocks: Math.ceil(size / 512),
      atimeMs: mtimeMs, mtimeMs, ctimeMs: mtimeMs, birthtimeMs, atime: mtime(), mtime: mtime(), ctime: mtime(), birthtime: new Date(birthtimeMs),
    });
  };
  const dirent = (name: string, kind: string, parentPath: string): object => {
    const entry = Object.assign(new Dirent(), { name, parentPath, path: parentPath });
    kinds.set(entry, kind);
    return entry;
  };
  const constants = Object.freeze({
    F_OK: 0, R_OK: 4, W_OK: 2, X_OK: 1, COPYFILE_EXCL: 1, COPYFILE_FICLONE: 2, COPYFILE_FICLONE_FORCE: 4,
    O_RDONLY: 0, O_WRONLY: 1, O_RDWR: 2, O_CREAT: 64, O_EXCL: 128, O_TRUNC: 512, O_APPEND: 1024, S_IFMT, S_IFREG, S_IFDIR,
  });
  const withCode = <E extends Error>(error: E, code: string): E => Object.assign(error, { code });
  type AsyncFunction = (...args: unknown[]) => Promise<unknown>;
  const callbackForm = (fn: AsyncFunction, name: string) =>
    named(function (...args: unknown[]) {
      const callback = args.pop();
      if (typeof callback !== "function") throw withCode(new TypeError(`The "cb" argument must be of type function. Received ${callback === undefined ? "undefined" : typeof callback}`), "ERR_INVALID_ARG_TYPE");
      fn(...args).then((value) => callback(null, value), (error: unknown) => callback(error));
    }, name);
  const syncForm = (name: string, async: string) =>
    named(function () {
      throw withCode(new Error(`${name} is not available in the sandbox: use \`await ${async}(…)\` from node:fs/promises (the sandbox's files are the host's, and the sandbox cannot wait for the host synchronously)`), "ERR_SYNC_FS_UNAVAILABLE");
    }, name);
  const modules = (functions: Record<string, unknown>) => {
    const promises: Record<string, unknown> = { constants };
    const fs: Record<string, unknown> = { promises, constants, Stats, Dirent };
    for (const name of Object.keys(functions)) {
      promises[name] = functions[name];
      fs[name] = callbackForm(functions[name] as AsyncFunction, name);
      fs[`${name}Sync`] = syncForm(`${name}Sync`, name);
    }
    fs.existsSync = syncForm("existsSync", "access");
    return { fs, promises };
  };
  return { stats, dirent, modules };
}

const SHAPES = new vm.Script(`(${realmShapes.toString()})()`, { filename: "paddock:fs" });

interface Shapes {
  stats(kind: string, size: number, mtimeMs: number, birthtimeMs: number): object;
  dirent(name: string, kind: string, parentPath: string): object;
  modules(functions: Record<string, unknown>): { fs: object; promises: object };
}

type ModuleKey = "node:fs" | "node:fs/promises";
const made = new WeakMap<Realm, Record<ModuleKey, object>>();

/** The exports of built-in module `key` for `realm` (made at its first import, then the same). */
export function fsModuleFor(key: ModuleKey, realm: Realm): object {
  let modules = made.get(realm);
  if (!modules) {
    const shapes = SHAPES.runInContext(realm.context) as Shapes;
    const { fs, promises } = shapes.modules(realmFunctions(realm, new Files(shapes, realm.helpers, realm.slot)));
    modules = { "node:fs": fs, "node:fs/promises": promises };
    made.set(realm, modules);
  }
  return modules[key];
}

/** What a failure needs to be Node's error: the operation and the path as the code gave it. */
interface Where {
  syscall: string;
  path: string;
  dest?: string;
}

class Files {
  constructor(
    readonly shapes: Shapes,
    private readonly helpers: RealmHelpers,
    private readonly slot: ScopeSlot,
  ) {}

  /** A normal path from what the code passed (a string, bytes, or a file: URL), or Node's error for it. */
  path(value: unknown, syscall: string, name = "path"): { normal: string; given: string } {
    let given: string;
    if (typeof value === "string") given = value;
    else if (types.isUint8Array(value)) given = new TextDecoder().decode(value);
    else {
      const outer = this.helpers.outerOf(value);
      if (!(outer instanceof URL)) throw this.argumentError(`The "${name}" argument must be of type string or an instance of Buffer or URL. Received ${describe(value)}`);
      if (outer.protocol !== "file:") throw this.argumentError("The URL must be of scheme file", "ERR_INVALID_URL_SCHEME");
      given = decodeURIComponent(outer.pathname);
    }
    const normal = normalizePath(given);
    if (normal === "ERR_INVALID_ARG_VALUE") throw this.argumentError(`The argument '${name}' must be a string, Uint8Array, or URL without null bytes. Received ${JSON.stringify(given.slice(0, 64))}`, "ERR_INVALID_ARG_VALUE");
    if (normal === "ENAMETOOLONG") throw this.fileError("ENAMETOOLONG", { syscall, path: given.slice(0, 256) + (given.length > 256 ? "…" : "") });
    return { normal, given };
  }

  /** Asks the host; its refusal becomes Node's error for the operation. */
  async call(op: FileOp, where: Where, body?: Uint8Array): Promise<CallResult> {
    return this.settle(this.scope(where).call("files", op, body), where);
  }

  scope(where: Where): EvalScope {
    const scope = liveScope(this.slot);
    if (!scope) throw realmError(this.helpers, { name: "Error", message: `${where.syscall} '${where.path}': the eval that made this call has ended` });
    return scope;
  }

  async settle(call: CallHandle, where: Where): Promise<CallResult> {
    try {
      return await call.reply;
    } catch (error) {
      throw this.failure(error as CallError, where);
    }
  }

  failure(error: CallError, where: Where): Error {
    if (error.name !== FILE_ERROR_NAME) return capabilityError(this.helpers, error);
    const [code] = error.message.split(" ");
    return this.fileError(Object.hasOwn(FILE_ERRORS, code!) ? (code as FileErrorCode) : "EIO", where, error.kind);
  }

  /** Node's error: the realm's Error with `errno`, `code`, `syscall`, `path` (and `dest`). */
  fileError(code: FileErrorCode, where: Where, kind?: CallError["kind"]): Error {
    const error = realmError(this.helpers, { name: "Error", message: fileErrorMessage(code, where.syscall, where.path, where.dest), ...(kind ? { kind } : {}) });
    const fields: Record<string, unknown> = { errno: FILE_ERRORS[code].errno, code, syscall: where.syscall, path: where.path };
    if (where.dest !== undefined) fields.dest = where.dest;
    for (const [key, value] of Object.entries(fields)) Object.defineProperty(error, key, { value, writable: true, enumerable: true, configurable: true });
    return error;
  }

  argumentError(message: string, code = "ERR_INVALID_ARG_TYPE"): Error {
    const error = realmError(this.helpers, { name: "TypeError", message });
    Object.defineProperty(error, "code", { value: code, writable: true, enumerable: true, configurable: true });
    return error;
  }

  async read(path: string, where: Where): Promise<Uint8Array> {
    const call = this.scope(where).call("files", { op: "read", path } satisfies FileOp);
    const { value, body } = await this.settle(call, where);
    const { size } = value as FileReplies["read"];
    if (size <= FILE_CHUNK_BYTES) return body ?? new Uint8Array(0);
    const bytes = new Uint8Array(size);
    let filled = 0;
    await new Promise<void>((resolve, reject) => {
      call.listen((event) => {
        if (event.op === "data") {
          bytes.set(event.data.subarray(0, size - filled), filled);
          filled += event.data.byteLength;
        } else if (event.op === "end") resolve();
        else reject(this.failure(event.error, where));
      });
    });
    return bytes;
  }

  /** Writes `bytes` (the carrier's own copy): in the call frame if they fit one chunk, else streamed within the host's credit. */
  async write(path: string, bytes: Uint8Array, mode: "replace" | "append" | "exclusive", where: Where): Promise<void> {
    const size = bytes.byteLength;
    if (size <= FILE_CHUNK_BYTES) {
      await this.call({ op: "write", path, mode, size, body: "inline" }, where, bytes);
      return;
    }
    const call = this.scope(where).call("files", { op: "write", path, mode, size, body: "stream" } satisfies FileOp);
    let offset = 0;
    while (offset < size) {
      const granted = await call.takeCredit(Math.min(FILE_CHUNK_BYTES, size - offset));
      if (granted === 0) break;
      call.send("data", bytes.subarray(offset, offset + granted));
      offset += granted;
    }
    if (offset === size) call.send("end");
    await this.settle(call, where);
  }

  stats(info: FileReplies["stat"]): object {
    return this.shapes.stats(info.kind, info.size, info.mtimeMs, info.birthtimeMs);
  }
}

/** The realm's fs functions, by name: the carrier's, through the membrane. */
function realmFunctions(realm: Realm, files: Files): Record<string, unknown> {
  const functions = fsFunctions(files);
  const wrapped: Record<string, unknown> = {};
  for (const [name, fn] of Object.entries(functions)) {
    Object.defineProperty(fn, "name", { value: name, configurable: true });
    wrapped[name] = realm.helpers.membrane.hostFunction(fn as (...args: unknown[]) => unknown);
  }
  return wrapped;
}

function fsFunctions(files: Files): Record<string, (...args: never[]) => Promise<unknown>> {
  const open = (value: unknown, syscall = "open") => files.path(value, syscall);
  const where = (syscall: string, given: string, dest?: string): Where => (dest === undefined ? { syscall, path: given } : { syscall, path: given, dest });

  const readFile = async (path: unknown, options?: unknown): Promise<unknown> => {
    const { normal, given } = open(path);
    const encoding = encodingOf(files, options);
    const bytes = await files.read(normal, where("open", given));
    return encoding ? decode(bytes, encoding) : bytes;
  };
  const writeTo = (mode: "replace" | "append") => async (path: unknown, data: unknown, options?: unknown): Promise<void> => {
    const { normal, given } = open(path);
    const flag = flagOf(options);
    const exclusive = flag !== undefined && flag.includes("x");
    const append = mode === "append" || (flag !== undefined && flag.startsWith("a"));
    const bytes = bytesOf(files, data, encodingOf(files, options));
    await files.write(normal, bytes, exclusive ? "exclusive" : append ? "append" : "replace", where("open", given));
  };
  const stat = async (path: unknown): Promise<object> => {
    const { normal, given } = files.path(path, "stat");
    const { value } = await files.call({ op: "stat", path: normal }, where("stat", given));
    return files.stats(value as FileReplies["stat"]);
  };
  const readdir = async (path: unknown, options?: unknown): Promise<unknown[]> => {
    const { normal, given } = files.path(path, "scandir");
    const withFileTypes = optionOf(options, "withFileTypes") === true;
    const recursive = optionOf(options, "recursive") === true;
    const listed: unknown[] = [];
    const list = async (dir: string, prefix: string) => {
      const { value } = await files.call({ op: "readdir", path: dir }, where("scandir", given));
      for (const [name, kind] of (value as FileReplies["readdir"]).entries) {
        listed.push(withFileTypes ? files.shapes.dirent(name, kind, prefix === "" ? given : join(given, prefix)) : prefix === "" ? name : `${prefix}/${name}`);
        if (recursive && kind === "dir") await list(join(dir, name), prefix === "" ? name : `${prefix}/${name}`);
      }
    };
    await list(normal, "");
    return listed;
  };
  const mkdir = async (path: unknown, options?: unknown): Promise<string | undefined> => {
    const { normal, given } = files.path(path, "mkdir");
    const recursive = optionOf(options, "recursive") === true;
    const { value } = await files.call({ op: "mkdir", path: normal, recursive }, where("mkdir", given));
    return recursive ? ((value as FileReplies["mkdir"]).first ?? undefined) : undefined;
  };
  const remove = (what: "file" | "dir" | "any", syscall: string) => async (path: unknown, options?: unknown): Promise<void> => {
    const { normal, given } = files.path(path, syscall);
    const recursive = what === "any" && optionOf(options, "recursive") === true;
    const force = what === "any" && optionOf(options, "force") === true;
    await files.call({ op: "remove", path: normal, what, recursive, force }, where(syscall, given));
  };
  const twoPaths = (syscall: string, from: unknown, to: unknown) => {
    const source = files.path(from, syscall, "oldPath");
    const target = files.path(to, syscall, "newPath");
    return { path: source.normal, to: target.normal, where: where(syscall, source.given, target.given) };
  };
  const rename = async (oldPath: unknown, newPath: unknown): Promise<void> => {
    const { path, to, where: at } = twoPaths("rename", oldPath, newPath);
    await files.call({ op: "rename", path, to }, at);
  };
  const copyFile = async (src: unknown, dest: unknown, mode?: unknown): Promise<void> => {
    const { path, to, where: at } = twoPaths("copyfile", src, dest);
    await files.call({ op: "copy", path, to, exclusive: typeof mode === "number" && (mode & 1) === 1 }, at);
  };
  const access = async (path: unknown): Promise<void> => {
    const { normal, given } = files.path(path, "access");
    await files.call({ op: "stat", path: normal }, where("access", given));
  };
  const realpath = async (path: unknown): Promise<string> => {
    const { normal, given } = files.path(path, "realpath");
    await files.call({ op: "stat", path: normal }, where("realpath", given));
    return normal;
  };
  const mkdtemp = async (prefix: unknown): Promise<string> => {
    if (typeof prefix !== "string") throw files.argumentError(`The "prefix" argument must be of type string. Received ${describe(prefix)}`);
    for (;;) {
      const candidate = prefix + Math.random().toString(36).slice(2, 8).padEnd(6, "0");
      const { normal } = files.path(candidate, "mkdtemp", "prefix");
      try {
        await files.call({ op: "mkdir", path: normal, recursive: false }, where("mkdtemp", candidate));
        return candidate;
      } catch (error) {
        if ((error as { code?: unknown }).code !== "EEXIST") throw error;
      }
    }
  };
  const truncate = async (path: unknown, length: unknown = 0): Promise<void> => {
    const { normal, given } = open(path);
    const size = typeof length === "number" && Number.isInteger(length) && length >= 0 ? length : 0;
    const old = size === 0 ? new Uint8Array(0) : await files.read(normal, where("open", given));
    const bytes = new Uint8Array(size);
    bytes.set(old.subarray(0, size));
    await files.write(normal, bytes, "replace", where("open", given));
  };
  const refuse = (syscall: string, code: FileErrorCode) => async (target: unknown, path: unknown): Promise<void> => {
    const { where: at } = twoPaths(syscall, target, path);
    throw files.fileError(code, at);
  };
  const readlink = async (path: unknown): Promise<string> => {
    const { normal, given } = files.path(path, "readlink");
    await files.call({ op: "stat", path: normal }, where("readlink", given));
    // It exists, and nothing in the sandbox is a link.
    throw files.fileError("EINVAL", where("readlink", given));
  };
  return {
    readFile, writeFile: writeTo("replace"), appendFile: writeTo("append"), stat, lstat: stat, readdir, mkdir,
    rm: remove("any", "rm"), rmdir: remove("dir", "rmdir"), unlink: remove("file", "unlink"), rename, copyFile, access,
    realpath, mkdtemp, truncate, symlink: refuse("symlink", "EPERM"), link: refuse("link", "EPERM"), readlink,
  };
}

const ENCODINGS = new Set(["utf8", "utf-8", "latin1", "binary", "ascii", "base64", "base64url", "hex", "utf16le", "utf-16le", "ucs2", "ucs-2"]);

function encodingOf(files: Files, options: unknown): BufferEncoding | undefined {
  const encoding = typeof options === "string" ? options : optionOf(options, "encoding");
  if (encoding === undefined || encoding === null || encoding === "buffer") return undefined;
  if (typeof encoding !== "string" || !ENCODINGS.has(encoding.toLowerCase())) throw files.argumentError(`The argument 'encoding' is invalid encoding. Received ${describe(encoding)}`, "ERR_INVALID_ARG_VALUE");
  return encoding.toLowerCase() as BufferEncoding;
}

function flagOf(options: unknown): string | undefined {
  const flag = optionOf(options, "flag");
  return typeof flag === "string" ? flag : undefined;
}

/** An option read once (a getter of the code's runs once); a string options argument has none. */
function optionOf(options: unknown, name: string): unknown {
  if (typeof options !== "object" || options === null) return undefined;
  return (options as Record<string, unknown>)[name];
}

function decode(bytes: Uint8Array, encoding: BufferEncoding): string {
  if (encoding === "utf8" || encoding === "utf-8") return new TextDecoder().decode(bytes);
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString(encoding);
}

const typedArrayParts = (() => {
  const prototype = Object.getPrototypeOf(Uint8Array.prototype) as object;
  const get = (name: string) => Object.getOwnPropertyDescriptor(prototype, name)!.get!;
  return { buffer: get("buffer"), byteOffset: get("byteOffset"), byteLength: get("byteLength") };
})();
const dataViewParts = (() => {
  const get = (name: string) => Object.getOwnPropertyDescriptor(DataView.prototype, name)!.get!;
  return { buffer: get("buffer"), byteOffset: get("byteOffset"), byteLength: get("byteLength") };
})();

/**
 * The bytes of what the code wants written, copied into the carrier's own buffer (the code may
 * change its own while the write goes on). Read with the carrier's getters: the realm's may be patched.
 */
function bytesOf(files: Files, data: unknown, encoding: BufferEncoding | undefined): Uint8Array {
  if (typeof data === "string") {
    if (!encoding || encoding === "utf8" || encoding === "utf-8") return new TextEncoder().encode(data);
    const buffer = Buffer.from(data, encoding);
    return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  }
  const parts = types.isTypedArray(data) ? typedArrayParts : types.isDataView(data) ? dataViewParts : undefined;
  if (!parts) throw files.argumentError(`The "data" argument must be of type string or an instance of Buffer, TypedArray, or DataView. Received ${describe(data)}`);
  const buffer = parts.buffer.call(data) as ArrayBuffer;
  return new Uint8Array(buffer, parts.byteOffset.call(data) as number, parts.byteLength.call(data) as number).slice();
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (typeof value === "object" || typeof value === "function") return `an instance of ${typeof value === "function" ? "Function" : "Object"}`;
  return `type ${typeof value} (${String(value).slice(0, 32)})`;
}
