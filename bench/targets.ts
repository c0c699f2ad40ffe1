/**
 * Paddock's performance targets. Each limit is computed from baselines measured in the same run
 * (the pipe floor, an empty Deno, an empty Node, QuickJS), because absolute figures differ 2×
 * between machines of this kind and between days on the same one.
 */
import type { Cell, Row, TargetResult } from "./report.js";
import { formatInteger, formatMegabytes } from "./stats.js";
import type { Floor } from "./floor.js";
import type { MediationResults } from "./fetch.js";
import type { ToolCallResults } from "./tools.js";
import type { Startup } from "./startup.js";
import type { ModulesResults } from "./modules.js";

const MB = 1024 * 1024;

/** What the targets are checked against: this run's measurements. */
export interface TargetInputs {
  rows: readonly Row[];
  /** Column ids of Paddock's two paces, and of the QuickJS baseline. */
  columns: { agent: string; backToBack: string; quickjs: string };
  floor: Floor;
  startup: Startup;
  mediation: MediationResults;
  modules: ModulesResults | undefined;
  toolCalls: ToolCallResults | undefined;
}

interface Check {
  goal: string;
  /** The measured figure and the limit it is held to, both already in the unit shown. */
  measured: number | undefined;
  limit: number;
  unit: "µs" | "evals/s" | "MB";
  /** "max": measured must not exceed the limit; "min": must reach it. */
  kind?: "max" | "min";
}

