/**
 * `npm run bench` and `paddock bench`: Paddock against four baselines on the same scenarios in
 * the same run, printed as one Markdown table (plus targets) and saved to bench/results/latest.json.
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { denoBinary } from "../src/host/deno-binary.js";
import { denoEval } from "./baselines/deno-eval.js";
import { denoWorker } from "./baselines/deno-worker.js";
import { nodeVm } from "./baselines/node-vm.js";
import { quickjs } from "./baselines/quickjs.js";
import type { Baseline, Engine, Pace } from "./engine.js";
import { RSS_IDLE_MS, measureIdleRss, measureParallel, measureSequential, measureThroughput } from "./measure.js";
import { POOL_SETTLE_MS, createPaddock, drainPool, measureCreate, measureCreateFirstEval } from "./paddock.js";
import { cpuShare, cpuSnapshot } from "./proc.js";
import { PUBLISHED, PUBLISHED_NOTE } from "./published.js";
import { renderMarkdown, renderMediation, renderModules, renderToolCalls, type Cell, type Column, type LatencyCell, type Machine, type Results, type Row } from "./report.js";
import { ADD, EVAL_SCENARIOS, assertResult } from "./scenarios.js";
import { formatInteger, formatMegabytes, formatPercentiles, type Summary } from "./stats.js";
import { checkTargets } from "./targets.js";
import { benchMediation, type MediationResults } from "./fetch.js";
import { benchToolCalls, type ToolCallResults } from "./tools.js";
import { benchTransforms, renderTransforms, type TransformPlan, type TransformResults } from "./transforms.js";
import { benchModules, type ModulesResults } from "./modules.js";
import { measureFloor } from "./floor.js";
import { measureStartup } from "./startup.js";
import { measureBreakdown } from "./breakdown.js";
import { benchApps, renderApps, type AppPlan, type AppResults } from "./apps.js";
import { benchFiles, renderFiles, type FilesPlan, type FilesResults } from "./files.js";

interface Plan {
  /** Samples per scenario (and per mode), by how costly one eval of the engine is. */
  samples: Record<Pace, number>;
  warmup: Record<Pace, number>;
  creates: number;
  createWarmup: number;
  sustainMs: number;
  sustainWarmupMs: number;
  /** Process starts per start-up figure (empty deno, empty node, import, CLI). */
  starts: number;
}

const FULL: Plan = {
  samples: { fast: 1000, medium: 300, slow: 100 },
  warmup: { fast: 100, medium: 20, slow: 5 },
  creates: 100,
  createWarmup: 5,
  sustainMs: 5000,
  sustainWarmupMs: 500,
  starts: 20,
};
const QUICK: Plan = {
  samples: { fast: 100, medium: 30, slow: 10 },
  warmup: { fast: 20, medium: 5, slow: 2 },
  creates: 20,
  createWarmup: 2,
  sustainMs: 1000,
  sustainWarmupMs: 200,
  starts: 5,
};

/** The idle time an agent's tool loop leaves between two evals, at the least. */
const AGENT_PAUSE_MS = 1;
const PARALLEL_WIDTH = 10;
const INFLIGHT = 16;
/** Two carriers: one per core of the 2-core machines this targets. */
const CONCURRENT_CARRIERS = 2;

const PUBLISHED_COLUMN = "published";
const BASELINES: readonly Baseline[] = [denoEval, denoWorker, quickjs, nodeVm];

/** One way of timing an engine; each gets its own column. */
interface Mode {
  column: string;
  /** Untimed idle pause between an eval's result and the next submit; 0 is back-to-back. */
  pauseMs: number;
}

/** What is being measured: Paddock (two modes) or one baseline (back-to-back only). */
interface Subject extends Pick<Baseline, "id" | "features" | "pace"> {
  modes: readonly Mode[];
  /** Paddock's failures stop the benchmark; a baseline's are reported in its cells and the run goes on. */
  fatal: boolean;
}

const PADDOCK: Subject = {
  id: "paddock",
  features: ["webcrypto"],
  pace: "fast",
  modes: [
    { column: "paddock-agent", pauseMs: AGENT_PAUSE_MS },
    { column: "paddock-b2b", pauseMs: 0 },
  ],
  fatal: true,
};

