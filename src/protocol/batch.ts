/**
 * Batches: a kept function called once per item, items and results crossing as JSON texts, one per
 * line (JSON.stringify never writes a raw line break, so a line is always one whole value). JSON,
 * not V8 serialization, because both sides encode and decode it 2–3× faster for the records
 * streams carry (see ARCHITECTURE.md), and a line can be handed on without being parsed.
 */

/** Items one batch may hold. */
export const MAX_BATCH_ITEMS = 1_000_000;

/** The carrier reports a batch's progress after this much work, or this much text to report. */
export const BATCH_REPORT_MS = 4;
export const BATCH_REPORT_CHARS = 256 * 1024;

/**
 * The node:vm timeout around a chunk of items: a chunk stops starting items after half the per-item
 * limit, so an item stopped by this has run at least the whole limit. It is also the longest a
 * carrier is silent while it runs a batch (see the host's Carrier).
 */
export function chunkTimeoutMs(itemLimitMs: number): number {
  return Math.ceil(itemLimitMs * 1.5);
}

/**
 * Per-item times travel as a histogram: bucket b holds times in [1.1^b, 1.1^(b+1)) µs, so a
 * percentile read from it is within 5% of the true one.
 */
export const BATCH_DURATION_BUCKETS = 256;
const GROWTH = Math.log(1.1);

export function durationBucket(us: number): number {
  return us <= 1 ? 0 : Math.min(BATCH_DURATION_BUCKETS - 1, Math.floor(Math.log(us) / GROWTH));
}

/** The middle (geometric) of a bucket, in µs. */
export function bucketMiddleUs(bucket: number): number {
  return Math.exp((bucket + 0.5) * GROWTH);
}
