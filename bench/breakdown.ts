/**
 * Where a noop eval's time goes: traced evals (`run(code, { trace: true })`) give each phase on the
 * host and in the carrier, measured with timestamps in each process (no clock is shared: the
 * pipe hops and wake-ups are what is left of the host's end-to-end time).
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { EvalPhases, Sandbox } from "../src/index.js";
import { summarize } from "./stats.js";

export interface BreakdownPlan {
  samples: number;
  warmup: number;
  pauseMs: number;
}

/** p50 of each phase, in µs, in the order the eval passes them; `total` is end to end. */
export type Breakdown = Record<keyof EvalPhases | "total", number>;

export const PHASE_TITLES: Record<keyof Breakdown, string> = {
  prepare: "host: options, source (cache hit), request",
  send: "host: encode the request frame",
  decode: "carrier: from its read returning to the eval starting (frame, header)",
  realm: "carrier: take a spare realm, bind the eval to it",
  compile: "carrier: compiled-script cache hit",
  run: "carrier: run the code (with its timeout watchdog)",
  encode: "carrier: encode the result",
  settle: "carrier: drain queued work, end the eval, stats",
  transit: "both pipe writes and hops, both wake-ups",
  receive: "host: read the frame, validate the message, decode",
  resume: "host: resolve the eval's promise up to run()'s result",
  total: "end to end (the caller's await included)",
};

export async function measureBreakdown(sandbox: Sandbox, code: string, plan: BreakdownPlan): Promise<Breakdown> {
  const samples: Array<Record<string, number>> = [];
  for (let i = 0; i < plan.warmup + plan.samples; i++) {
    const start = performance.now();
    const result = await sandbox.run(code, { trace: true });
    const total = (performance.now() - start) * 1000;
    if (!result.ok) throw result.error;
    if (!result.stats.phases) throw new Error("a traced eval came back without its phases");
    if (i >= plan.warmup) samples.push({ ...result.stats.phases, total });
    if (plan.pauseMs > 0) await sleep(plan.pauseMs);
  }
  const keys = Object.keys(PHASE_TITLES) as Array<keyof Breakdown>;
  return Object.fromEntries(keys.map((key) => [key, summarize(samples.map((sample) => sample[key]!)).p50])) as Breakdown;
}
