/**
 * The host half of files: a sandbox's store (memory or a directory), the host's own API to it
 * (`sandbox.fs`), and the handler of the carrier's calls, which trusts nothing the carrier says:
 * the schema checked the message, every path is normal, a write never sends more than it
 * announced nor more than the credit it was given, and every operation is recorded.
 */
import { constants } from "node:fs";
import { lstat, mkdir as mkdirLocal, open as openLocal, readdir as readdirLocal } from "node:fs/promises";
import { join as joinLocal } from "node:path";
import { setImmediate } from "node:timers";
import type { CallPort } from "../../host/call-port.js";
import type { CallReply } from "../../host/carrier.js";
import { ResourceLimitError, SandboxClosedError, SandboxError } from "../../host/errors.js";
import { FILE_CHUNK_BYTES, MAX_DIR_ENTRIES, READS_IN_FLIGHT, WRITE_WINDOW_BYTES } from "./flow.js";
import { Slots } from "../../shared/slots.js";
import { FILE_ERROR_NAME, fileErrorMessage, type FileErrorCode } from "./codes.js";
import { memoryBackend } from "./memory.js";
import { openDiskStore } from "./disk.js";
import { normalizePath } from "./path.js";
import { FileOpError, FileStore, type EntryKind, type FileLimits, type FileReader, type WriteMode } from "./store.js";
import type { ResolvedFilesOptions } from "./options.js";
import type { FileOp, FileReplies } from "./messages.js";

/** One file operation of an eval, as the audit log sees it. */
export interface FileRecord {
  op: "read" | "write" | "append" | "stat" | "readdir" | "mkdir" | "rm" | "unlink" | "rmdir" | "rename" | "copy";
  path: string;
  /** The second path of a rename or copy. */
  to?: string;
  /** Bytes read or written (0 for other operations). */
  bytes: number;
  /** The error code the operation failed with ("ENOENT", "ENOSPC"…). */
  error?: string;
}

/** A file operation of the host's API failed: `code` is Node's ("ENOENT", "EISDIR"…), `path` the sandbox's. */
export class FileError extends SandboxError {
  override name = "FileError";
  constructor(readonly code: string, readonly syscall: string, readonly path: string, dest?: string) {
    super(fileErrorMessage(code as FileErrorCode, syscall, path, dest));
  }
}

export interface FileInfo {
  isFile: boolean;
  isDirectory: boolean;
  /** Always false: a sandbox's files have no links. */
  isSymlink: false;
  size: number;
  mtime: Date;
  birthtime: Date;
}

export interface DirEntry {
  name: string;
  isFile: boolean;
  isDirectory: boolean;
  isSymlink: false;
}

export interface WriteFileOptions {
  /** Add to the end of the file instead of replacing it. */
  append?: boolean;
  /** Fail with EEXIST if the file exists. */
  createNew?: boolean;
}

const LIMIT_WORDS: Record<keyof FileLimits, string> = {
  quotaBytes: "the sandbox's files would exceed files.quotaBytes",
  maxFiles: "the sandbox would have more files and directories than files.maxFiles",
  maxFileBytes: "the file would be larger than files.maxFileBytes",
};

/**
 * A sandbox's files, as the host sees them: `sandbox.fs`. Paths are the sandbox's (`/` is its
 * root; relative paths start there; `..` stops at the root). Failures are `FileError`s with Node's
 * codes; a write over a limit is a `ResourceLimitError`, and the file is as it was.
 */
export class SandboxFiles {
  /**
   * Reads whose bytes may be on their way to the sandbox's carriers at once. A read holds one until
   * its last bytes have left the host (the carrier took them from its pipe): a carrier that asks
   * for many files and never reads its pipe makes the host hold READS_IN_FLIGHT chunks, no more.
   * @internal
   */
  readonly reads = new Slots(READS_IN_FLIGHT);
  private store: FileStore | undefined;
  private opening: Promise<FileStore> | undefined;
  private closed = false;

  constructor(private readonly options: ResolvedFilesOptions | undefined) {
    if (!options?.dir) this.store = new FileStore(limitsOf(options), memoryBackend);
  }

