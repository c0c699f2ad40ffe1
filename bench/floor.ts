/**
 * The physical floor under Paddock, measured in the same run: the round trip through a pipe to a
 * zero-permission Deno process that only echoes, and the start of an empty Deno and an empty Node.
 * Paddock's targets are stated against these figures, because absolute figures differ 2× between
 * machines of this kind (and between days on the same one).
 */
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { setTimeout as sleep } from "node:timers/promises";
import { CARRIER_RUN_FLAGS } from "../src/host/carrier.js";
import { DenoDir, dataUrl } from "./baselines/deno-process.js";
import { elapsedUs, summarize, type Summary } from "./stats.js";

/** Answers each JSON line at once, blocking in a synchronous read between lines. */
const SYNC_ECHO = `
const buffer = new Uint8Array(65536);
const decoder = new TextDecoder();
const encoder = new TextEncoder();
let pending = "";
for (;;) {
  const n = Deno.stdin.readSync(buffer);
  if (n === null) break;
  pending += decoder.decode(buffer.subarray(0, n));
  for (let end; (end = pending.indexOf("\\n")) >= 0; pending = pending.slice(end + 1)) {
    const { id } = JSON.parse(pending.slice(0, end));
    const reply = encoder.encode(JSON.stringify({ id, v: 0 }) + "\\n");
    for (let written = 0; written < reply.length; ) written += Deno.stdout.writeSync(reply.subarray(written));
  }
}`;

/** The same with an asynchronous read, as a Deno program usually reads its input. */
const ASYNC_ECHO = SYNC_ECHO.replace("Deno.stdin.readSync(buffer)", "await Deno.stdin.read(buffer)");

export interface FloorPlan {
  samples: number;
  warmup: number;
  starts: number;
  pauseMs: number;
}

export interface Floor {
  /** Round trip of one small JSON line to the synchronous echo, one at a time. */
  syncPipe: { backToBack: Summary; agentPace: Summary };
  asyncPipe: Summary;
  /** `deno run` of an empty module, spawn to exit. */
  emptyDeno: Summary;
  /** `node -e ""`, spawn to exit. */
  emptyNode: Summary;
}

export async function measureFloor(plan: FloorPlan): Promise<Floor> {
  const dir = new DenoDir();
  try {
    const backToBack = await echoRoundTrips(dir, SYNC_ECHO, plan, 0);
    const agentPace = await echoRoundTrips(dir, SYNC_ECHO, plan, plan.pauseMs);
    const asyncPipe = await echoRoundTrips(dir, ASYNC_ECHO, plan, 0);
    const emptyDeno = await processStarts(plan, () => dir.spawn([...CARRIER_RUN_FLAGS, dataUrl("")]));
    const emptyNode = await processStarts(plan, () => spawn(process.execPath, ["-e", ""], { stdio: ["pipe", "pipe", "pipe"] }));
    return { syncPipe: { backToBack, agentPace }, asyncPipe, emptyDeno, emptyNode };
  } finally {
    dir.remove();
  }
}

async function echoRoundTrips(dir: DenoDir, source: string, plan: FloorPlan, pauseMs: number): Promise<Summary> {
  const child = dir.spawn([...CARRIER_RUN_FLAGS, dataUrl(source)]);
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  let answer: (() => void) | undefined;
  let pending = "";
  child.stdout.setEncoding("utf8").on("data", (text: string) => {
    pending += text;
    for (let end; (end = pending.indexOf("\n")) >= 0; pending = pending.slice(end + 1)) answer?.();
  });
  try {
    const samples: number[] = [];
    for (let i = 0; i < plan.warmup + plan.samples; i++) {
      const start = performance.now();
      await new Promise<void>((resolve) => {
        answer = resolve;
        child.stdin.write(JSON.stringify({ id: i, code: "0" }) + "\n");
      });
      if (i >= plan.warmup) samples.push(elapsedUs(start));
      if (pauseMs > 0) await sleep(pauseMs);
    }
    return summarize(samples);
  } finally {
    child.stdin.end();
    await exited;
  }
}

async function processStarts(plan: FloorPlan, start: () => ChildProcessWithoutNullStreams): Promise<Summary> {
  const samples: number[] = [];
  const warmup = 2;
  for (let i = 0; i < warmup + plan.starts; i++) {
    const began = performance.now();
    const child = start();
    await new Promise<void>((resolve, reject) => {
      child.once("error", reject);
      child.once("exit", (code) => (code === 0 ? resolve() : reject(new Error(`an empty process exited with code ${code}`))));
    });
    if (i >= warmup) samples.push(elapsedUs(began));
  }
  return summarize(samples);
}