export function checkTargets(inputs: TargetInputs): TargetResult[] {
  const { floor, startup, columns } = inputs;
  const latency = (row: string, column: string, key: "p50" | "p99") => {
    const cell = find(inputs.rows, row, column);
    return cell?.kind === "latency" ? cell.figures[key] : undefined;
  };
  const agentFloor = floor.syncPipe.agentPace;
  const b2bFloor = floor.syncPipe.backToBack;
  const noopB2b = latency("noop", columns.backToBack, "p50");
  const sustained = find(inputs.rows, "sustained", columns.backToBack);
  const quickjs = find(inputs.rows, "sustained", columns.quickjs);
  const rss = (row: string) => {
    const cell = find(inputs.rows, row, columns.agent);
    return cell?.kind === "memory" ? cell.bytes / MB : undefined;
  };
  const emptyDenoUs = floor.emptyDeno.p50;
  const checks: Check[] = [
    { goal: `noop p50, agent pace ≤ sync-pipe floor (same pace, ${us(agentFloor.p50)}) + 100 µs`, measured: latency("noop", columns.agent, "p50"), limit: agentFloor.p50 + 100, unit: "µs" },
    { goal: `noop p50, back-to-back ≤ sync-pipe floor (same pace, ${us(b2bFloor.p50)}) + 250 µs`, measured: noopB2b, limit: b2bFloor.p50 + 250, unit: "µs" },
    { goal: `noop p99, agent pace ≤ max(1 ms, 2 × the floor's p99 ${us(agentFloor.p99)})`, measured: latency("noop", columns.agent, "p99"), limit: Math.max(1000, 2 * agentFloor.p99), unit: "µs" },
    { goal: `noop p99, back-to-back ≤ max(1 ms, 2 × the floor's p99 ${us(b2bFloor.p99)})`, measured: latency("noop", columns.backToBack, "p99"), limit: Math.max(1000, 2 * b2bFloor.p99), unit: "µs" },
    { goal: "SHA-256 p50, back-to-back ≤ noop back-to-back + 150 µs", measured: latency("sha256", columns.backToBack, "p50"), limit: (noopB2b ?? NaN) + 150, unit: "µs" },
    { goal: "JSON-100 p50, back-to-back ≤ noop back-to-back + 150 µs", measured: latency("json100", columns.backToBack, "p50"), limit: (noopB2b ?? NaN) + 150, unit: "µs" },
    { goal: "10 parallel `2 + 2`, whole batch p50 (default sandbox) ≤ 3 × noop back-to-back", measured: latency("parallel10-batch", columns.backToBack, "p50"), limit: 3 * (noopB2b ?? NaN), unit: "µs" },
    {
      goal: "sustained fresh-realm evals/s (2 carriers) ≥ 1.2 × QuickJS fresh runtime in-process",
      measured: sustained?.kind === "rate" ? sustained.throughput.evalsPerSecond : undefined,
      limit: quickjs?.kind === "rate" ? 1.2 * quickjs.throughput.evalsPerSecond : NaN,
      unit: "evals/s",
      kind: "min",
    },
    { goal: `cold carrier ready (Sandbox.create, pool off) p50 ≤ empty \`deno run\` (${ms(emptyDenoUs)}) + 25 ms`, measured: latency("create-cold", columns.agent, "p50"), limit: emptyDenoUs + 25_000, unit: "µs" },
    { goal: "100 sandboxes in a row, create + first eval p50 (default pool) ≤ 2 × empty `deno run`", measured: latency("create-first-eval", columns.agent, "p50"), limit: 2 * emptyDenoUs, unit: "µs" },
    { goal: "idle sandbox RSS, fresh ≤ 35 MB", measured: rss("idle-rss"), limit: 35, unit: "MB" },
    { goal: "idle sandbox RSS after the per-eval rows (≥ 2,000 evals in a full run) ≤ 60 MB", measured: rss("rss-after-use"), limit: 60, unit: "MB" },
    { goal: `sandboxed fetch adds ≤ sync-pipe floor (agent pace) + 100 µs at p50`, measured: inputs.mediation.addedP50Us, limit: agentFloor.p50 + 100, unit: "µs" },
    { goal: `a tool call adds ≤ sync-pipe floor (agent pace) + 100 µs at p50`, measured: inputs.toolCalls?.addedP50Us, limit: agentFloor.p50 + 100, unit: "µs" },
    { goal: `\`await import("paddock")\` p50 ≤ empty node (${ms(floor.emptyNode.p50)}) + 100 ms`, measured: startup.importPackage.p50, limit: floor.emptyNode.p50 + 100_000, unit: "µs" },
    { goal: "`paddock eval \"1+1\"` wall p50 ≤ empty node + empty deno + 100 ms", measured: startup.cliEval.p50, limit: floor.emptyNode.p50 + emptyDenoUs + 100_000, unit: "µs" },
    // Issue 9 (modules): absolute targets for 2 cores.
    { goal: "warm import of a small package, whole eval p50 ≤ 0.5 ms", measured: moduleP50(inputs, "warm-tiny"), limit: 500, unit: "µs" },
    { goal: "warm import of lodash-es (whole), whole eval p50 ≤ 3 ms", measured: moduleP50(inputs, "warm-lodash-es"), limit: 3_000, unit: "µs" },
    { goal: "warm import of zod, whole eval p50 ≤ 3 ms", measured: moduleP50(inputs, "warm-zod"), limit: 3_000, unit: "µs" },
    { goal: "first import of a small package already prepared on disk (a new process) p50 ≤ 30 ms", measured: moduleP50(inputs, "first-disk"), limit: 30_000, unit: "µs" },
  ];
  return checks.map((check) => {
    const met = check.measured !== undefined && Number.isFinite(check.limit) && (check.kind === "min" ? check.measured >= check.limit : check.measured <= check.limit);
    const shown = check.measured === undefined ? "not measured" : `${show(check.measured, check.unit)} (limit ${show(check.limit, check.unit)})`;
    return { goal: check.goal, measured: shown, met };
  });
}

function moduleP50(inputs: TargetInputs, id: string): number | undefined {
  return inputs.modules?.rows.find((row) => row.id === id)?.figures?.p50;
}

function find(rows: readonly Row[], row: string, column: string): Cell | undefined {
  return rows.find((candidate) => candidate.id === row)?.cells[column];
}

function show(value: number, unit: Check["unit"]): string {
  if (!Number.isFinite(value)) return "n/a";
  if (unit === "MB") return formatMegabytes(value * MB);
  if (unit === "µs" && value >= 10_000) return ms(value);
  return `${formatInteger(value)} ${unit}`;
}

function us(value: number): string {
  return `${formatInteger(value)} µs`;
}

function ms(valueUs: number): string {
  return `${formatInteger(valueUs / 1000)} ms`;
}