  /** The store, opened (a directory is read on the sandbox's creation). @internal */
  open(): Promise<FileStore> {
    if (this.closed) return Promise.reject(new SandboxClosedError("the sandbox is closed"));
    if (this.store) return Promise.resolve(this.store);
    this.opening ??= openDiskStore(this.options!.dir!, limitsOf(this.options)).then((store) => (this.store = store));
    return this.opening;
  }

  /** @internal */
  async close(): Promise<void> {
    this.closed = true;
    const store = this.store ?? (await this.opening?.catch(() => undefined));
    await store?.close();
  }

  /** Bytes and entries (files and directories) in use, and the limits. */
  async usage(): Promise<{ bytes: number; entries: number } & FileLimits> {
    const store = await this.open();
    return { ...store.usage(), ...store.limits };
  }

  async writeFile(path: string, data: Uint8Array | ArrayBufferView | ArrayBuffer, options: WriteFileOptions = {}): Promise<void> {
    const bytes = data instanceof ArrayBuffer ? new Uint8Array(data) : ArrayBuffer.isView(data) ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : undefined;
    if (!bytes) throw new TypeError("fs.writeFile: data must be a Uint8Array, an ArrayBufferView or an ArrayBuffer");
    const where = this.path(path, "fs.writeFile");
    await this.run("open", where, (store) => store.writeWhole(where, bytes, modeOf(options)));
  }

  writeTextFile(path: string, text: string, options: WriteFileOptions = {}): Promise<void> {
    if (typeof text !== "string") throw new TypeError("fs.writeTextFile: text must be a string");
    return this.writeFile(path, new TextEncoder().encode(text), options);
  }

  async readFile(path: string): Promise<Uint8Array> {
    const where = this.path(path, "fs.readFile");
    return this.run("open", where, async (store) => readAll(await store.open(where)));
  }

  async readTextFile(path: string): Promise<string> {
    return new TextDecoder().decode(await this.readFile(path));
  }

  async stat(path: string): Promise<FileInfo> {
    const where = this.path(path, "fs.stat");
    const info = await this.run("stat", where, async (store) => store.stat(where));
    return { isFile: info.kind === "file", isDirectory: info.kind === "dir", isSymlink: false, size: info.size, mtime: new Date(info.mtimeMs), birthtime: new Date(info.birthtimeMs) };
  }

  async readDir(path = "/"): Promise<DirEntry[]> {
    const where = this.path(path, "fs.readDir");
    const entries = await this.run("scandir", where, async (store) => store.readDir(where));
    return entries.map(({ name, kind }) => ({ name, isFile: kind === "file", isDirectory: kind === "dir", isSymlink: false }));
  }

  async mkdir(path: string, options: { recursive?: boolean } = {}): Promise<void> {
    const where = this.path(path, "fs.mkdir");
    await this.run("mkdir", where, (store) => store.mkdir(where, options.recursive === true));
  }

  /** Removes a file, or a directory: an empty one, or with `recursive` everything in it. */
  async remove(path: string, options: { recursive?: boolean } = {}): Promise<void> {
    const where = this.path(path, "fs.remove");
    await this.run("rm", where, async (store) => {
      const recursive = options.recursive === true;
      await store.remove(where, recursive ? "any" : store.stat(where).kind, { recursive });
    });
  }

  async rename(from: string, to: string): Promise<void> {
    const source = this.path(from, "fs.rename");
    const target = this.path(to, "fs.rename");
    await this.run("rename", source, (store) => store.rename(source, target), target);
  }

  /** Copies the host directory `localDir` (its files and directories; links are skipped) into the sandbox's `remoteDir`. */
  async upload(localDir: string, remoteDir: string): Promise<void> {
    const where = this.path(remoteDir, "fs.upload");
    const store = await this.open();
    const copyDir = async (local: string, remote: string): Promise<void> => {
      await this.run("mkdir", remote, (it) => it.mkdir(remote, true));
      for (const entry of await readdirLocal(local, { withFileTypes: true })) {
        const from = joinLocal(local, entry.name);
        const to = this.path(`${remote}/${entry.name}`, "fs.upload");
        if (entry.isDirectory()) await copyDir(from, to);
        else if (entry.isFile()) await this.run("open", to, () => uploadFile(store, from, to));
      }
    };
    if (!(await lstat(localDir)).isDirectory()) throw new TypeError("fs.upload: localDir is not a directory");
    await copyDir(localDir, where);
  }

