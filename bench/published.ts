/**
 * Published figures quoted in /work/shared/ARCHITECTURE.md ("Performance model"): an April 2026
 * talk on embedding deno_runtime in an Elixir agent harness (Rust carrier over a Unix socket, fresh
 * V8 context per eval), on the speaker's machine. Static numbers, for orientation only.
 */
import type { Percentiles } from "./stats.js";

const ms = (p50: number, p99: number, max: number): Percentiles => ({ p50: p50 * 1000, p99: p99 * 1000, max: max * 1000 });

/** Keyed by this benchmark's row ids. */
export const PUBLISHED: Readonly<Record<string, Percentiles>> = {
  noop: ms(0.38, 1.47, 2.21),
  add: ms(0.378, 1.51, 2.55),
  concat: ms(0.388, 1.59, 4.92),
  object: ms(0.389, 1.52, 7.06),
  sha256: ms(0.753, 2.37, 7.26),
  json100: ms(0.843, 2.31, 9.12),
  isolation: ms(0.383, 1.48, 9.59),
  // The talk's "new worker, n=100": a fresh isolate in a running process, the nearest thing it has
  // to a cold sandbox create.
  "create-cold": ms(29.69, 52.23, 52.23),
  parallel10: ms(0.701, 4.67, 8.36),
};

export const PUBLISHED_NOTE =
  "published deno_runtime embedding figures quoted in ARCHITECTURE.md (April 2026 talk; Rust carrier over a Unix socket, " +
  "fresh V8 context per eval; another machine); its \"new worker, n=100\" is shown in the cold-create row";