const ROWS: ReadonlyArray<{ id: string; title: string }> = [
  ...EVAL_SCENARIOS.map(({ id, title }) => ({ id, title })),
  { id: "create-warm", title: "Sandbox.create, warm pool" },
  { id: "create-cold", title: "Sandbox.create, cold (pool off)" },
  { id: "create-first-eval", title: "100 sandboxes in a row: create + first eval (default pool)" },
  { id: "parallel10", title: `${PARALLEL_WIDTH} parallel, per-eval latency (Paddock: a default sandbox)` },
  { id: "parallel10-batch", title: `${PARALLEL_WIDTH} parallel, whole batch (Paddock: a default sandbox)` },
  { id: "sustained", title: `sustained fresh-realm evals/s, ${INFLIGHT} in flight (Paddock: ${CONCURRENT_CARRIERS} carriers)` },
  { id: "idle-rss", title: "idle RSS, fresh (create + 1 eval)" },
  { id: "rss-after-use", title: "idle RSS after the per-eval rows" },
];

type SetCell = (rowId: string, columnId: string, cell: Cell) => void;

export async function runBenchmark(options: { quick: boolean; fetchOnly: boolean; modulesOnly?: boolean; toolsOnly?: boolean; transformsOnly?: boolean; appsOnly?: boolean; filesOnly?: boolean }): Promise<void> {
  const plan = options.quick ? QUICK : FULL;
  if (options.appsOnly) {
    const apps = await benchApps(appPlan(options.quick), log);
    if (apps) console.log(renderApps(apps).join("\n"));
    return;
  }
  if (options.filesOnly) {
    console.log(renderFiles(await benchFiles(filesPlan(options.quick), log)).join("\n"));
    return;
  }
  if (options.transformsOnly) {
    const floor = await measureFloor({ samples: plan.samples.fast, warmup: plan.warmup.fast, starts: plan.starts, pauseMs: 0 });
    console.log(renderTransforms(await benchTransforms(transformPlan(options.quick), log), floor.syncPipe.backToBack.p50).join("\n"));
    return;
  }
  if (options.toolsOnly) {
    const floor = await measureFloor({ samples: plan.samples.fast, warmup: plan.warmup.fast, starts: plan.starts, pauseMs: AGENT_PAUSE_MS });
    console.log(renderToolCalls(await measureToolCalls(plan), floor).join("\n"));
    return;
  }
  if (options.fetchOnly) {
    const mediation = await measureMediation(plan);
    console.log(renderMediation(mediation).join("\n"));
    return;
  }
  if (options.modulesOnly) {
    console.log(renderModules(await benchModules({ samples: plan.samples.medium, warmup: plan.warmup.medium, pauseMs: AGENT_PAUSE_MS, starts: plan.starts })).join("\n"));
    return;
  }
  const started = performance.now();
  const startedAt = new Date().toISOString();
  const machine = describeMachine();
  const cpuAtStart = cpuSnapshot();
  const rows: Row[] = ROWS.map(({ id, title }) => ({ id, title, cells: {} }));
  const set: SetCell = (rowId, columnId, cell) => {
    rows.find((row) => row.id === rowId)!.cells[columnId] = cell;
  };

  const floor = await measureFloor({ samples: plan.samples.fast, warmup: plan.warmup.fast, starts: plan.starts, pauseMs: AGENT_PAUSE_MS });
  log(`floor: sync pipe ${formatPercentiles(floor.syncPipe.backToBack)} µs back-to-back, ${formatPercentiles(floor.syncPipe.agentPace)} µs agent pace; async pipe ${formatPercentiles(floor.asyncPipe)} µs; empty deno ${formatPercentiles(floor.emptyDeno)} µs, empty node ${formatPercentiles(floor.emptyNode)} µs`);
  let mediation: MediationResults;
  let modules: ModulesResults;
  let toolCalls: ToolCallResults;
  let transforms: TransformResults;
  let apps: AppResults | undefined;
  let files: FilesResults;
  let breakdown: Results["breakdown"];
  try {
    breakdown = await benchPaddock(plan, set);
    mediation = await measureMediation(plan);
    toolCalls = await measureToolCalls(plan);
    modules = await benchModules({ samples: plan.samples.medium, warmup: plan.warmup.medium, pauseMs: AGENT_PAUSE_MS, starts: plan.starts });
    for (const row of modules.rows) if (row.figures) progress(`modules ${row.id}`, row.figures);
    transforms = await benchTransforms(transformPlan(options.quick), log);
    apps = await benchApps(appPlan(options.quick), log);
    files = await benchFiles(filesPlan(options.quick), log);
  } finally {
    drainPool();
  }
  const startup = await measureStartup(plan.starts);
  log(`startup: import ${formatPercentiles(startup.importPackage)} µs, cli eval ${formatPercentiles(startup.cliEval)} µs`);
  for (const baseline of BASELINES) await benchBaseline(baseline, plan, set);
  for (const [rowId, figures] of Object.entries(PUBLISHED)) set(rowId, PUBLISHED_COLUMN, { kind: "latency", figures });

  const [agent, backToBack] = PADDOCK.modes;
  const columns: Column[] = [
    { id: agent!.column, label: "Paddock, agent pace", note: `one sandbox; a ${AGENT_PAUSE_MS} ms idle pause (untimed) between an eval's result and the next submit` },
    { id: backToBack!.column, label: "Paddock, back-to-back", note: "the same sandbox; the next eval is submitted as soon as the previous one resolves" },
    ...BASELINES.map((baseline) => ({ id: baseline.id, label: baseline.label, note: `${baseline.note}; back-to-back, n = ${plan.samples[baseline.pace]} per scenario` })),
    { id: PUBLISHED_COLUMN, label: "published deno_runtime embedding", note: PUBLISHED_NOTE },
  ];
  const results: Results = {
    quick: options.quick,
    startedAt,
    durationSeconds: (performance.now() - started) / 1000,
    machine: { ...machine, loadAverageAtEnd: os.loadavg(), cpuDuringRun: cpuShare(cpuAtStart, cpuSnapshot()) },
    columns,
    rows,
    notes: notes(plan),
    targets: checkTargets({ rows, columns: { agent: agent!.column, backToBack: backToBack!.column, quickjs: quickjs.id }, floor, startup, mediation, modules, toolCalls }),
    mediation,
    toolCalls,
    transforms,
    ...(apps ? { apps } : {}),
    modules,
    floor,
    startup,
    breakdown,
  };
  console.log(renderMarkdown(results));
  console.log(["", ...renderFiles(files)].join("\n"));
  const folder = fileURLToPath(new URL("../../bench/results/", import.meta.url));
  try {
    mkdirSync(folder, { recursive: true });
    writeFileSync(`${folder}latest.json`, JSON.stringify({ ...results, files, plan }, null, 2) + "\n");
    console.log(`\nFull results: ${folder}latest.json`);
  } catch (error) {
    // An installed package may sit in a read-only place: the report above is the result.
    log(`could not save the results in ${folder}: ${messageOf(error)}`);
  }
}

