/**
 * The disk backend: a sandbox's files are a directory of the host. The sandbox's paths are normal
 * (path.ts), so joined to the directory they name something inside it; and since anyone with
 * access to the directory could plant a symbolic link in it, no link is ever followed: the tree is
 * loaded with lstat (links, devices, sockets and FIFOs are left out: the sandbox never sees them),
 * every directory on the way to a path is checked with lstat before it is used, and files are
 * opened with O_NOFOLLOW (and O_NONBLOCK, so a FIFO cannot hang the host) and checked with fstat.
 *
 * Writes go to a temporary file in a directory of the backend's own inside `dir` (`.paddock`, so
 * that a rename stays on one file system), renamed over the file at the commit or, for an append,
 * copied to its end: the host never holds a write's bytes in memory.
 */
import { constants, type Dirent } from "node:fs";
import { lstat, mkdir, open, readdir, realpath, rename, rm, unlink, type FileHandle } from "node:fs/promises";
import { randomBytes } from "node:crypto";
import { FILE_CHUNK_BYTES } from "./flow.js";
import { FILE_ERRORS, type FileErrorCode } from "./codes.js";
import { MAX_DEPTH, segmentsOf } from "./path.js";
import { FileOpError, FileStore, newDir, type Backend, type ContentSink, type DirNode, type FileLimits, type FileReader } from "./store.js";

const RESERVED = ".paddock";
/** Directories opened by a live store of this process: two sandboxes never share one. */
const inUse = new Set<string>();

/**
 * Opens the store of directory `dir` (made if missing). Fails with a TypeError if another open
 * sandbox of this process uses it, or if it holds more entries than `maxFiles` allows to load.
 */
export async function openDiskStore(dir: string, limits: FileLimits): Promise<FileStore> {
  await mkdir(dir, { recursive: true });
  const root = await realpath(dir);
  if (!(await lstat(root)).isDirectory()) throw new TypeError("files.dir is not a directory");
  if (inUse.has(root)) throw new TypeError("files.dir is in use by another open sandbox");
  inUse.add(root);
  try {
    const temporary = `${root}/${RESERVED}`;
    // What a write that never committed (a host that died mid-way) left there.
    await rm(temporary, { recursive: true, force: true });
    await mkdir(temporary, { mode: 0o700 });
    const tree = await load(root, limits);
    return new FileStore(limits, new DiskBackend(root, temporary), tree);
  } catch (error) {
    inUse.delete(root);
    throw error;
  }
}

/** The directory's files and directories, read with lstat, no link followed. */
async function load(root: string, limits: FileLimits): Promise<DirNode> {
  // A directory filled by someone else with millions of entries must not stall Sandbox.create.
  const maxEntries = limits.maxFiles * 2 + 1000;
  let entries = 0;
  const visit = async (host: string, depth: number): Promise<DirNode> => {
    const info = await lstat(host);
    const dir = newDir(info.mtimeMs);
    dir.birthtimeMs = info.birthtimeMs;
    const listed: Dirent[] = await readdir(host, { withFileTypes: true });
    // Deeper than any path the sandbox may name: put there from outside. Refused rather than left
    // uncounted (bytes no quota sees).
    if (depth >= MAX_DEPTH && listed.some((entry) => entry.isDirectory() || entry.isFile())) {
      throw new TypeError(`files.dir holds entries deeper than ${MAX_DEPTH} levels, more than a sandbox's paths may have`);
    }
    for (const entry of listed) {
      if (depth === 0 && entry.name === RESERVED) continue;
      if (++entries > maxEntries) throw new TypeError(`files.dir holds more than ${maxEntries} entries, more than files.maxFiles allows`);
      const path = `${host}/${entry.name}`;
      if (entry.isDirectory()) {
        dir.entries.set(entry.name, await visit(path, depth + 1));
      } else if (entry.isFile()) {
        const stats = await lstat(path);
        dir.entries.set(entry.name, { kind: "file", size: stats.size, mtimeMs: stats.mtimeMs, birthtimeMs: stats.birthtimeMs });
      }
    }
    return dir;
  };
  return visit(root, 0);
}

const READ_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;
const APPEND_FLAGS = constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW | constants.O_NONBLOCK;

class DiskBackend implements Backend {
  readonly reserved = RESERVED;
  private closed = false;

  constructor(
    private readonly root: string,
    private readonly temporary: string,
  ) {}

