/**
 * The cost of a tool call: a no-op host tool called from inside the sandbox against the same
 * function called by the host itself, in the same run. The sandboxed figure is timed inside the
 * sandbox, around the call, so it holds what the call adds: the carrier⇄host round trip, the
 * input's structured clone and schema check, and the result's way back into the realm.
 */
import { Sandbox, type ToolDefinition } from "../src/index.js";
import { elapsedUs, summarize, type Summary } from "./stats.js";
import { ASYNC_NOOP_TITLE, sampleAsyncNoop, sampleSequentially } from "./measure.js";

export interface ToolCallPlan {
  samples: number;
  warmup: number;
  pauseMs: number;
}

export interface ToolCallResults {
  rows: Array<{ id: string; title: string; figures: Summary }>;
  /** p50 of the sandboxed call minus p50 of the host's own call. */
  addedP50Us: number;
}

const SEQUENTIAL_CALLS = 100;

export async function benchToolCalls(plan: ToolCallPlan): Promise<ToolCallResults> {
  const noop: ToolDefinition<{ id: number }, { id: number }> = {
    description: "Returns its input's id",
    inputSchema: { type: "object", properties: { id: { type: "number" } }, required: ["id"] },
    execute: (input) => ({ id: input.id }),
  };
  const sandbox = await Sandbox.create({ tools: { noop } });
  try {
    const direct = await sampleSequentially(plan, async () => {
      const started = performance.now();
      const result = await noop.execute({ id: 1 }, undefined as never);
      if (result.id !== 1) throw new Error("the tool's result came back wrong");
      return elapsedUs(started);
    });
    const wall: number[] = [];
    const sandboxed = await sampleSequentially(plan, async () => {
      const started = performance.now();
      const ms = await sandbox.eval<number>(`const started = performance.now(); const { id } = await tools.noop({ id: 1 }); if (id !== 1) throw new Error("wrong"); performance.now() - started`);
      wall.push(elapsedUs(started));
      return ms * 1000;
    });
    const sequential = await sampleSequentially({ ...plan, samples: Math.max(20, Math.floor(plan.samples / 10)), warmup: Math.max(2, Math.floor(plan.warmup / 10)) }, async () => {
      const started = performance.now();
      const total = await sandbox.eval<number>(`let total = 0; for (let i = 0; i < ${SEQUENTIAL_CALLS}; i++) total += (await tools.noop({ id: i })).id; total`);
      if (total !== (SEQUENTIAL_CALLS * (SEQUENTIAL_CALLS - 1)) / 2) throw new Error("the tool calls came back wrong");
      return elapsedUs(started);
    });
    const asyncNoop = await sampleAsyncNoop(sandbox, plan);
    const rows = [
      { id: "direct", title: "the host calling the tool's function itself", figures: direct },
      { id: "sandboxed", title: "`await tools.noop({ id })` in the sandbox, timed inside it", figures: sandboxed },
      { id: "eval", title: "the whole eval making that call, as the host caller sees it", figures: summarize(wall.slice(plan.warmup)) },
      { id: "sequential", title: `one eval making ${SEQUENTIAL_CALLS} sequential calls (whole eval)`, figures: sequential },
      { id: "async-noop", title: ASYNC_NOOP_TITLE, figures: asyncNoop },
    ];
    return { rows, addedP50Us: Math.round((sandboxed.p50 - direct.p50) * 10) / 10 };
  } finally {
    await sandbox.close();
  }
}