  /** Copies the sandbox's directory `remoteDir`, everything in it, into the host directory `localDir` (made if missing). */
  async download(remoteDir: string, localDir: string): Promise<void> {
    const where = this.path(remoteDir, "fs.download");
    const store = await this.open();
    const entries = await this.run("scandir", where, async (it) => it.walk(where));
    await mkdirLocal(localDir, { recursive: true });
    const prefix = where === "/" ? 0 : where.length;
    for (const entry of entries) {
      // Names of the sandbox's are names: no "/", no "..", no NUL (path.ts); joined, they stay in localDir.
      const local = joinLocal(localDir, ...entry.path.slice(prefix + 1).split("/"));
      if (entry.kind === "dir") await mkdirLocal(local, { recursive: true });
      else await this.run("open", entry.path, async () => downloadFile(await store.open(entry.path), local));
    }
  }

  private path(path: string, where: string): string {
    if (typeof path !== "string") throw new TypeError(`${where}: the path must be a string`);
    const normal = normalizePath(path);
    if (normal === "ERR_INVALID_ARG_VALUE") throw new TypeError(`${where}: the path must not contain NUL bytes`);
    if (normal === "ENAMETOOLONG") throw new FileError("ENAMETOOLONG", where.slice(3), path.slice(0, 256));
    return normal;
  }

  /** Runs an operation on the store; its failure becomes the host API's error. */
  private async run<T>(syscall: string, path: string, operation: (store: FileStore) => Promise<T>, dest?: string): Promise<T> {
    const store = await this.open();
    try {
      return await operation(store);
    } catch (error) {
      if (!(error instanceof FileOpError)) throw error;
      if (this.closed) throw new SandboxClosedError("the sandbox is closed");
      if (error.limit) throw new ResourceLimitError(`${fileErrorMessage(error.code, syscall, path, dest)}: ${LIMIT_WORDS[error.limit]} (${store.limits[error.limit]})`);
      throw new FileError(error.code, syscall, path, dest);
    }
  }
}

function limitsOf(options: ResolvedFilesOptions | undefined): FileLimits {
  const quotaBytes = options?.quotaBytes ?? 64 * 1024 * 1024;
  return { quotaBytes, maxFiles: options?.maxFiles ?? 10_000, maxFileBytes: options?.maxFileBytes ?? quotaBytes };
}

function modeOf(options: WriteFileOptions): WriteMode {
  return options.append ? "append" : options.createNew ? "exclusive" : "replace";
}

async function readAll(reader: FileReader): Promise<Uint8Array> {
  try {
    const bytes = new Uint8Array(reader.size);
    let filled = 0;
    for (let chunk = await reader.next(); chunk; chunk = await reader.next()) {
      bytes.set(chunk, filled);
      filled += chunk.byteLength;
    }
    return filled === bytes.byteLength ? bytes : bytes.subarray(0, filled);
  } finally {
    await reader.close();
  }
}

async function uploadFile(store: FileStore, from: string, to: string): Promise<void> {
  const handle = await openLocal(from, "r");
  try {
    const size = (await handle.stat()).size;
    const write = await store.beginWrite(to, size, "replace");
    try {
      const chunk = new Uint8Array(Math.min(FILE_CHUNK_BYTES, size));
      for (let position = 0; position < size; ) {
        const { bytesRead } = await handle.read(chunk, 0, Math.min(chunk.byteLength, size - position), position);
        if (bytesRead === 0) throw new FileOpError("EIO", undefined, "the local file shrank while it was uploaded");
        await write.write(chunk.subarray(0, bytesRead));
        position += bytesRead;
      }
    } catch (error) {
      await write.abort();
      throw error;
    }
    await write.commit();
  } finally {
    await handle.close();
  }
}

async function downloadFile(reader: FileReader, local: string): Promise<void> {
  try {
    // The names are the sandbox's: a link already in localDir under one of them is not followed.
    const handle = await openLocal(local, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW, 0o644);
    try {
      for (let chunk = await reader.next(); chunk; chunk = await reader.next()) await handle.write(chunk);
    } finally {
      await handle.close();
    }
  } finally {
    await reader.close();
  }
}

/** One eval's file operations: served on its sandbox's store, and recorded. */
export class EvalFiles {
  readonly records: FileRecord[] = [];

