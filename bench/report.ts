/** The results of a run, and their Markdown rendering: one table, its notes, and the targets. */
import type { Throughput } from "./measure.js";
import type { MediationResults } from "./fetch.js";
import { renderTransforms, type TransformResults } from "./transforms.js";
import { renderApps, type AppResults } from "./apps.js";
import type { ToolCallResults } from "./tools.js";
import type { ModulesResults } from "./modules.js";
import type { Floor } from "./floor.js";
import type { Startup } from "./startup.js";
import { PHASE_TITLES, type Breakdown } from "./breakdown.js";
import { formatInteger, formatMegabytes, formatPercentiles, type Percentiles } from "./stats.js";

export interface LatencyCell {
  kind: "latency";
  figures: Percentiles;
  /** A second figure for the same row, kept in the JSON (e.g. create with close). */
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
  /** The figure and the limit it was held to, as printed. */
  measured: string;
  met: boolean;
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
  /** Absent in a `--fetch` run. */
  modules?: ModulesResults;
  toolCalls?: ToolCallResults;
  transforms?: TransformResults;
  apps?: AppResults;
  floor: Floor;
  startup: Startup;
  /** Where a noop eval's time goes, per Paddock column (pace). */
  breakdown: Array<{ column: string; phases: Breakdown }>;
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
  lines.push("", ...renderFloor(results.floor, results.startup));
  lines.push("", ...renderBreakdown(results));
  lines.push("", ...renderMediation(results.mediation));
  if (results.modules) lines.push("", ...renderModules(results.modules));
  if (results.toolCalls) lines.push("", ...renderToolCalls(results.toolCalls, results.floor));
  if (results.transforms) lines.push("", ...renderTransforms(results.transforms, results.floor?.syncPipe.backToBack.p50));
  if (results.apps) lines.push("", ...renderApps(results.apps));
  lines.push("", "### Targets (Paddock)", "");
  for (const target of results.targets) {
    lines.push(`- ${target.goal} — ${target.measured} → **${target.met ? "met" : "not met"}**`);
  }
  lines.push("", `Run took ${results.durationSeconds.toFixed(1)} s.`);
  return lines.join("\n");
}

/** The baselines every target is stated against, measured in this run. */
function renderFloor(floor: Floor, startup: Startup): string[] {
  return [
    "### Floor and start-up (same run)",
    "",
    tableLine(["measurement", "p50 / p99 / max (µs)"]),
    tableLine(["---", "---"]),
    tableLine(["sync-read echo, zero-permission Deno, one JSON line round trip, back-to-back", formatPercentiles(floor.syncPipe.backToBack)]),
    tableLine(["the same at agent pace (1 ms idle between lines)", formatPercentiles(floor.syncPipe.agentPace)]),
    tableLine(["async-read echo, back-to-back", formatPercentiles(floor.asyncPipe)]),
    tableLine(["empty `deno run` (the carrier's flags), spawn to exit", formatPercentiles(floor.emptyDeno)]),
    tableLine(["empty `node -e \"\"`, spawn to exit", formatPercentiles(floor.emptyNode)]),
    tableLine(["`node -e 'await import(\"paddock\")'`, spawn to exit", formatPercentiles(startup.importPackage)]),
    tableLine(["`paddock eval \"1+1\"`, spawn to exit", formatPercentiles(startup.cliEval)]),
  ];
}

/** Where a noop eval's time goes, phase by phase, at each pace (p50 of each phase). */
function renderBreakdown(results: Results): string[] {
  const columns = results.breakdown.map(({ column }) => results.columns.find((candidate) => candidate.id === column)?.label ?? column);
  const lines = ["### Where a noop eval's time goes (p50 per phase, µs; traced evals of `0`)", ""];
  lines.push(tableLine(["phase", ...columns]), tableLine(["---", ...columns.map(() => "---")]));
  for (const [phase, title] of Object.entries(PHASE_TITLES) as Array<[keyof Breakdown, string]>) {
    lines.push(tableLine([`${phase}: ${title}`, ...results.breakdown.map(({ phases }) => formatInteger(phases[phase]))]));
  }
  lines.push("", "Each phase's p50 is taken on its own, so the phases need not add up to the total's p50.");
  return lines;
}

/** The network mediation table: a sandboxed fetch against the host's own request. */
export function renderModules(modules: ModulesResults | undefined): string[] {
  if (!modules) return [];
  const lines = ["### Imports (a loopback npm registry serving real packages; agent pace)", ""];
  lines.push(tableLine(["measurement", "p50 / p99 / max (µs)"]), tableLine(["---", "---"]));
  for (const row of modules.rows) lines.push(tableLine([row.title, row.figures ? formatPercentiles(row.figures) : `n/a (${row.note ?? "not measured"})`]));
  lines.push("", `Idle RSS of a persistent sandbox's carrier with ten packages imported: ${modules.rssTenPackages === undefined ? "n/a" : formatMegabytes(modules.rssTenPackages)}.`);
  return lines;
}

export function renderToolCalls(toolCalls: ToolCallResults | undefined, floor: Floor | undefined): string[] {
  if (!toolCalls) return [];
  const lines = ["### Tool calls (a no-op host tool with a JSON Schema, agent pace)", ""];
  lines.push(tableLine(["measurement", "p50 / p99 / max (µs)"]), tableLine(["---", "---"]));
  for (const row of toolCalls.rows) lines.push(tableLine([row.title, formatPercentiles(row.figures)]));
  const goal = floor ? ` (goal: ≤ sync-pipe floor at agent pace + 100 µs = ${formatInteger(floor.syncPipe.agentPace.p50 + 100)} µs)` : "";
  lines.push("", `Added by a tool call at p50: **${formatInteger(toolCalls.addedP50Us)} µs** (sandboxed minus the host's own call)${goal}.`);
  return lines;
}

export function renderMediation(mediation: MediationResults): string[] {
  const lines = ["### Network mediation (sandboxed fetch to a loopback server)", ""];
  lines.push(tableLine(["measurement", "p50 / p99 / max (µs)"]), tableLine(["---", "---"]));
  for (const row of mediation.rows) lines.push(tableLine([row.title, formatPercentiles(row.figures)]));
  lines.push("", `Added by mediation at p50: **${formatInteger(mediation.addedP50Us)} µs** (sandboxed minus the host's own request; a ${mediation.bodyBytes}-byte JSON body, same agent pace for every row).`);
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
