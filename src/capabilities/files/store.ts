/**
 * A sandbox's files on the host. One tree of what exists (kinds, sizes, times) holds every rule —
 * Node's semantics, the limits — and a backend holds the contents: in memory, or a directory on
 * disk (see disk.ts). The tree is the authority while the sandbox is open: the same rules for both
 * backends, and no answer of the disk's is believed over it.
 *
 * Writes never lose what was there: the bytes go somewhere new first (fresh chunks, a temporary
 * file), the limits are checked before and again at the commit, and only the commit replaces the
 * file. Changes to the tree happen one at a time (commits, renames, removals); reads take a
 * snapshot and never wait for them.
 */
import { FILE_CHUNK_BYTES } from "./flow.js";
import type { FileErrorCode } from "./codes.js";
import { MAX_DEPTH, MAX_PATH_BYTES, isWithin, join, parentOf, segmentsOf, utf8Bytes } from "./path.js";

export interface FileLimits {
  /** Bytes of all files together. */
  quotaBytes: number;
  /** Files and directories together (the root is not counted). */
  maxFiles: number;
  /** Bytes of one file. */
  maxFileBytes: number;
}

export type EntryKind = "file" | "dir";

export interface EntryInfo {
  kind: EntryKind;
  /** Bytes (0 for a directory). */
  size: number;
  mtimeMs: number;
  birthtimeMs: number;
}

export interface DirEntry {
  name: string;
  kind: EntryKind;
}

/** Which limit a write ran into (for the host's ResourceLimitError and the sandbox's ENOSPC/EFBIG). */
export type FileLimitName = keyof FileLimits;

/** A failed file operation: Node's code, and for a limit, which one. */
export class FileOpError extends Error {
  constructor(readonly code: FileErrorCode, readonly limit?: FileLimitName, detail?: string) {
    super(detail ?? code);
  }
}

/** A file's contents as of when it was opened, in chunks of at most FILE_CHUNK_BYTES. */
export interface FileReader {
  readonly size: number;
  /** The next chunk, or undefined at the end. */
  next(): Promise<Uint8Array | undefined>;
  close(): Promise<void>;
}

/** Where a write's bytes go until it commits. */
export interface ContentSink {
  write(chunk: Uint8Array): Promise<void>;
  /** Makes the bytes the contents of `node` (the file's, or a new one's: the tree has checked everything). */
  commit(node: FileNode): Promise<void>;
  /** Drops the bytes; the file is as it was. */
  discard(): Promise<void>;
}

/** What a backend does for the tree: contents and the mechanics of changes, no rules. */
export interface Backend {
  /** A name at the root the backend keeps for itself: refused to the sandbox (EPERM). */
  readonly reserved?: string;
  read(path: string, node: FileNode): Promise<FileReader>;
  sink(path: string, node: FileNode | undefined, append: boolean): Promise<ContentSink>;
  mkdir(path: string): Promise<void>;
  /** Removes a file, or a directory with everything in it. */
  remove(path: string, kind: EntryKind): Promise<void>;
  rename(from: string, to: string, replaces: EntryKind | undefined): Promise<void>;
  close(): Promise<void>;
}

export interface FileNode {
  kind: "file";
  size: number;
  mtimeMs: number;
  birthtimeMs: number;
  /** The contents, for the memory backend (never changed in place: a snapshot keeps the array). */
  chunks?: Uint8Array[];
  /** A write replacing the file is pending: it alone may count the old contents as its room (see hold). */
  replacing?: boolean;
}

export interface DirNode {
  kind: "dir";
  entries: Map<string, Node>;
  mtimeMs: number;
  birthtimeMs: number;
}

export type Node = FileNode | DirNode;

export function newDir(now = Date.now()): DirNode {
  return { kind: "dir", entries: new Map(), mtimeMs: now, birthtimeMs: now };
}