  constructor(
    private readonly files: SandboxFiles,
    private readonly onRecord: ((record: FileRecord) => void) | undefined,
  ) {}

  async handle(op: FileOp, port: CallPort): Promise<CallReply> {
    const record: FileRecord = { op: recordOp(op), path: op.path, bytes: 0 };
    if (op.op === "rename" || op.op === "copy") record.to = op.to;
    // Listening before the first await: a streamed write's chunks may follow its call at once.
    const incoming = op.op === "write" && op.body === "stream" ? new Inbox(port) : undefined;
    try {
      const store = await this.files.open();
      const { value, body, streams } = await this.serve(op, store, port, record, incoming);
      this.record(record, port.isOpen);
      if (!streams) port.finish();
      return body ? { ok: true, value, body } : { ok: true, value };
    } catch (error) {
      // Only the store's own failures are the sandbox's to see; anything else is a host bug.
      if (!(error instanceof FileOpError) && !(error instanceof SandboxClosedError)) throw error;
      const code: FileErrorCode = error instanceof FileOpError ? error.code : "EIO";
      record.error = code;
      this.record(record, port.isOpen);
      const limit = error instanceof FileOpError ? error.limit : undefined;
      return { ok: false, error: { name: FILE_ERROR_NAME, message: limit ? `${code} ${limit}` : code, ...(limit ? { kind: "resource" as const } : {}) } };
    }
  }

  private async serve(op: FileOp, store: FileStore, port: CallPort, record: FileRecord, incoming: Inbox | undefined): Promise<{ value: unknown; body?: Uint8Array; streams?: boolean }> {
    switch (op.op) {
      case "stat": {
        const info = store.stat(op.path);
        return { value: { kind: info.kind, size: info.size, mtimeMs: info.mtimeMs, birthtimeMs: info.birthtimeMs } satisfies FileReplies["stat"] };
      }
      case "readdir": {
        const entries = store.readDir(op.path);
        if (entries.length > MAX_DIR_ENTRIES) throw new FileOpError("EIO", undefined, "too many entries");
        return { value: { entries: entries.map(({ name, kind }): [string, EntryKind] => [name, kind]) } satisfies FileReplies["readdir"] };
      }
      case "mkdir":
        return { value: { first: (await store.mkdir(op.path, op.recursive)) ?? null } satisfies FileReplies["mkdir"] };
      case "remove":
        await store.remove(op.path, op.what, op);
        return { value: null };
      case "rename":
        await store.rename(op.path, op.to);
        return { value: null };
      case "copy":
        record.bytes = await store.copy(op.path, op.to, op.exclusive);
        return { value: null };
      case "read":
        return this.read(op.path, store, port, record);
      case "write":
        record.bytes = op.size;
        await this.write(op, store, port, incoming);
        return { value: null };
    }
  }

  /**
   * A read: one chunk comes with the reply; a larger file streams after it, as fast as the carrier
   * reads its pipe. It waits for a slot first (see SandboxFiles.reads), and holds it until its
   * bytes have left the host.
   */
  private async read(path: string, store: FileStore, port: CallPort, record: FileRecord): Promise<{ value: FileReplies["read"]; body?: Uint8Array; streams?: boolean }> {
    const acquiring = this.files.reads.acquire((listener) => port.onClose(listener));
    if (!(acquiring === true || (await acquiring))) throw new FileOpError("EIO", undefined, "the eval has ended");
    // Released once the reply (or the stream's last chunk) has been written and the pipe drained;
    // the write happens after this function returns, hence the turn of the event loop first.
    const releaseWhenSent = () => setImmediate(() => void port.whenWritable().then(() => this.files.reads.release()));
    let reader: FileReader;
    try {
      reader = await store.open(path);
    } catch (error) {
      this.files.reads.release();
      throw error;
    }
    record.bytes = reader.size;
    if (reader.size <= FILE_CHUNK_BYTES) {
      try {
        return { value: { size: reader.size }, body: (await reader.next()) ?? new Uint8Array(0) };
      } finally {
        releaseWhenSent();
        await reader.close();
      }
    }
    port.onClose(() => void reader.close().catch(() => {}));
    // After the reply is out (frames pushed before it would be held, all of them, in memory).
    setImmediate(() => void streamDown(reader, port).finally(releaseWhenSent));
    return { value: { size: reader.size }, streams: true };
  }

