/** Sizes and flow control for fetch, shared by both halves (no zod here: the carrier imports it). */

/** Bounds of a request's head on the wire; the carrier refuses bigger ones with a TypeError. */
export const REQUEST_HEAD_LIMITS = {
  urlChars: 64 * 1024,
  methodChars: 32,
  headers: 256,
  headerNameChars: 256,
  headerValueChars: 64 * 1024,
  /** All names and values together. */
  headerChars: 256 * 1024,
} as const;

/**
 * Response bytes the host may send before the carrier grants more: enough for a typical API reply
 * to arrive in one go, small enough that a sandbox that never reads does not make the host buffer.
 */
export const RESPONSE_WINDOW_BYTES = 256 * 1024;
/** Largest body chunk in one frame, either way. */
export const MAX_CHUNK_BYTES = 64 * 1024;
