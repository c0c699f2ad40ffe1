import type { z } from "zod";
import { lazySchema } from "../../shared/schema.js";
import { MAX_PATH_BYTES, isNormalPath } from "./path.js";

/**
 * What the carrier asks of the host for one file operation. Paths are normal (see path.ts): the
 * carrier normalizes them, the host accepts nothing else. A write's bytes travel in the call
 * frame's body ("inline", one chunk at most) or as stream messages after it ("stream"), never more
 * than `size`.
 */
export const fileMessages = {
  op: lazySchema((z) => {
    const path = z.string().min(1).max(MAX_PATH_BYTES).refine(isNormalPath, "not a normal path");
    return z.discriminatedUnion("op", [
      z.strictObject({ op: z.literal("read"), path }),
      z.strictObject({ op: z.literal("write"), path, mode: z.enum(["replace", "append", "exclusive"]), size: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER), body: z.enum(["inline", "stream"]) }),
      z.strictObject({ op: z.literal("stat"), path }),
      z.strictObject({ op: z.literal("readdir"), path }),
      z.strictObject({ op: z.literal("mkdir"), path, recursive: z.boolean() }),
      z.strictObject({ op: z.literal("remove"), path, what: z.enum(["file", "dir", "any"]), recursive: z.boolean(), force: z.boolean() }),
      z.strictObject({ op: z.literal("rename"), path, to: path }),
      z.strictObject({ op: z.literal("copy"), path, to: path, exclusive: z.boolean() }),
    ]);
  }),
};
export type FileOp = z.infer<ReturnType<typeof fileMessages.op>>;

/** The host's answers, by operation. A read's bytes follow in the reply's body (up to one chunk) or as stream messages. */
export interface FileReplies {
  read: { size: number };
  stat: { kind: "file" | "dir"; size: number; mtimeMs: number; birthtimeMs: number };
  readdir: { entries: Array<[string, "file" | "dir"]> };
  mkdir: { first: string | null };
}
