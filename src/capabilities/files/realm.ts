/**
 * node:fs and node:fs/promises as the realm runs them: module units (see modules/messages.ts) that
 * the host sends a carrier with the first eval that imports them, compiled once per carrier and
 * evaluated in each realm that imports them (so everything they make is the realm's own). They sit
 * on one function of the carrier's, `paddock:files` (see carrier.ts), which checks what it is
 * given, asks the host, and throws Node's errors; everything here is shaping: arguments, options,
 * encodings, Stats and Dirent, callbacks, the synchronous functions' refusals.
 *
 * `realmFs` is not run on the host: its source text is the unit. Hence it is self-contained (no
 * module-level names; types only), names what it defines explicitly, and takes nothing from the
 * host. It runs at a realm's first import, after code of a persistent realm may have changed the
 * realm's globals: a realm's code can only break its own fs that way, since the carrier's function
 * trusts nothing it is handed.
 */
import type { ModuleUnit } from "../modules/messages.js";
import { FILE_CALL_FLAGS, FILE_CALL_KEY, type FileCall } from "./call.js";

function realmFs(module: { exports: unknown }, require: (specifier: string) => unknown): void {
  "use strict";
  const call = require(FILE_CALL_KEY) as FileCall;
  const { Date, Object, TypeError, Error, Math, Number, Array, WeakMap, Uint8Array, TextEncoder, TextDecoder, ArrayBuffer, String, URL, atob, btoa } = globalThis;
  const { recursive: RECURSIVE, force: FORCE, exclusive: EXCLUSIVE } = FILE_CALL_FLAGS;
  const S_IFMT = 0o170000, S_IFREG = 0o100000, S_IFDIR = 0o040000;
  type Options = Record<string, unknown> | string | undefined;
  const named = <T extends object>(value: T, name: string): T => Object.defineProperty(value, "name", { value: name });
  const withCode = <E extends Error>(error: E, code: string): E => Object.assign(error, { code });
  const received = (value: unknown) => (value === null ? "null" : typeof value === "object" || typeof value === "function" ? `an instance of ${typeof value === "function" ? "Function" : "Object"}` : `type ${typeof value} (${String(value).slice(0, 32)})`);
  const argumentError = (message: string, code = "ERR_INVALID_ARG_TYPE") => withCode(new TypeError(message), code);

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
  const stats = ({ kind, size, mtimeMs, birthtimeMs }: { kind: string; size: number; mtimeMs: number; birthtimeMs: number }) => {
    const time = () => new Date(mtimeMs);
    return Object.assign(new Stats(), {
      dev: 0, mode: kind === "dir" ? 0o40755 : 0o100644, nlink: 1, uid: 0, gid: 0, rdev: 0, blksize: 4096, ino: 0, size, blocks: Math.ceil(size / 512),
      atimeMs: mtimeMs, mtimeMs, ctimeMs: mtimeMs, birthtimeMs, atime: time(), mtime: time(), ctime: time(), birthtime: new Date(birthtimeMs),
    });
  };
  const dirent = (name: string, kind: string, parentPath: string) => {
    const entry = Object.assign(new Dirent(), { name, parentPath, path: parentPath });
    kinds.set(entry, kind);
    return entry;
  };
  const constants = Object.freeze({
    F_OK: 0, R_OK: 4, W_OK: 2, X_OK: 1, COPYFILE_EXCL: 1, COPYFILE_FICLONE: 2, COPYFILE_FICLONE_FORCE: 4,
    O_RDONLY: 0, O_WRONLY: 1, O_RDWR: 2, O_CREAT: 64, O_EXCL: 128, O_TRUNC: 512, O_APPEND: 1024, S_IFMT, S_IFREG, S_IFDIR,
  });

  /** A path as Node takes one: a string, bytes (UTF-8), or a file: URL. */
  const pathOf = (value: unknown, name = "path"): string => {
    if (typeof value === "string") return value;
    if (value instanceof Uint8Array) return new TextDecoder().decode(value);
    if (value instanceof URL) {
      if (value.protocol !== "file:") throw argumentError("The URL must be of scheme file", "ERR_INVALID_URL_SCHEME");
      return decodeURIComponent(value.pathname);
    }
    throw argumentError(`The "${name}" argument must be of type string or an instance of Buffer or URL. Received ${received(value)}`);
  };
  const option = (options: Options, name: string): unknown => (typeof options === "object" && options !== null ? options[name] : undefined);

  const ENCODINGS: Record<string, string> = { utf8: "utf8", "utf-8": "utf8", latin1: "latin1", binary: "latin1", ascii: "ascii", base64: "base64", base64url: "base64url", hex: "hex", utf16le: "utf16le", "utf-16le": "utf16le", ucs2: "utf16le", "ucs-2": "utf16le" };
  const encodingOf = (options: Options): string | undefined => {
    const encoding = typeof options === "string" ? options : option(options, "encoding");
    if (encoding === undefined || encoding === null || encoding === "buffer") return undefined;
    const known = typeof encoding === "string" ? ENCODINGS[encoding.toLowerCase()] : undefined;
    if (!known) throw argumentError(`The argument 'encoding' is invalid encoding. Received ${received(encoding)}`, "ERR_INVALID_ARG_VALUE");
    return known;
  };
  const latin1 = (bytes: Uint8Array, mask: number) => {
    let text = "";
    for (let i = 0; i < bytes.length; i += 8192) text += String.fromCharCode(...bytes.subarray(i, i + 8192).map((byte) => byte & mask));
    return text;
  };
  const decode = (bytes: Uint8Array, encoding: string): string => {
    switch (encoding) {
      case "utf8":
        return new TextDecoder().decode(bytes);
      case "latin1":
        return latin1(bytes, 0xff);
      case "ascii":
        return latin1(bytes, 0x7f);
      case "hex":
        return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
      case "utf16le":
        return new TextDecoder("utf-16le").decode(bytes);
      default: {
        const base64 = btoa(latin1(bytes, 0xff));
        return encoding === "base64" ? base64 : base64.replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
      }
    }
  };
  const encode = (text: string, encoding: string): Uint8Array => {
    switch (encoding) {
      case "utf8":
        return new TextEncoder().encode(text);
      case "latin1":
      case "ascii":
        return Uint8Array.from(text, (char) => char.charCodeAt(0) & 0xff);
      case "hex": {
        const bytes = new Uint8Array(text.length >> 1);
        for (let i = 0; i < bytes.length; i++) {
          const byte = Number.parseInt(text.slice(i * 2, i * 2 + 2), 16);
          if (Number.isNaN(byte)) return bytes.subarray(0, i);
          bytes[i] = byte;
        }
        return bytes;
      }
      case "utf16le": {
        const bytes = new Uint8Array(text.length * 2);
        for (let i = 0; i < text.length; i++) {
          const unit = text.charCodeAt(i);
          bytes[i * 2] = unit & 0xff;
          bytes[i * 2 + 1] = unit >> 8;
        }
        return bytes;
      }
      default: {
        const binary = atob(text.replaceAll("-", "+").replaceAll("_", "/").replace(/[^A-Za-z0-9+/]/g, ""));
        return Uint8Array.from(binary, (char) => char.charCodeAt(0));
      }
    }
  };
  /** What writeFile takes: a string (in its encoding), a typed array or a DataView. */
  const bytesOf = (data: unknown, options: Options): Uint8Array => {
    if (typeof data === "string") return encode(data, encodingOf(options) ?? "utf8");
    if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    throw argumentError(`The "data" argument must be of type string or an instance of Buffer, TypedArray, or DataView. Received ${received(data)}`);
  };
  /** Node's error for the few refusals made here (every other comes from the carrier). */
  const refusal = (code: "EPERM" | "EINVAL", errno: number, text: string, syscall: string, path: string, dest?: string) =>
    Object.assign(new Error(`${code}: ${text}, ${syscall} '${path}'${dest === undefined ? "" : ` -> '${dest}'`}`), { errno, code, syscall, path, ...(dest === undefined ? {} : { dest }) });

  const writeTo = (append: boolean) => async (path: unknown, data: unknown, options?: Options) => {
    const flag = option(options, "flag");
    const exclusive = typeof flag === "string" && flag.includes("x");
    const appending = append || (typeof flag === "string" && flag.startsWith("a"));
    await call("write", "open", pathOf(path), exclusive ? "exclusive" : appending ? "append" : "replace", 0, bytesOf(data, options));
  };
  const remove = (what: string, syscall: string) => async (path: unknown, options?: Options) => {
    const flags = what === "any" ? (option(options, "recursive") === true ? RECURSIVE : 0) | (option(options, "force") === true ? FORCE : 0) : 0;
    await call("remove", syscall, pathOf(path), what, flags, undefined);
  };
  const stat = async (path: unknown) => stats((await call("stat", "stat", pathOf(path), undefined, 0, undefined)) as Parameters<typeof stats>[0]);
  const refuse = (syscall: string) => async (target: unknown, path: unknown) => {
    throw refusal("EPERM", -1, "operation not permitted", syscall, pathOf(target, "target"), pathOf(path));
  };
  const functions = {
    readFile: async (path: unknown, options?: Options) => {
      const encoding = encodingOf(options);
      const bytes = (await call("read", "open", pathOf(path), undefined, 0, undefined)) as Uint8Array;
      return encoding ? decode(bytes, encoding) : bytes;
    },
    writeFile: writeTo(false),
    appendFile: writeTo(true),
    stat,
    lstat: stat,
    readdir: async (path: unknown, options?: Options) => {
      const given = pathOf(path);
      const withFileTypes = option(options, "withFileTypes") === true;
      const recursive = option(options, "recursive") === true;
      const listed: unknown[] = [];
      const list = async (relative: string) => {
        const at = relative === "" ? given : given.endsWith("/") ? given + relative : `${given}/${relative}`;
        const { entries } = (await call("readdir", "scandir", at, undefined, 0, undefined)) as { entries: Array<[string, string]> };
        for (const [name, kind] of entries) {
          const inside = relative === "" ? name : `${relative}/${name}`;
          listed.push(withFileTypes ? dirent(name, kind, at) : inside);
          if (recursive && kind === "dir") await list(inside);
        }
      };
      await list("");
      return listed;
    },
    mkdir: async (path: unknown, options?: Options | number) => {
      const recursive = typeof options === "object" && option(options, "recursive") === true;
      const { first } = (await call("mkdir", "mkdir", pathOf(path), undefined, recursive ? RECURSIVE : 0, undefined)) as { first: string | null };
      return recursive ? (first ?? undefined) : undefined;
    },
    rm: remove("any", "rm"),
    rmdir: remove("dir", "rmdir"),
    unlink: remove("file", "unlink"),
    rename: async (oldPath: unknown, newPath: unknown) => {
      await call("rename", "rename", pathOf(oldPath, "oldPath"), pathOf(newPath, "newPath"), 0, undefined);
    },
    copyFile: async (src: unknown, dest: unknown, mode?: unknown) => {
      await call("copy", "copyfile", pathOf(src, "src"), pathOf(dest, "dest"), typeof mode === "number" && (mode & 1) === 1 ? EXCLUSIVE : 0, undefined);
    },
    access: async (path: unknown) => {
      await call("stat", "access", pathOf(path), undefined, 0, undefined);
    },
    realpath: async (path: unknown) => {
      const { normal } = (await call("stat", "realpath", pathOf(path), undefined, 0, undefined)) as { normal: string };
      return normal;
    },
    mkdtemp: async (prefix: unknown) => {
      if (typeof prefix !== "string") throw argumentError(`The "prefix" argument must be of type string. Received ${received(prefix)}`);
      for (;;) {
        const candidate = prefix + Math.random().toString(36).slice(2, 8).padEnd(6, "0");
        try {
          await call("mkdir", "mkdtemp", candidate, undefined, 0, undefined);
          return candidate;
        } catch (error) {
          if ((error as { code?: unknown }).code !== "EEXIST") throw error;
        }
      }
    },
    truncate: async (path: unknown, length: unknown = 0) => {
      const given = pathOf(path);
      const size = typeof length === "number" && Number.isInteger(length) && length > 0 ? length : 0;
      const bytes = new Uint8Array(size);
      if (size > 0) bytes.set(((await call("read", "open", given, undefined, 0, undefined)) as Uint8Array).subarray(0, size));
      await call("write", "open", given, "replace", 0, bytes);
    },
    symlink: refuse("symlink"),
    link: refuse("link"),
    readlink: async (path: unknown) => {
      const given = pathOf(path);
      await call("stat", "readlink", given, undefined, 0, undefined);
      // It exists, and nothing in the sandbox is a link.
      throw refusal("EINVAL", -22, "invalid argument", "readlink", given);
    },
  };

  type AsyncFunction = (...args: unknown[]) => Promise<unknown>;
  const promises: Record<string, unknown> = { constants };
  const fs: Record<string, unknown> = { promises, constants, Stats, Dirent };
  const sync = (name: string, async: string) =>
    named(function () {
      throw withCode(new Error(`${name} is not available in the sandbox: use \`await ${async}(…)\` from node:fs/promises (the sandbox's files are the host's, and the sandbox cannot wait for the host synchronously)`), "ERR_SYNC_FS_UNAVAILABLE");
    }, name);
  for (const [name, fn] of Object.entries(functions) as Array<[string, AsyncFunction]>) {
    promises[name] = named(fn, name);
    fs[name] = named(function (...args: unknown[]) {
      const callback = args.pop();
      if (typeof callback !== "function") throw argumentError(`The "cb" argument must be of type function. Received ${received(callback)}`);
      fn(...args).then((value) => callback(null, value), (error: unknown) => callback(error));
    }, name);
    fs[`${name}Sync`] = sync(`${name}Sync`, name);
  }
  fs.existsSync = sync("existsSync", "access");
  module.exports = fs;
}

/**
 * The units: node:fs (the module above) and node:fs/promises (its `promises`). A unit's code is a
 * CommonJS function body: the module's function, called with the unit's module and require.
 */
export const FS_UNITS: readonly ModuleUnit[] = [
  // (The function's free names, the call's key and flags, are given to it as values.)
  { key: "node:fs", code: `const FILE_CALL_KEY = ${JSON.stringify(FILE_CALL_KEY)}, FILE_CALL_FLAGS = ${JSON.stringify(FILE_CALL_FLAGS)};\n(${realmFs.toString()})(module, require);`, links: { [FILE_CALL_KEY]: FILE_CALL_KEY } },
  { key: "node:fs/promises", code: `module.exports = require("node:fs").promises;`, links: { "node:fs": "node:fs" } },
];
