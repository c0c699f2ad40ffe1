/**
 * Virtual paths of a sandbox's files, shared by both halves (no zod, no Node: the carrier imports
 * it). `/` is the sandbox's root and also its working directory; `..` stops at the root, as in a
 * chroot. A normal path is absolute, has no empty, `.` or `..` segment and no trailing slash: the
 * host accepts nothing else from a carrier, and only a normal path is ever joined to a directory.
 */

/** Longest segment and whole path, in UTF-8 bytes (Linux's NAME_MAX and PATH_MAX). */
export const MAX_NAME_BYTES = 255;
export const MAX_PATH_BYTES = 4096;
/** Deepest nesting below the root. */
export const MAX_DEPTH = 128;

/** Why a path cannot name a file: the Node error code it fails with. */
export type PathProblem = "ENAMETOOLONG" | "ERR_INVALID_ARG_VALUE";

/**
 * The normal form of `path` (a relative one resolves against `/`), or the problem with it. Every
 * character but `/` and NUL is part of a name: `\`, `%2e%2e` and `C:` are literal names, never
 * separators or escapes.
 */
export function normalizePath(path: string): string | PathProblem {
  if (path.includes("\0")) return "ERR_INVALID_ARG_VALUE";
  // (Bounded before it is split: a huge string is refused without walking it.)
  if (path.length > MAX_PATH_BYTES * 2) return "ENAMETOOLONG";
  const segments: string[] = [];
  for (const segment of path.split("/")) {
    if (segment === "" || segment === ".") continue;
    if (segment === "..") segments.pop();
    else if (utf8Bytes(segment) > MAX_NAME_BYTES) return "ENAMETOOLONG";
    else segments.push(segment);
  }
  if (segments.length > MAX_DEPTH) return "ENAMETOOLONG";
  const normal = "/" + segments.join("/");
  return utf8Bytes(normal) > MAX_PATH_BYTES ? "ENAMETOOLONG" : normal;
}

/** True if `path` is already in normal form (what the host requires of a carrier). */
export function isNormalPath(path: string): boolean {
  return normalizePath(path) === path;
}

/** The segments of a normal path (none for the root). */
export function segmentsOf(path: string): string[] {
  return path === "/" ? [] : path.slice(1).split("/");
}

/** The parent of a normal path (the root is its own). */
export function parentOf(path: string): string {
  const cut = path.lastIndexOf("/");
  return cut <= 0 ? "/" : path.slice(0, cut);
}

export function join(dir: string, name: string): string {
  return dir === "/" ? `/${name}` : `${dir}/${name}`;
}

/** True if normal path `path` is `ancestor` or lies below it. */
export function isWithin(path: string, ancestor: string): boolean {
  return path === ancestor || ancestor === "/" || path.startsWith(ancestor + "/");
}

export function utf8Bytes(text: string): number {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x80) bytes += 1;
    else if (code < 0x800) bytes += 2;
    // A surrogate pair is one 4-byte character; a lone surrogate becomes U+FFFD (3 bytes).
    else if (code >= 0xd800 && code <= 0xdbff && i + 1 < text.length && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      bytes += 4;
      i++;
    } else bytes += 3;
  }
  return bytes;
}
