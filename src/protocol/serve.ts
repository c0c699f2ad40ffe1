/**
 * Sizes and flow control for apps' HTTP exchanges between host and carrier (see src/carrier/serve.ts),
 * shared by both halves: no zod here, the carrier imports it.
 */

/**
 * Body bytes either side may send before the other grants more: a typical request or page goes in
 * one window, and an app (or a client) that stops reading never makes the other side buffer more.
 */
export const EXCHANGE_WINDOW_BYTES = 256 * 1024;
/** Largest body chunk in one frame, either way. */
export const EXCHANGE_CHUNK_BYTES = 64 * 1024;
/** Credit is returned in batches of this many bytes. */
export const EXCHANGE_CREDIT_BYTES = EXCHANGE_WINDOW_BYTES / 4;

/** Bounds of a response's head as the app may send it; the carrier refuses bigger ones. */
export const RESPONSE_HEAD_LIMITS = {
  headers: 256,
  headerNameChars: 256,
  headerValueChars: 64 * 1024,
  /** All names and values together. */
  headerChars: 256 * 1024,
  statusTextChars: 512,
} as const;