async function benchPaddock(plan: Plan, set: SetCell): Promise<Results["breakdown"]> {
  // The per-eval rows share one default sandbox (one carrier): a sandbox serves many evals, each
  // in a fresh realm.
  const single = await createPaddock();
  const breakdown: Results["breakdown"] = [];
  await using(single, async () => {
    await benchEvalRows(single, PADDOCK, plan, set);
    await benchConcurrencyRows(single, PADDOCK, plan, set, { parallel: true, sustained: false });
    for (const mode of PADDOCK.modes) {
      const phases = await measureBreakdown(single.sandbox, "0", { samples: plan.samples.fast, warmup: plan.warmup.fast, pauseMs: mode.pauseMs });
      breakdown.push({ column: mode.column, phases });
    }
  });

  const pair = await createPaddock({ carriers: CONCURRENT_CARRIERS });
  await using(pair, () => benchConcurrencyRows(pair, PADDOCK, plan, set, { parallel: false, sustained: true }));

  for (const kind of ["warm", "cold"] as const) {
    const row = `create-${kind}`;
    const times = await measureCreate(kind, plan.creates, plan.createWarmup);
    set(row, PADDOCK.modes[0]!.column, { ...latency(times.create), also: { label: "create + close", figures: times.createClose } });
    markOtherModes(PADDOCK, row, set);
    progress(`paddock ${row} (create+close)`, times.createClose);
    progress(`paddock ${row} (create alone)`, times.create);
  }
  const inARow = await measureCreateFirstEval(plan.creates, plan.createWarmup);
  set("create-first-eval", PADDOCK.modes[0]!.column, latency(inARow));
  markOtherModes(PADDOCK, "create-first-eval", set);
  progress("paddock create-first-eval", inARow);
  return breakdown;
}