  read(path: string): Promise<FileReader> {
    return guarded(async () => {
      const handle = await this.openFile(path, READ_FLAGS);
      const size = (await handle.stat()).size;
      let position = 0;
      return {
        size,
        next: () =>
          guarded(async () => {
            if (position >= size) return undefined;
            const piece = new Uint8Array(Math.min(FILE_CHUNK_BYTES, size - position));
            let filled = 0;
            while (filled < piece.byteLength) {
              const { bytesRead } = await handle.read(piece, filled, piece.byteLength - filled, position + filled);
              // The file shrank under the reader (changed from outside): it reads what there is.
              if (bytesRead === 0) break;
              filled += bytesRead;
            }
            position = filled < piece.byteLength ? size : position + filled;
            return filled < piece.byteLength ? piece.subarray(0, filled) : piece;
          }),
        close: () => handle.close(),
      };
    });
  }

  /**
   * The bytes go to a new file under a random name in the backend's own directory. At the commit
   * a replacing write renames it over the file; an append copies it to the file's end (cut back
   * to its old length if that fails).
   */
  sink(path: string, _node: unknown, append: boolean): Promise<ContentSink> {
    return guarded(async () => {
      const temporary = `${this.temporary}/${randomBytes(12).toString("hex")}`;
      const handle = await open(temporary, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
      let isOpen = true;
      const closeOnce = async () => {
        if (!isOpen) return;
        isOpen = false;
        await handle.close();
      };
      const discard = async () => {
        await closeOnce().catch(() => {});
        await unlink(temporary).catch(() => {});
      };
      return {
        write: (chunk) => guarded(async () => void (await handle.write(chunk))),
        commit: () =>
          guarded(async () => {
            await closeOnce();
            if (!append) {
              await this.checkParents(path);
              return rename(temporary, this.hostPath(path));
            }
            try {
              await this.appendFrom(temporary, path);
            } finally {
              await discard();
            }
          }),
        discard,
      };
    });
  }

  mkdir(path: string): Promise<void> {
    return guarded(async () => {
      await this.checkParents(path);
      await mkdir(this.hostPath(path));
    });
  }

  remove(path: string, kind: "file" | "dir"): Promise<void> {
    return guarded(async () => {
      await this.checkParents(path);
      // rm never follows a link, at the top or inside.
      if (kind === "file") await unlink(this.hostPath(path));
      else await rm(this.hostPath(path), { recursive: true });
    });
  }

  rename(from: string, to: string): Promise<void> {
    return guarded(async () => {
      await this.checkParents(from);
      await this.checkParents(to);
      await rename(this.hostPath(from), this.hostPath(to));
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    inUse.delete(this.root);
    await rm(this.temporary, { recursive: true, force: true }).catch(() => {});
  }

  private async appendFrom(temporary: string, path: string): Promise<void> {
    const target = await this.openFile(path, APPEND_FLAGS);
    const source = await open(temporary, READ_FLAGS);
    try {
      const before = (await target.stat()).size;
      try {
        const chunk = new Uint8Array(FILE_CHUNK_BYTES);
        for (let read = await source.read(chunk, 0, chunk.byteLength); read.bytesRead > 0; read = await source.read(chunk, 0, chunk.byteLength)) {
          await target.write(chunk.subarray(0, read.bytesRead));
        }
      } catch (error) {
        await target.truncate(before);
        throw error;
      }
    } finally {
      await source.close();
      await target.close();
    }
  }

  /** Opens a file of the store, refusing links on the way and anything but a regular file at the end. */
  private async openFile(path: string, flags: number): Promise<FileHandle> {
    await this.checkParents(path);
    const handle = await open(this.hostPath(path), flags, 0o600);
    if (!(await handle.stat()).isFile()) {
      await handle.close();
      throw new FileOpError("EIO", undefined, "not a regular file on disk");
    }
    return handle;
  }

  /** Every directory above `path` must be a directory on disk, not a link planted there. */
  private async checkParents(path: string): Promise<void> {
    let host = this.root;
    for (const name of segmentsOf(path).slice(0, -1)) {
      host += "/" + name;
      const info = await lstat(host);
      if (!info.isDirectory()) throw new FileOpError("EIO", undefined, "a directory on disk was replaced");
    }
  }

  private hostPath(path: string): string {
    return this.root + path;
  }
}

/**
 * The disk's errors as the store's: the codes the tree would have given (a change made from
 * outside) keep theirs, anything else is EIO; never the host's message, which names host paths.
 */
async function guarded<T>(operation: () => Promise<T>): Promise<T> {
  try {
    return await operation();
  } catch (error) {
    if (error instanceof FileOpError) throw error;
    const code = (error as { code?: unknown } | undefined)?.code;
    const known: FileErrorCode = typeof code === "string" && Object.hasOwn(FILE_ERRORS, code) ? (code as FileErrorCode) : "EIO";
    throw new FileOpError(known, undefined, `the host's file system failed (${typeof code === "string" ? code : "unknown"})`);
  }
}