  /** A write: inline, or streamed up within the credit the host gives as it stores the chunks. */
  private async write(op: Extract<FileOp, { op: "write" }>, store: FileStore, port: CallPort, incoming: Inbox | undefined): Promise<void> {
    if (op.body === "inline") {
      const body = port.body ?? new Uint8Array(0);
      if (body.byteLength !== op.size || op.size > FILE_CHUNK_BYTES) {
        port.violation(`an inline write of ${body.byteLength} bytes announced as ${op.size}`);
        throw new FileOpError("EINVAL");
      }
      const write = await store.beginWrite(op.path, op.size, op.mode);
      try {
        await write.write(body);
        // A write the eval did not wait for, and outlived, is dropped (as a streamed one is).
        if (!port.isOpen) throw new FileOpError("EINVAL", undefined, "the eval has ended");
      } catch (error) {
        await write.abort();
        throw error;
      }
      return write.commit();
    }
    if (port.body || !incoming) {
      port.violation("a streamed write with an inline body");
      throw new FileOpError("EINVAL");
    }
    const write = await store.beginWrite(op.path, op.size, op.mode);
    let granted = Math.min(WRITE_WINDOW_BYTES, op.size);
    let received = 0;
    if (granted > 0) port.grant(granted);
    try {
      for (;;) {
        const event = await incoming.next();
        if (event.op === "data") {
          received += event.data.byteLength;
          if (received > granted || received > op.size) {
            port.violation(`a streamed write of more bytes than ${received > op.size ? "announced" : "the host allowed"}`);
            throw new FileOpError("EINVAL");
          }
          await write.write(event.data);
          const more = Math.min(event.data.byteLength, op.size - granted);
          if (more > 0) {
            granted += more;
            port.grant(more);
          }
        } else if (event.op === "end") {
          if (received !== op.size) throw new FileOpError("EINVAL");
          return await write.commit();
        } else {
          // Cancelled by the carrier, or the eval is over: nothing is written.
          throw new FileOpError("EINVAL");
        }
      }
    } catch (error) {
      await write.abort();
      throw error;
    }
  }

  /** Records an operation; one that ends after its eval did goes to the listener only (the eval's result is out). */
  private record(record: FileRecord, live: boolean): void {
    if (live) this.records.push(record);
    try {
      this.onRecord?.(record);
    } catch {
      // A listener's failure is the listener's: the operation stands.
    }
  }
}

async function streamDown(reader: FileReader, port: CallPort): Promise<void> {
  try {
    for (let chunk = await reader.next(); chunk && port.isOpen; chunk = await reader.next()) {
      if (!port.push(chunk)) await port.whenWritable();
    }
    port.end();
  } catch (error) {
    port.fail({ name: FILE_ERROR_NAME, message: error instanceof FileOpError ? error.code : "EIO" });
  } finally {
    await reader.close().catch(() => {});
  }
}

type InboxEvent = { op: "data"; data: Uint8Array } | { op: "end" | "cancel" };

/** The stream messages of one write, taken one at a time; the end of its eval cancels it. */
class Inbox {
  private readonly events: InboxEvent[] = [];
  private waiting: ((event: InboxEvent) => void) | undefined;

  constructor(port: CallPort) {
    port.listen((op, data) => this.push(op, data));
    port.onClose(() => this.push("cancel", undefined));
  }

  push(op: string, data: Uint8Array | undefined): void {
    const event: InboxEvent = op === "data" && data ? { op: "data", data } : { op: op === "end" ? "end" : "cancel" };
    const waiting = this.waiting;
    this.waiting = undefined;
    if (waiting) waiting(event);
    else this.events.push(event);
  }

  next(): Promise<InboxEvent> {
    const event = this.events.shift();
    return event ? Promise.resolve(event) : new Promise((resolve) => (this.waiting = resolve));
  }
}

function recordOp(op: FileOp): FileRecord["op"] {
  switch (op.op) {
    case "write":
      return op.mode === "append" ? "append" : "write";
    case "remove":
      return op.what === "file" ? "unlink" : op.what === "dir" ? "rmdir" : "rm";
    default:
      return op.op;
  }
}