async function measureToolCalls(plan: Plan): Promise<ToolCallResults> {
  const toolCalls = await benchToolCalls({ samples: plan.samples.fast, warmup: plan.warmup.fast, pauseMs: AGENT_PAUSE_MS });
  for (const row of toolCalls.rows) progress(`tools ${row.id}`, row.figures);
  return toolCalls;
}

async function measureMediation(plan: Plan): Promise<MediationResults> {
  const mediation = await benchMediation({ samples: plan.samples.fast, warmup: plan.warmup.fast, pauseMs: AGENT_PAUSE_MS });
  for (const row of mediation.rows) progress(`fetch ${row.id}`, row.figures);
  return mediation;
}

async function benchBaseline(baseline: Baseline, plan: Plan, set: SetCell): Promise<void> {
  const subject: Subject = { ...baseline, modes: [{ column: baseline.id, pauseMs: 0 }], fatal: false };
  for (const row of ["create-warm", "create-cold", "create-first-eval"]) set(row, baseline.id, { kind: "na", reason: "no sandbox object to create" });
  let engine: Engine;
  try {
    engine = await baseline.start();
  } catch (error) {
    log(`${baseline.id} could not start: ${messageOf(error)}`);
    for (const { id } of ROWS) set(id, baseline.id, { kind: "na", reason: `could not start: ${messageOf(error)}` });
    return;
  }
  await using(engine, async () => {
    await benchEvalRows(engine, subject, plan, set);
    await benchConcurrencyRows(engine, subject, plan, set, { parallel: true, sustained: true });
  });
}

/** Idle RSS when fresh, every per-eval scenario in every mode, then idle RSS again. */
async function benchEvalRows(engine: Engine, subject: Subject, plan: Plan, set: SetCell): Promise<void> {
  const recordRss = async (row: string, before: () => Promise<void>) => {
    await attempt(subject, row, subject.modes[0]!.column, set, async () => {
      await before();
      const bytes = await measureIdleRss(engine);
      if (bytes === undefined) return { kind: "na", reason: "runs inside the host process" };
      log(`${subject.id} ${row}: ${formatMegabytes(bytes)}`);
      return { kind: "memory", bytes };
    });
    markOtherModes(subject, row, set);
  };

  await recordRss("idle-rss", async () => assertResult(await engine.eval(ADD.code), ADD.expected, "first eval"));
  for (const scenario of EVAL_SCENARIOS) {
    const missing = scenario.needs.filter((feature) => !subject.features.includes(feature));
    for (const mode of subject.modes) {
      if (missing.length > 0) {
        set(scenario.id, mode.column, { kind: "na", reason: `no ${missing.join(", ")}` });
        continue;
      }
      await attempt(subject, scenario.id, mode.column, set, async () => {
        const summary = await measureSequential(engine, scenario, { samples: plan.samples[subject.pace], warmup: plan.warmup[subject.pace], pauseMs: mode.pauseMs });
        progress(`${mode.column} ${scenario.id}`, summary);
        return latency(summary);
      });
    }
  }
  await recordRss("rss-after-use", async () => {});
}

