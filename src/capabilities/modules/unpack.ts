/**
 * A package's tarball, unpacked by the host into a directory of its own — as data: no install
 * script ever runs, and only regular files and directories are written, at paths checked here
 * (no absolute paths, no "..", no links, no devices), so nothing lands outside the package.
 * Limits hold for the unpacked size (a gzip bomb stops at the limit) and the number of files.
 */
import { createGunzip } from "node:zlib";
import { mkdir, rename, rm, writeFile, mkdtemp, stat } from "node:fs/promises";
import { dirname, join } from "node:path";
import type * as Tar from "tar";
import type { ReadEntry } from "tar";
import { lazyModule } from "../../shared/lazy.js";
import { ModuleError } from "../../host/errors.js";

const tarModule = lazyModule<typeof Tar>("tar");

export interface UnpackLimits {
  maxUnpackedBytes: number;
  maxFiles: number;
}

export interface PackageFile {
  /** Inside the package, "/"-separated, without the tarball's top directory ("package/"). */
  path: string;
  data: Buffer;
}

/**
 * The files of a tarball, checked. `what` names the package in errors ("npm:x@1.0.0"). The
 * tarball is inflated and read as a stream, a chunk at a time: every byte and every entry counts
 * toward the limits as it comes, so a bomb stops at the limit without stalling the host.
 */
export async function readTarball(tarball: Buffer, limits: UnpackLimits, what: string): Promise<PackageFile[]> {
  const files = new Map<string, Buffer>();
  let entries = 0;
  let total = 0;
  let failure: ModuleError | undefined;
  const tooLarge = () => new ModuleError(`${what} unpacks to more than modules.maxUnpackedBytes (${limits.maxUnpackedBytes} bytes)`, "limit");
  const parser = new (tarModule().Parser)({
    strict: true,
    onReadEntry: (entry: ReadEntry) => {
      // Directories and repeated paths count too: a tarball of a million empty entries is a bomb as well.
      if (!failure && ++entries > limits.maxFiles) failure = new ModuleError(`${what} holds more than modules.maxPackageFiles (${limits.maxFiles}) entries`, "limit");
      failure ??= checkEntry(entry, what);
      if (failure || entry.type === "Directory") return entry.resume();
      const path = packagePath(entry.path);
      if (path === undefined) {
        failure = new ModuleError(`${what} holds a file at a path that would leave the package ("${shown(entry.path)}"): refused`, "invalid-package");
        return entry.resume();
      }
      const chunks: Buffer[] = [];
      entry.on("data", (chunk: Buffer) => {
        total += chunk.byteLength;
        if (total > limits.maxUnpackedBytes) failure ??= tooLarge();
        if (!failure) chunks.push(chunk);
      });
      // A later entry of the same path replaces the earlier, as tar would.
      entry.on("end", () => {
        if (!failure) files.set(path, Buffer.concat(chunks));
      });
    },
  });
  const gunzip = createGunzip();
  let inflated = 0;
  await new Promise<void>((resolve, reject) => {
    const fail = (error: ModuleError) => {
      gunzip.destroy();
      reject(error);
    };
    gunzip.on("data", (chunk: Buffer) => {
      // The tar stream's own headers count too (a little slack for them).
      inflated += chunk.byteLength;
      if (inflated > limits.maxUnpackedBytes + 1024 * 1024) return fail(tooLarge());
      if (failure) return fail(failure);
      parser.write(chunk);
    });
    gunzip.on("error", () => fail(new ModuleError(`the tarball of ${what} is not valid gzip`, "invalid-package")));
    gunzip.on("end", () => parser.end());
    parser.on("error", (error: Error) => fail(new ModuleError(`the tarball of ${what} is not a valid tar archive (${error.message})`, "invalid-package")));
    parser.on("close", () => resolve());
    gunzip.end(tarball);
  });
  if (failure) throw failure;
  if (!files.has("package.json")) throw new ModuleError(`${what} has no package.json at its top`, "invalid-package");
  return [...files].map(([path, data]) => ({ path, data }));
}

function checkEntry(entry: ReadEntry, what: string): ModuleError | undefined {
  switch (entry.type) {
    case "File":
    case "OldFile":
    case "ContiguousFile":
    case "Directory":
      return undefined;
    case "SymbolicLink":
    case "Link":
      return new ModuleError(`${what} holds a ${entry.type === "Link" ? "hard" : "symbolic"} link ("${shown(entry.path)}" → "${shown(entry.linkpath ?? "")}"): packages with links are refused`, "invalid-package");
    default:
      return new ModuleError(`${what} holds a ${entry.type} entry ("${shown(entry.path)}"): only files and directories are accepted`, "invalid-package");
  }
}

/**
 * The path inside the package, or undefined if it is unsafe. npm strips the tarball's top
 * directory, whatever its name ("package/" by convention).
 */
export function packagePath(raw: string): string | undefined {
  if (raw.includes("\0") || raw.includes("\\") || raw.startsWith("/") || /^[A-Za-z]:/.test(raw)) return undefined;
  const parts = raw.split("/").filter((part) => part !== "" && part !== ".");
  if (parts.length < 2 || parts.some((part) => part === "..")) return undefined;
  return parts.slice(1).join("/");
}

function shown(path: string): string {
  return path.length > 200 ? path.slice(0, 200) + "…" : path.replace(/[\0-\x1f]/g, "?");
}

/**
 * Writes the files under `dir/node_modules/<name>/` (the layout the bundler resolves in), all or
 * nothing: into a temporary directory renamed into place, so a concurrent process sees either no
 * package or a whole one. Returns the package's directory.
 */
export async function writePackage(dir: string, name: string, files: PackageFile[]): Promise<string> {
  const packageDir = join(dir, "node_modules", ...name.split("/"));
  await mkdir(dirname(dir), { recursive: true });
  const temporary = await mkdtemp(`${dir}.tmp-`);
  try {
    const root = join(temporary, "node_modules", ...name.split("/"));
    // A package.json of its own above the package stops the bundler looking further up the disk.
    await writeFile(join(temporary, "package.json"), '{"private":true}\n');
    for (const file of files) {
      const target = join(root, ...file.path.split("/"));
      await mkdir(dirname(target), { recursive: true });
      await writeFile(target, file.data, { mode: 0o644 });
    }
    try {
      await rename(temporary, dir);
    } catch (error) {
      // Another process unpacked the same package first: theirs is as good.
      if (!(await exists(join(packageDir, "package.json")))) throw error;
    }
  } finally {
    await rm(temporary, { recursive: true, force: true });
  }
  return packageDir;
}

export async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}
