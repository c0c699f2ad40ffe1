import type { z } from "zod";
import { lazySchema } from "../../shared/schema.js";

/** A tool's dotted name ("github.create_issue") is at most this long. */
export const MAX_TOOL_NAME_CHARS = 1024;

/**
 * What the carrier asks of the host for one tool call. The input travels V8-serialized in the
 * call frame's body (none: the input is undefined); the result comes back the same way.
 */
export const toolMessages = {
  call: lazySchema((z) => z.strictObject({ tool: z.string().min(1).max(MAX_TOOL_NAME_CHARS) })),
};
export type ToolCallArgs = z.infer<ReturnType<typeof toolMessages.call>>;

/** The tools a sandbox's realms offer, sent to each of its carriers before the first eval that needs them. */
export interface ToolCatalogMessage {
  t: "tools";
  /** Each tool's path under the `tools` global. */
  paths: string[][];
  /** Inputs larger than this (structured-clone bytes) are refused in the carrier, before a frame is made. */
  maxInputBytes: number;
}
