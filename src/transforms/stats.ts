/** A transform's running totals (Transform.stats()). */
import { BATCH_DURATION_BUCKETS, bucketMiddleUs } from "../protocol/batch.js";
import type { BatchOutcome, TransformFailure } from "./runner.js";

export interface TransformStats {
  /** Messages given to the transform. */
  messagesIn: number;
  /** Messages whose result was a value (not undefined or null). */
  messagesOut: number;
  /** Messages whose result was undefined or null: filtered out. */
  dropped: number;
  /** Messages that failed, by the error's name ("TypeError", "TimeoutError", "MemoryLimitError"…). */
  failed: Record<string, number>;
  batches: number;
  /** Carriers replaced after a message killed them (or they crashed). */
  carrierRestarts: number;
  /** Time of one message in the carrier (the function, and its result's encoding), in µs; within 5%. */
  p50Us: number;
  p99Us: number;
  /** Host time spent encoding messages and decoding results, per message, in µs. */
  hostUsPerMessage: number;
  /** Carrier CPU time, per message, in µs. */
  carrierCpuUsPerMessage: number;
  /** The version of the function new batches run (1, then +1 per update()). */
  version: number;
}

export class StatsCollector {
  private messagesIn = 0;
  private messagesOut = 0;
  private dropped = 0;
  /** By error name, which is the carrier's (or user code's) to choose: no prototype to collide with. */
  private readonly failed: Record<string, number> = Object.create(null) as Record<string, number>;
  private batches = 0;
  private restarts = 0;
  private hostUs = 0;
  private carrierCpuMs = 0;
  private readonly durations = new Float64Array(BATCH_DURATION_BUCKETS);

  /** Host time spent on the transform's own work. */
  addHostTime(us: number): void {
    this.hostUs += us;
  }

  /** A batch of `count` messages: its outcome, and the messages refused before it ran. */
  add(outcome: BatchOutcome, count: number, nullCount: number, refused: Iterable<TransformFailure> = []): void {
    this.batches++;
    this.messagesIn += count;
    this.restarts += outcome.restarts;
    this.carrierCpuMs += outcome.cpuMs;
    let failures = 0;
    for (const failure of [...outcome.failures.values(), ...refused]) {
      this.failed[failure.name] = (this.failed[failure.name] ?? 0) + 1;
      failures++;
    }
    const dropped = outcome.empty.size + nullCount;
    this.dropped += dropped;
    this.messagesOut += count - failures - dropped;
    for (const [bucket, times] of outcome.durations) this.durations[bucket]! += times;
  }

  snapshot(version: number): TransformStats {
    const per = (total: number) => (this.messagesIn === 0 ? 0 : Math.round((total / this.messagesIn) * 1000) / 1000);
    return {
      messagesIn: this.messagesIn,
      messagesOut: this.messagesOut,
      dropped: this.dropped,
      failed: { ...this.failed },
      batches: this.batches,
      carrierRestarts: this.restarts,
      p50Us: this.percentile(0.5),
      p99Us: this.percentile(0.99),
      hostUsPerMessage: per(this.hostUs),
      carrierCpuUsPerMessage: per(this.carrierCpuMs * 1000),
      version,
    };
  }

  private percentile(q: number): number {
    let total = 0;
    for (const count of this.durations) total += count;
    if (total === 0) return 0;
    let seen = 0;
    for (let bucket = 0; bucket < this.durations.length; bucket++) {
      seen += this.durations[bucket]!;
      if (seen >= q * total) return Math.round(bucketMiddleUs(bucket) * 10) / 10;
    }
    return 0;
  }
}