/** The 10-parallel rows in every mode, and sustained throughput (back-to-back by nature). */
async function benchConcurrencyRows(engine: Engine, subject: Subject, plan: Plan, set: SetCell, which: { parallel: boolean; sustained: boolean }): Promise<void> {
  for (const mode of which.parallel ? subject.modes : []) {
    let batch: Summary | undefined;
    await attempt(subject, "parallel10", mode.column, set, async () => {
      // As many samples as a sequential row: rounds of PARALLEL_WIDTH evals each.
      const rounds = {
        rounds: Math.ceil(plan.samples[subject.pace] / PARALLEL_WIDTH),
        warmupRounds: Math.ceil(plan.warmup[subject.pace] / PARALLEL_WIDTH),
        width: PARALLEL_WIDTH,
        pauseMs: mode.pauseMs,
      };
      const { perEval, batch: batches } = await measureParallel(engine, ADD, rounds);
      batch = batches;
      progress(`${mode.column} parallel10`, perEval);
      progress(`${mode.column} parallel10 batch`, batches);
      return latency(perEval);
    });
    set("parallel10-batch", mode.column, batch ? latency(batch) : { kind: "na", reason: "failed" });
  }
  for (const mode of which.sustained ? subject.modes : []) {
    if (mode.pauseMs > 0) {
      set("sustained", mode.column, { kind: "na", reason: "a saturated engine has no idle time; see the back-to-back column" });
      continue;
    }
    await attempt(subject, "sustained", mode.column, set, async () => {
      const throughput = await measureThroughput(engine, ADD, { inflight: INFLIGHT, durationMs: plan.sustainMs, warmupMs: plan.sustainWarmupMs });
      log(`${mode.column} sustained: ${throughput.evalsPerSecond} evals/s`);
      return { kind: "rate", throughput };
    });
  }
}

/** Runs one measurement into its cell; a baseline's failure becomes an n/a cell with the reason. */
async function attempt(subject: Subject, row: string, column: string, set: SetCell, measure: () => Promise<Cell>): Promise<void> {
  try {
    set(row, column, await measure());
  } catch (error) {
    if (subject.fatal) throw error;
    log(`${column} ${row} failed: ${messageOf(error)}`);
    set(row, column, { kind: "na", reason: `failed: ${messageOf(error)}` });
  }
}

/** A measurement that has no modes is shown once, in the subject's first column. */
function markOtherModes(subject: Subject, row: string, set: SetCell): void {
  for (const mode of subject.modes.slice(1)) set(row, mode.column, { kind: "as-left" });
}

/** Runs `use`, then closes the engine whatever happened. */
async function using(engine: Engine, use: () => Promise<void>): Promise<void> {
  try {
    await use();
  } finally {
    await engine.close();
  }
}

function latency(summary: Summary): LatencyCell {
  return { kind: "latency", figures: summary };
}

function notes(plan: Plan): string[] {
  const { fast, medium, slow } = plan.samples;
  return [
    `Cells: p50 / p99 / max in µs (nearest rank), end to end as the Node caller sees it; every result is checked. ` +
      `n per scenario (and per mode): Paddock, quickjs, node:vm ${fast} after ${plan.warmup.fast} warm-up evals; Deno Worker ${medium} (~15 ms per eval); \`deno eval\` ${slow} (each call starts a Deno process, ~30–60 ms). ` +
      `Every eval sends the same source text, so Paddock's source cache and the carrier's compiled-script cache hit (as for a transform called repeatedly); new code pays a parse and a compile on top.`,
    `Agent pace vs back-to-back: with a ${AGENT_PAUSE_MS} ms idle pause between evals (agent pace) the carrier builds the next realms while it waits, ` +
      `which is the design; back-to-back, that realm building runs between one result and the next request, i.e. on the measured path. Agent pace is the expected use of an agent sandbox; ` +
      `back-to-back is the worst case for one caller. The baselines are measured back-to-back only.`,
    `Per-eval rows: one default sandbox (1 carrier), measured once the warm pool has refilled behind it. "${PARALLEL_WIDTH} parallel": ${PARALLEL_WIDTH} evals of \`${ADD.code}\` submitted at once to that sandbox, ` +
      `latency from the common submit to each result, and to the last one (whole batch); rounds ${AGENT_PAUSE_MS} ms apart (agent pace) or back-to-back. In-process baselines run a "parallel" round one eval after another. ` +
      `"100 sandboxes in a row": Sandbox.create() + a first eval, timed, then close (untimed), ${plan.creates} times, with the default pool (2 warm carriers) refilling as fast as carriers start.`,
    `Sandbox.create warm: before each create (untimed) \`Sandbox.warm()\` refills the pool and the new carriers get ${POOL_SETTLE_MS} ms to settle, so create takes an already-running carrier ` +
      `(and starts its replacement); cold: \`configurePool({ size: 0 })\`, so create starts a Deno carrier and waits for it. Timed: Sandbox.create; ` +
      `n = ${plan.creates}. "create + close" (close kills the carrier and waits for it to exit) is in the JSON.`,
    `Sustained: one sandbox with ${CONCURRENT_CARRIERS} carriers, ${INFLIGHT} evals of \`${ADD.code}\` in flight for ${plan.sustainMs / 1000} s after a ${plan.sustainWarmupMs} ms warm-up; ` +
      `the Node host shares the same 2 cores. The baselines get the same load; the in-process ones run on the single Node thread.`,
    `RSS: sum of VmRSS (/proc/<pid>/status) of the sandbox's carriers (1), after ${RSS_IDLE_MS} ms idle (spare realms built): first after create + one eval, then again after the ` +
      `per-eval rows on that sandbox (${formatInteger(evalsPerEngine(PADDOCK, PADDOCK.modes.length, plan))} evals; Deno Worker: VmRSS of its long-lived process, no Worker alive, after ${formatInteger(evalsPerEngine(denoWorker, 1, plan))} evals). ` +
      `V8 lets the carrier's heap grow toward its limit (--max-old-space-size = memoryMb) before collecting, so a used sandbox's idle RSS is well above the fresh figure.`,
  ];
}