function newFile(now = Date.now()): FileNode {
  return { kind: "file", size: 0, mtimeMs: now, birthtimeMs: now };
}

/** How a write treats an existing file: "replace" (w), "append" (a), "exclusive" (wx: it must not exist). */
export type WriteMode = "replace" | "append" | "exclusive";

/** A write in progress: its bytes stream in, then it commits or is aborted. */
export interface PendingWrite {
  write(chunk: Uint8Array): Promise<void>;
  commit(): Promise<void>;
  abort(): Promise<void>;
}

export class FileStore {
  private used = 0;
  private count = 0;
  /** Bytes and new entries of writes in progress, held against the limits until they commit or abort. */
  private reservedBytes = 0;
  private reservedEntries = 0;
  private pendingWrites = 0;
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;

  constructor(
    readonly limits: FileLimits,
    private readonly backend: Backend,
    private readonly root: DirNode = newDir(),
  ) {
    walk(root, (node) => {
      this.count++;
      if (node.kind === "file") this.used += node.size;
    });
  }

  /** Bytes and entries in use. */
  usage(): { bytes: number; entries: number } {
    return { bytes: this.used, entries: this.count };
  }

  stat(path: string): EntryInfo {
    this.allow(path);
    const node = this.find(path);
    return { kind: node.kind, size: node.kind === "file" ? node.size : 0, mtimeMs: node.mtimeMs, birthtimeMs: node.birthtimeMs };
  }

