/** The `files` option of Sandbox.create: where a sandbox's files live, and how much they may hold. */
import type { z } from "zod";
import { lazySchema } from "../../shared/schema.js";

const MiB = 1024 * 1024;

export const filesOptionsSchema = lazySchema((z) =>
  z.strictObject({
    /** A directory of the host holding the files (made if missing; one open sandbox at a time). Default: in memory. */
    dir: z.string().min(1).max(4096).optional(),
    /** Bytes of all files together. */
    quotaBytes: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).default(64 * MiB),
    /** Files and directories together. */
    maxFiles: z.number().int().min(0).max(10_000_000).default(10_000),
    /** Bytes of one file (default: the quota). */
    maxFileBytes: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
  }),
);

export type FilesOptions = z.input<ReturnType<typeof filesOptionsSchema>>;
export type ResolvedFilesOptions = z.output<ReturnType<typeof filesOptionsSchema>>;
