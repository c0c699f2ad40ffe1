/**
 * The error codes file operations fail with, as Node (on Linux) names and numbers them, shared by
 * both halves: the host answers a call with a code, and the carrier makes the Node-style error.
 */
export const FILE_ERRORS = {
  ENOENT: { errno: -2, text: "no such file or directory" },
  EEXIST: { errno: -17, text: "file already exists" },
  EISDIR: { errno: -21, text: "illegal operation on a directory" },
  ENOTDIR: { errno: -20, text: "not a directory" },
  ENOTEMPTY: { errno: -39, text: "directory not empty" },
  ENOSPC: { errno: -28, text: "no space left on device" },
  EFBIG: { errno: -27, text: "file too large" },
  EINVAL: { errno: -22, text: "invalid argument" },
  ENAMETOOLONG: { errno: -36, text: "name too long" },
  EPERM: { errno: -1, text: "operation not permitted" },
  EBUSY: { errno: -16, text: "resource busy or locked" },
  EIO: { errno: -5, text: "i/o error" },
  EMFILE: { errno: -24, text: "too many open files" },
} as const;

export type FileErrorCode = keyof typeof FILE_ERRORS;

export const FILE_ERROR_CODES = Object.keys(FILE_ERRORS) as FileErrorCode[];

/** Node's message: `ENOENT: no such file or directory, open '/data/x.csv'` (and ` -> 'to'` for two paths). */
export function fileErrorMessage(code: FileErrorCode, syscall: string, path: string, dest?: string): string {
  return `${code}: ${FILE_ERRORS[code].text}, ${syscall} '${path}'${dest === undefined ? "" : ` -> '${dest}'`}`;
}

/**
 * A failed operation reaches the carrier as a CallError of this name whose message is the code,
 * and for a limit the limit's name after a space ("ENOSPC quotaBytes"): the carrier writes Node's
 * message with the path as the code gave it.
 */
export const FILE_ERROR_NAME = "FileError";
