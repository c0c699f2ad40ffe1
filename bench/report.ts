/** The results of a run, and their Markdown rendering: one table, its notes, and the targets. */
import type { Throughput } from "./measure.js";
import type { MediationResults } from "./fetch.js";
import { formatInteger, formatMegabytes, formatPercentiles, type Percentiles } from "./stats.js";

export interface LatencyCell {
  kind: "latency";
  figures: Percentiles;
  /** A second figure for the same row, shown in the targets (e.g. create without close). */
  also?: { label: string; figures: Percentiles };
}

export type Cell =
  | LatencyCell
  | { kind: "rate"; throughput: Throughput }
  | { kind: "memory"; bytes: number }
  /** The measurement has no mode, so it is printed once, in the column to the left. */
  | { kind: "as-left" }
  | { kind: "na"; reason: string };

export interface Column {
  id: string;
  label: string;
  note: string;
}

export interface Row {
  id: string;
  title: string;
  cells: Record<string, Cell>;
}

export interface Machine {
  cpu: string;
  cores: number;
  memoryBytes: number;
  os: string;
  node: string;
  deno: string;
  loadAverageAtStart: number[];
  loadAverageAtEnd?: number[];
  /** Fractions of all cores' time during the run: busy at all, and busy with other processes. */
  cpuDuringRun?: { busy: number; others: number };
}

export interface TargetResult {
  goal: string;
  /** One entry per Paddock column the target was checked against. */
  checks: Array<{ column: string; measured: string; met: boolean }>;
}

export interface Results {
  quick: boolean;
  startedAt: string;
  durationSeconds: number;
  machine: Machine;
  columns: Column[];
  rows: Row[];
  notes: string[];
  targets: TargetResult[];
  mediation: MediationResults;
}

export function machineLine(machine: Machine): string {
  return (
    `Machine: ${machine.cpu}, ${machine.cores} cores, ${(machine.memoryBytes / 1024 ** 3).toFixed(1)} GiB RAM, ${machine.os}; ` +
    `Node ${machine.node}, ${machine.deno}; load average (1/5/15 min) at start ${loads(machine.loadAverageAtStart)}` +
    (machine.loadAverageAtEnd ? `, at end ${loads(machine.loadAverageAtEnd)}` : "") +
    (machine.cpuDuringRun
      ? `; CPU busy during the run ${percent(machine.cpuDuringRun.busy)} of all ${machine.cores} cores, ${percent(machine.cpuDuringRun.others)} by other processes (noise)`
      : "")
  );
}

export function renderMarkdown(results: Results): string {
  const lines: string[] = [];
  lines.push(`## Paddock benchmark${results.quick ? " (--quick: small samples, indicative only)" : ""}`, "");
  lines.push(machineLine(results.machine), "");
  lines.push(tableLine(["scenario", ...results.columns.map((column) => column.label)]));
  lines.push(tableLine(["---", ...results.columns.map(() => "---")]));
  for (const row of results.rows) {
    lines.push(tableLine([row.title, ...results.columns.map((column) => formatCell(row.cells[column.id]))]));
  }
  lines.push("", "Columns:");
  for (const column of results.columns) lines.push(`- **${column.label}**: ${column.note}`);
  lines.push("", "Notes:");
  for (const note of results.notes) lines.push(`- ${note}`);
  lines.push("", ...renderMediation(results.mediation));
  lines.push("", "### Targets (Paddock)", "");
  for (const target of results.targets) {
    const checks = target.checks.map((check) => `${check.column}: ${check.measured} → **${check.met ? "met" : "not met"}**`);
    lines.push(`- ${target.goal} — ${checks.length > 0 ? checks.join("; ") : "not measured"}`);
  }
  lines.push("", `Run took ${results.durationSeconds.toFixed(1)} s.`);
  return lines.join("\n");
}

/** The network mediation table: a sandboxed fetch against the host's own request. */
export function renderMediation(mediation: MediationResults, target?: TargetResult): string[] {
  const lines = ["### Network mediation (sandboxed fetch to a loopback server)", ""];
  lines.push(tableLine(["measurement", "p50 / p99 / max (µs)"]), tableLine(["---", "---"]));
  for (const row of mediation.rows) lines.push(tableLine([row.title, formatPercentiles(row.figures)]));
  lines.push("", `Added by mediation at p50: **${formatInteger(mediation.addedP50Us)} µs** (sandboxed minus the host's own request; a ${mediation.bodyBytes}-byte JSON body, same agent pace for every row).`);
  if (target) for (const check of target.checks) lines.push(`- ${target.goal} — ${check.measured} → **${check.met ? "met" : "not met"}**`);
  return lines;
}

export function formatCell(cell: Cell | undefined): string {
  if (!cell) return "n/a";
  switch (cell.kind) {
    case "latency":
      return formatPercentiles(cell.figures);
    case "rate":
      return `${formatInteger(cell.throughput.evalsPerSecond)} evals/s`;
    case "memory":
      return formatMegabytes(cell.bytes);
    case "as-left":
      return "← same";
    case "na":
      return "n/a";
  }
}

function percent(fraction: number): string {
  return `${Math.round(fraction * 100)}%`;
}

function loads(averages: number[]): string {
  return averages.map((x) => x.toFixed(2)).join(" / ");
}

function tableLine(cells: string[]): string {
  return `| ${cells.map((cell) => cell.replaceAll("|", "\\|")).join(" | ")} |`;
}
