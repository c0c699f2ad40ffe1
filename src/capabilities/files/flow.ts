/** Sizes of file transfers, shared by both halves (no zod here: the carrier imports it). */

/** Largest piece of a file in one frame, either way: a 50 MB file never needs one frame. */
export const FILE_CHUNK_BYTES = 1024 * 1024;
/**
 * Bytes of a write the carrier may send ahead of the host storing them: enough to keep the pipe
 * busy, small enough that a sandbox writing a large file does not make the host buffer it.
 */
export const WRITE_WINDOW_BYTES = 4 * FILE_CHUNK_BYTES;
/** Entries one readdir may list (the count of files and directories is bounded anyway). */
export const MAX_DIR_ENTRIES = 1_000_000;
/** Reads of one sandbox whose bytes may be on their way to its carriers at once (see SandboxFiles.reads). */
export const READS_IN_FLIGHT = 16;
