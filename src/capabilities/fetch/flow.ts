/** Flow control for fetch bodies, shared by both halves (no zod here: the carrier imports it). */

/**
 * Response bytes the host may send before the carrier grants more: enough for a typical API reply
 * to arrive in one go, small enough that a sandbox that never reads does not make the host buffer.
 */
export const RESPONSE_WINDOW_BYTES = 256 * 1024;
/** Largest body chunk in one frame, either way. */
export const MAX_CHUNK_BYTES = 64 * 1024;