  readDir(path: string): DirEntry[] {
    this.allow(path);
    const node = this.find(path);
    if (node.kind !== "dir") throw new FileOpError("ENOTDIR");
    return [...node.entries].map(([name, entry]) => ({ name, kind: entry.kind })).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /** Every file and directory below `path` (which must be a directory), parents first. */
  walk(path: string): Array<{ path: string; kind: EntryKind }> {
    this.allow(path);
    const node = this.find(path);
    if (node.kind !== "dir") throw new FileOpError("ENOTDIR");
    const found: Array<{ path: string; kind: EntryKind }> = [];
    const stack: Array<[DirNode, string]> = [[node, path]];
    while (stack.length > 0) {
      const [dir, at] = stack.pop()!;
      for (const [name, entry] of dir.entries) {
        const child = join(at, name);
        found.push({ path: child, kind: entry.kind });
        if (entry.kind === "dir") stack.push([entry, child]);
      }
    }
    // Parents first: a directory is found (in its parent's listing) before it is listed itself.
    return found;
  }

  /** The file's contents as they are now (later writes do not change what it reads). */
  async open(path: string): Promise<FileReader> {
    this.allow(path);
    const node = this.find(path);
    if (node.kind !== "file") throw new FileOpError("EISDIR");
    return this.backend.read(path, node);
  }

  /**
   * Starts a write of `size` bytes: everything that can be checked now is (the limits with what is
   * in use and reserved), and the bytes are held against the limits until the write ends.
   */
  async beginWrite(path: string, size: number, mode: WriteMode): Promise<PendingWrite> {
    this.allow(path);
    const existing = this.checkWritable(path, mode);
    const held = this.hold(existing, size, mode === "append");
    let sink: ContentSink;
    try {
      sink = await this.backend.sink(path, existing, mode === "append");
    } catch (error) {
      held.release();
      throw error;
    }
    let received = 0;
    let over = false;
    const end = async (commit: boolean) => {
      if (over) {
        if (commit) throw new FileOpError("EINVAL", undefined, "the write is over");
        return;
      }
      over = true;
      held.release();
      if (!commit) return sink.discard();
      return this.exclusive(async () => {
        let node: FileNode;
        try {
          if (received !== size) throw new FileOpError("EINVAL", undefined, `${received} bytes written of ${size}`);
          const current = this.checkWritable(path, mode);
          this.checkLimits(current, size, mode === "append", 0, 0);
          node = current ?? newFile();
          await sink.commit(node);
        } catch (error) {
          await sink.discard();
          throw error;
        }
        this.committed(path, node, size, mode === "append");
      });
    };
    return {
      write: async (chunk) => {
        if (over) throw new FileOpError("EINVAL", undefined, "the write is over");
        received += chunk.byteLength;
        if (received > size) throw new FileOpError("EINVAL", undefined, `more than the ${size} bytes announced`);
        await sink.write(chunk);
      },
      commit: () => end(true),
      abort: () => end(false),
    };
  }

  /** Writes a whole file at once (the host's own writes). */
  async writeWhole(path: string, bytes: Uint8Array, mode: WriteMode): Promise<void> {
    const write = await this.beginWrite(path, bytes.byteLength, mode);
    try {
      for (let offset = 0; offset < bytes.byteLength; offset += FILE_CHUNK_BYTES) await write.write(bytes.subarray(offset, offset + FILE_CHUNK_BYTES));
    } catch (error) {
      await write.abort();
      throw error;
    }
    await write.commit();
  }

  async copy(from: string, to: string, exclusive: boolean): Promise<number> {
    const reader = await this.open(from);
    try {
      const write = await this.beginWrite(to, reader.size, exclusive ? "exclusive" : "replace");
      try {
        for (let chunk = await reader.next(); chunk; chunk = await reader.next()) await write.write(chunk);
      } catch (error) {
        await write.abort();
        throw error;
      }
      await write.commit();
      return reader.size;
    } finally {
      await reader.close();
    }
  }

  /** Makes a directory (and with `recursive` its missing parents); returns the first one made. */
  mkdir(path: string, recursive: boolean): Promise<string | undefined> {
    return this.exclusive(async () => {
      this.allow(path);
      const segments = segmentsOf(path);
      if (segments.length === 0) {
        if (recursive) return undefined;
        throw new FileOpError("EEXIST");
      }
      let dir = this.root;
      let at = "/";
      let first: string | undefined;
      for (let i = 0; i < segments.length; i++) {
        const name = segments[i]!;
        at = join(at, name);
        const last = i === segments.length - 1;
        const next = dir.entries.get(name);
        if (next) {
          if (last) {
            if (next.kind === "dir" && recursive) return first;
            throw new FileOpError("EEXIST");
          }
          if (next.kind !== "dir") throw new FileOpError("ENOTDIR");
          dir = next;
          continue;
        }
        if (!recursive && !last) throw new FileOpError("ENOENT");
        if (this.count + this.reservedEntries + 1 > this.limits.maxFiles) throw new FileOpError("ENOSPC", "maxFiles");
        await this.backend.mkdir(at);
        const made = newDir();
        dir.entries.set(name, made);
        dir.mtimeMs = made.mtimeMs;
        this.count++;
        first ??= at;
        dir = made;
      }
      return first;
    });
  }

  /**
   * Removes what `path` names. `what`: "file" (unlink: not a directory), "dir" (rmdir: an empty
   * directory), "any" (rm: a directory only with `recursive`). With `force` a missing path is no error.
   */
  remove(path: string, what: "file" | "dir" | "any", options: { recursive?: boolean; force?: boolean } = {}): Promise<void> {
    return this.exclusive(async () => {
      this.allow(path);
      if (path === "/") throw new FileOpError("EBUSY");
      let node: Node;
      try {
        node = this.find(path);
      } catch (error) {
        if (options.force && error instanceof FileOpError && (error.code === "ENOENT" || error.code === "ENOTDIR")) return;
        throw error;
      }
      if (what === "file" && node.kind === "dir") throw new FileOpError("EISDIR");
      if (what === "dir" && node.kind !== "dir") throw new FileOpError("ENOTDIR");
      if (what === "dir" && node.kind === "dir" && node.entries.size > 0) throw new FileOpError("ENOTEMPTY");
      if (what === "any" && node.kind === "dir" && !options.recursive) throw new FileOpError("EISDIR");
      // Counted before anything changes, so that no failure can leave the counts behind the tree.
      let entries = 1;
      let bytes = node.kind === "file" ? node.size : 0;
      walk(node, (gone) => {
        entries++;
        if (gone.kind === "file") bytes += gone.size;
      });
      await this.backend.remove(path, node.kind);
      this.detach(path);
      this.count -= entries;
      this.used -= bytes;
    });
  }

  rename(from: string, to: string): Promise<void> {
    return this.exclusive(async () => {
      this.allow(from);
      this.allow(to);
      if (from === "/" || to === "/") throw new FileOpError("EBUSY");
      const node = this.find(from);
      const target = this.parentDir(to);
      if (from === to) return;
      // A directory cannot move into itself.
      if (node.kind === "dir" && isWithin(to, from)) throw new FileOpError("EINVAL");
      // Nor so deep that what it holds passes the bounds every path is held to (a store reopened
      // from disk reads no deeper, and the host's walks must stay shallow).
      if (node.kind === "dir") {
        const { depth, bytes } = extentOf(node);
        if (segmentsOf(to).length + depth > MAX_DEPTH || utf8Bytes(to) + bytes > MAX_PATH_BYTES) throw new FileOpError("ENAMETOOLONG");
      }
      const replaced = target.entries.get(nameOf(to));
      if (replaced) {
        if (node.kind === "file" && replaced.kind === "dir") throw new FileOpError("EISDIR");
        if (node.kind === "dir" && replaced.kind === "file") throw new FileOpError("ENOTDIR");
        if (replaced.kind === "dir" && replaced.entries.size > 0) throw new FileOpError("ENOTEMPTY");
      }
      await this.backend.rename(from, to, replaced?.kind);
      this.detach(from);
      const now = Date.now();
      target.entries.set(nameOf(to), node);
      target.mtimeMs = now;
      if (replaced) {
        this.count--;
        if (replaced.kind === "file") this.used -= replaced.size;
      }
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.queue.catch(() => {});
    await this.backend.close();
  }

  /** Refuses the backend's reserved name (copy reaches here through open and beginWrite). */
  private allow(path: string): void {
    const reserved = this.backend.reserved;
    if (reserved !== undefined && isWithin(path, "/" + reserved)) throw new FileOpError("EPERM");
  }

  /** Runs changes of the tree one at a time (a disk backend's steps are asynchronous). */
  private exclusive<T>(change: () => Promise<T>): Promise<T> {
    const run = this.queue.then(() => {
      if (this.closed) throw new FileOpError("EIO", undefined, "the sandbox is closed");
      return change();
    });
    this.queue = run.catch(() => {});
    return run;
  }

  /** The existing file a write to `path` replaces or extends (undefined: it makes a new one). */
  private checkWritable(path: string, mode: WriteMode): FileNode | undefined {
    if (path === "/") throw new FileOpError("EISDIR");
    const existing = this.parentDir(path).entries.get(nameOf(path));
    if (existing?.kind === "dir") throw new FileOpError("EISDIR");
    if (existing && mode === "exclusive") throw new FileOpError("EEXIST");
    return existing;
  }

  /** Throws the limit a write of `size` bytes over `existing` would break, counting `reserved…` as taken. */
  private checkLimits(existing: FileNode | undefined, size: number, append: boolean, reservedBytes: number, reservedEntries: number): void {
    const old = existing?.size ?? 0;
    const after = append ? old + size : size;
    if (after > this.limits.maxFileBytes) throw new FileOpError("EFBIG", "maxFileBytes");
    if (this.used + reservedBytes - old + after > this.limits.quotaBytes) throw new FileOpError("ENOSPC", "quotaBytes");
    if (!existing && this.count + reservedEntries + 1 > this.limits.maxFiles) throw new FileOpError("ENOSPC", "maxFiles");
  }

  /**
   * Holds a write's room against the limits until it ends (other writes see it as taken): its
   * growth, for the one write that replaces a file (the old contents go at its commit); its whole
   * size for any other write to that file meanwhile, and for an append. Writes pending at once are
   * bounded too: each holds its bytes (in memory, or a temporary file and its descriptor) until it ends.
   */
  private hold(existing: FileNode | undefined, size: number, append: boolean): { release(): void } {
    if (this.pendingWrites >= MAX_PENDING_WRITES) throw new FileOpError("EMFILE", undefined, `more than ${MAX_PENDING_WRITES} writes at once`);
    const replaces = existing !== undefined && !append && !existing.replacing;
    this.checkLimits(existing, size, append, this.reservedBytes, this.reservedEntries);
    const bytes = replaces ? Math.max(0, size - existing.size) : size;
    if (this.used + this.reservedBytes + bytes > this.limits.quotaBytes) throw new FileOpError("ENOSPC", "quotaBytes");
    const entries = existing ? 0 : 1;
    this.reservedBytes += bytes;
    this.reservedEntries += entries;
    this.pendingWrites++;
    if (replaces) existing.replacing = true;
    let held = true;
    return {
      release: () => {
        if (!held) return;
        held = false;
        this.reservedBytes -= bytes;
        this.reservedEntries -= entries;
        this.pendingWrites--;
        if (replaces) existing.replacing = false;
      },
    };
  }

  /** Updates the tree once a write's bytes are `node`'s (the backend has set its contents). */
  private committed(path: string, node: FileNode, size: number, append: boolean): void {
    const dir = this.parentDir(path);
    const name = nameOf(path);
    const now = Date.now();
    const old = node.size;
    node.size = append ? old + size : size;
    node.mtimeMs = now;
    this.used += node.size - old;
    if (dir.entries.get(name) !== node) {
      dir.entries.set(name, node);
      dir.mtimeMs = now;
      this.count++;
    }
  }

  private find(path: string): Node {
    let node: Node = this.root;
    for (const name of segmentsOf(path)) {
      if (node.kind !== "dir") throw new FileOpError("ENOTDIR");
      const next: Node | undefined = node.entries.get(name);
      if (!next) throw new FileOpError("ENOENT");
      node = next;
    }
    return node;
  }

  /** The directory that holds (or would hold) `path`. */
  private parentDir(path: string): DirNode {
    const parent = this.find(parentOf(path));
    if (parent.kind !== "dir") throw new FileOpError("ENOTDIR");
    return parent;
  }

  private detach(path: string): void {
    const dir = this.parentDir(path);
    dir.entries.delete(nameOf(path));
    dir.mtimeMs = Date.now();
  }
}

function nameOf(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}

/** Calls `visit` for every node below `dir` (not `dir` itself); iterative, whatever the depth. */
function walk(node: Node, visit: (node: Node) => void): void {
  const stack: Node[] = [node];
  while (stack.length > 0) {
    const next = stack.pop()!;
    if (next.kind !== "dir") continue;
    for (const entry of next.entries.values()) {
      visit(entry);
      stack.push(entry);
    }
  }
}

/** How many levels below `dir` its deepest entry is, and the UTF-8 bytes of its longest path from `dir` ("/a/b"). */
function extentOf(dir: DirNode): { depth: number; bytes: number } {
  let depth = 0;
  let bytes = 0;
  const stack: Array<[DirNode, number, number]> = [[dir, 0, 0]];
  while (stack.length > 0) {
    const [at, level, length] = stack.pop()!;
    for (const [name, entry] of at.entries) {
      const below = length + 1 + utf8Bytes(name);
      depth = Math.max(depth, level + 1);
      bytes = Math.max(bytes, below);
      if (entry.kind === "dir") stack.push([entry, level + 1, below]);
    }
  }
  return { depth, bytes };
}

/** Writes of one sandbox pending at once (see FileStore.hold). */
const MAX_PENDING_WRITES = 256;