/** How many evals the per-eval rows send to one engine (warm-ups included). */
function evalsPerEngine(engine: Pick<Baseline, "pace" | "features">, modes: number, plan: Plan): number {
  const scenarios = EVAL_SCENARIOS.filter((scenario) => scenario.needs.every((feature) => engine.features.includes(feature))).length;
  return modes * scenarios * (plan.samples[engine.pace] + plan.warmup[engine.pace]);
}

function describeMachine(): Machine {
  const cpus = os.cpus();
  const version = execFileSync(denoBinary(), ["--version"], { encoding: "utf8" });
  return {
    cpu: cpus[0]?.model ?? "unknown CPU",
    cores: cpus.length,
    memoryBytes: os.totalmem(),
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    deno: `Deno ${/^deno (\S+)/.exec(version)?.[1] ?? "unknown"}`,
    loadAverageAtStart: os.loadavg(),
  };
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function progress(what: string, summary: Summary): void {
  log(`${what}: ${formatPercentiles(summary)} µs (n=${summary.n})`);
}

function appPlan(quick: boolean): AppPlan {
  return quick ? { seconds: 2, connections: 32, requests: 500, starts: 5 } : { seconds: 6, connections: 32, requests: 3000, starts: 20 };
}

function filesPlan(quick: boolean): FilesPlan {
  return quick ? { bytes: 16e6, runs: 3, smallFiles: 500 } : { bytes: 50e6, runs: 5, smallFiles: 2000 };
}

function transformPlan(quick: boolean): TransformPlan {
  return quick ? { messages: 100_000, calls: 200, cliBytes: 20e6 } : { messages: 1_000_000, calls: 2000, cliBytes: 200e6 };
}

/** Progress goes to stderr, so stdout carries only the report. */
function log(message: string): void {
  process.stderr.write(`[bench] ${message}\n`);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { values } = parseArgs({ args: process.argv.slice(2), options: { quick: { type: "boolean", default: false }, fetch: { type: "boolean", default: false }, modules: { type: "boolean", default: false }, tools: { type: "boolean", default: false }, transforms: { type: "boolean", default: false }, apps: { type: "boolean", default: false }, files: { type: "boolean", default: false } }, strict: true });
  runBenchmark({ quick: values.quick, fetchOnly: values.fetch, modulesOnly: values.modules, toolsOnly: values.tools, transformsOnly: values.transforms, appsOnly: values.apps, filesOnly: values.files }).catch((error: unknown) => {
    console.error(error);
    process.exitCode = 1;
  });
}
