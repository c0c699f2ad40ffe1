/** Paddock's performance targets, checked against this run's Paddock columns. */
import type { Cell, Row, TargetResult } from "./report.js";
import { formatCell } from "./report.js";
import { formatInteger, formatMegabytes, formatPercentiles, type Percentiles } from "./stats.js";
import type { MediationResults } from "./fetch.js";

type Target =
  | { goal: string; row: string; kind: "latency"; limits: Partial<Percentiles> }
  | { goal: string; row: string; kind: "rate"; min: number }
  | { goal: string; row: string; kind: "memory"; maxBytes: number };

const MB = 1024 * 1024;

const TARGETS: readonly Target[] = [
  { goal: "noop p50 ≤ 150 µs and p99 ≤ 1 ms", row: "noop", kind: "latency", limits: { p50: 150, p99: 1000 } },
  { goal: "SHA-256 p50 ≤ 300 µs", row: "sha256", kind: "latency", limits: { p50: 300 } },
  { goal: "JSON-100 p50 ≤ 300 µs", row: "json100", kind: "latency", limits: { p50: 300 } },
  { goal: "warm Sandbox.create p50 ≤ 1 ms", row: "create-warm", kind: "latency", limits: { p50: 1000 } },
  { goal: "cold Sandbox.create p50 ≤ 40 ms", row: "create-cold", kind: "latency", limits: { p50: 40_000 } },
  { goal: "10 parallel p50 ≤ 400 µs", row: "parallel10", kind: "latency", limits: { p50: 400 } },
  { goal: "≥ 3,000 fresh-realm evals/s", row: "sustained", kind: "rate", min: 3000 },
  { goal: "idle sandbox RSS ≤ 40 MB", row: "idle-rss", kind: "memory", maxBytes: 40 * MB },
];

/** Checks every target in each of `columns` (id → label) that measured the target's row. */
export function checkTargets(rows: readonly Row[], columns: ReadonlyArray<{ id: string; label: string }>): TargetResult[] {
  return TARGETS.map((target) => {
    const row = rows.find((candidate) => candidate.id === target.row);
    const checks: TargetResult["checks"] = [];
    for (const column of columns) {
      const cell = row?.cells[column.id];
      const check = cell && checkCell(target, cell);
      if (check) checks.push({ column: column.label, ...check });
    }
    return { goal: target.goal, checks };
  });
}

function checkCell(target: Target, cell: Cell): { measured: string; met: boolean } | undefined {
  if (target.kind === "latency" && cell.kind === "latency") {
    const keys = Object.keys(target.limits) as Array<keyof Percentiles>;
    const met = keys.every((key) => cell.figures[key] <= target.limits[key]!);
    const measured = keys.map((key) => `${key} ${formatInteger(cell.figures[key])} µs`).join(", ");
    const also = cell.also ? ` (${cell.also.label}: ${formatPercentiles(cell.also.figures)} µs)` : "";
    return { measured: measured + also, met };
  }
  if (target.kind === "rate" && cell.kind === "rate") return { measured: formatCell(cell), met: cell.throughput.evalsPerSecond >= target.min };
  if (target.kind === "memory" && cell.kind === "memory") return { measured: formatMegabytes(cell.bytes), met: cell.bytes <= target.maxBytes };
  return undefined;
}

/** Target for the network capability: what mediation adds to a request, at p50. */
export function checkMediation(mediation: MediationResults): TargetResult {
  const limitUs = 150;
  return {
    goal: `sandboxed fetch adds ≤ ${limitUs} µs at p50 over the host's own request`,
    checks: [{ column: "sandboxed fetch", measured: `${formatInteger(mediation.addedP50Us)} µs added`, met: mediation.addedP50Us <= limitUs }],
  };
}
