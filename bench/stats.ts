/** Latency samples, their summary, and how numbers are printed. */

/** Latency percentiles in microseconds. */
export interface Percentiles {
  p50: number;
  p99: number;
  max: number;
}

/** Percentiles of samples measured in this run. */
export interface Summary extends Percentiles {
  n: number;
  min: number;
  mean: number;
}

/** Nearest-rank percentiles: every reported figure is a latency that was actually observed. */
export function summarize(samplesUs: readonly number[]): Summary {
  if (samplesUs.length === 0) throw new RangeError("summarize: no samples");
  const sorted = [...samplesUs].sort((a, b) => a - b);
  const rank = (p: number) => sorted[Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length))) - 1]!;
  const total = sorted.reduce((sum, x) => sum + x, 0);
  return {
    n: sorted.length,
    p50: round1(rank(50)),
    p99: round1(rank(99)),
    max: round1(sorted[sorted.length - 1]!),
    min: round1(sorted[0]!),
    mean: round1(total / sorted.length),
  };
}

/** Microseconds since `startMs` (a performance.now() reading). */
export function elapsedUs(startMs: number): number {
  return (performance.now() - startMs) * 1000;
}

const integer = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
const oneDecimal = new Intl.NumberFormat("en-US", { minimumFractionDigits: 1, maximumFractionDigits: 1 });

export function formatInteger(value: number): string {
  return integer.format(value);
}

/** "p50 / p99 / max" in whole microseconds. */
export function formatPercentiles(summary: Percentiles): string {
  return `${formatInteger(summary.p50)} / ${formatInteger(summary.p99)} / ${formatInteger(summary.max)}`;
}

export function formatMegabytes(bytes: number): string {
  return `${oneDecimal.format(bytes / 1024 / 1024)} MB`;
}

function round1(value: number): number {
  return Math.round(value * 10) / 10;
}
