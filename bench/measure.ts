/**
 * The three ways an engine is timed. Every latency is end to end as the caller sees it: from
 * handing the code over to holding the checked result, measured in this (the host) process.
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { Engine } from "./engine.js";
import { assertResult, type EvalScenario } from "./scenarios.js";
import { elapsedUs, summarize, type Summary } from "./stats.js";

export interface SequentialPlan {
  samples: number;
  warmup: number;
  /** Idle time between one eval's result and the next submit; 0 means back to back. */
  pauseMs: number;
}

/** One eval at a time. The pause, if any, is not part of any sample. */
export function measureSequential(engine: Engine, scenario: EvalScenario, plan: SequentialPlan): Promise<Summary> {
  return sampleSequentially(plan, async () => {
    const start = performance.now();
    const value = await engine.eval(scenario.code);
    const us = elapsedUs(start);
    assertResult(value, scenario.expected, scenario.id);
    return us;
  });
}

/** Runs `once` (which times itself, in µs) warmup + samples times, one at a time, the pause between untimed. */
export async function sampleSequentially(plan: SequentialPlan, once: () => Promise<number>): Promise<Summary> {
  const samples: number[] = [];
  for (let i = 0; i < plan.warmup + plan.samples; i++) {
    const us = await once();
    if (i >= plan.warmup) samples.push(us);
    if (plan.pauseMs > 0) await sleep(plan.pauseMs);
  }
  return summarize(samples);
}

/**
 * The reference row of the mediation benchmarks: an eval of `await 0` on the same sandbox, so a
 * capability's cost is read against the hop every async eval pays.
 */
export const ASYNC_NOOP_TITLE = "reference: an eval of `await 0` on the same sandbox";

export function sampleAsyncNoop(sandbox: { eval(code: string): Promise<unknown> }, plan: SequentialPlan): Promise<Summary> {
  return sampleSequentially(plan, async () => {
    const started = performance.now();
    await sandbox.eval("await 0");
    return elapsedUs(started);
  });
}

export interface ParallelPlan {
  rounds: number;
  warmupRounds: number;
  /** Evals submitted at once in each round. */
  width: number;
  pauseMs: number;
}

/**
 * Rounds of `width` evals submitted together; each eval's latency runs from the common submit, and
 * a round's (the batch's) until its last eval resolved.
 */
export async function measureParallel(engine: Engine, scenario: EvalScenario, plan: ParallelPlan): Promise<{ perEval: Summary; batch: Summary }> {
  const samples: number[] = [];
  const batches: number[] = [];
  for (let round = 0; round < plan.warmupRounds + plan.rounds; round++) {
    const start = performance.now();
    const latencies = await Promise.all(
      Array.from({ length: plan.width }, async () => {
        const value = await engine.eval(scenario.code);
        const us = elapsedUs(start);
        assertResult(value, scenario.expected, scenario.id);
        return us;
      }),
    );
    if (round >= plan.warmupRounds) {
      samples.push(...latencies);
      batches.push(elapsedUs(start));
    }
    if (plan.pauseMs > 0) await sleep(plan.pauseMs);
  }
  return { perEval: summarize(samples), batch: summarize(batches) };
}

export interface ThroughputPlan {
  /** Evals kept in flight: each lane submits its next eval as soon as its previous one resolves. */
  inflight: number;
  durationMs: number;
  warmupMs: number;
}

export interface Throughput {
  evalsPerSecond: number;
  completed: number;
  seconds: number;
  inflight: number;
}

export async function measureThroughput(engine: Engine, scenario: EvalScenario, plan: ThroughputPlan): Promise<Throughput> {
  await saturate(engine, scenario, plan.inflight, plan.warmupMs);
  const start = performance.now();
  const completed = await saturate(engine, scenario, plan.inflight, plan.durationMs);
  // The clock runs until the last lane drains, so evals that straddle the deadline are paid for.
  const seconds = (performance.now() - start) / 1000;
  return { evalsPerSecond: Math.round(completed / seconds), completed, seconds: Math.round(seconds * 1000) / 1000, inflight: plan.inflight };
}

async function saturate(engine: Engine, scenario: EvalScenario, inflight: number, durationMs: number): Promise<number> {
  const deadline = performance.now() + durationMs;
  let completed = 0;
  const lane = async () => {
    while (performance.now() < deadline) {
      assertResult(await engine.eval(scenario.code), scenario.expected, scenario.id);
      completed++;
    }
  };
  await Promise.all(Array.from({ length: inflight }, lane));
  return completed;
}

/** Idle time before reading RSS: an idle carrier builds its spare realms, which is its real idle state. */
export const RSS_IDLE_MS = 200;

/** Resident memory of the engine's own processes after a moment idle; undefined for in-process engines. */
export async function measureIdleRss(engine: Engine): Promise<number | undefined> {
  if (!engine.idleRssBytes) return undefined;
  await sleep(RSS_IDLE_MS);
  return engine.idleRssBytes();
}
