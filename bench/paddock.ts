/** Paddock as an Engine, and the measurement only Paddock has: sandbox creation. */
import { setTimeout as sleep } from "node:timers/promises";
import { Sandbox, configurePool, type SandboxOptions } from "../src/index.js";
import type { Engine } from "./engine.js";
import { vmRssBytes } from "./proc.js";
import { elapsedUs, summarize, type Summary } from "./stats.js";

/** The pool size Paddock ships with; restored after the cold-start measurement. */
const DEFAULT_POOL_SIZE = 2;
/**
 * After `Sandbox.warm()` resolves, the new carriers are still building their spare realms; this
 * pause keeps that start-up CPU out of the next create's sample.
 */
export const POOL_SETTLE_MS = 30;

/**
 * A sandbox to measure, created once the pool has refilled behind it: the carriers the pool starts
 * after a create would otherwise share the CPU with the first measurements.
 */
export async function createPaddock(options?: SandboxOptions): Promise<Engine & { sandbox: Sandbox }> {
  const sandbox = await Sandbox.create(options);
  await settlePool();
  return {
    sandbox,
    eval: (code) => sandbox.eval(code),
    idleRssBytes: () => carrierPids(sandbox).reduce((sum, pid) => sum + vmRssBytes(pid), 0),
    close: () => sandbox.close(),
  };
}

/** Kills the pool's idle carriers (so they cost later measurements nothing), keeping its size. */
export function drainPool(): void {
  configurePool({ size: 0 });
  configurePool({ size: DEFAULT_POOL_SIZE });
}

export interface CreateTimes {
  /** `Sandbox.create()` alone. */
  create: Summary;
  /** `Sandbox.create()` then `close()`, which waits for the carrier to exit. */
  createClose: Summary;
}

/**
 * Times `Sandbox.create()` + `close()`. "warm": before each (untimed) the pool is refilled with
 * `Sandbox.warm()` and left to settle, so the create takes a carrier that is already running.
 * "cold": the pool is off, so every create starts its carrier.
 */
export async function measureCreate(kind: "warm" | "cold", samples: number, warmup: number): Promise<CreateTimes> {
  configurePool({ size: kind === "warm" ? DEFAULT_POOL_SIZE : 0 });
  const create: number[] = [];
  const createClose: number[] = [];
  try {
    for (let i = 0; i < warmup + samples; i++) {
      if (kind === "warm") await settlePool();
      const start = performance.now();
      const sandbox = await Sandbox.create();
      const created = elapsedUs(start);
      await sandbox.close();
      const closed = elapsedUs(start);
      if (i >= warmup) {
        create.push(created);
        createClose.push(closed);
      }
    }
  } finally {
    configurePool({ size: DEFAULT_POOL_SIZE });
  }
  return { create: summarize(create), createClose: summarize(createClose) };
}

/**
 * Sandboxes made one after another with the default pool, as a host starting many sandboxes does:
 * each create plus its first eval is timed (closing it is not), so the pool refills only as fast as
 * carriers start.
 */
export async function measureCreateFirstEval(samples: number, warmup: number): Promise<Summary> {
  configurePool({ size: DEFAULT_POOL_SIZE });
  await settlePool();
  const times: number[] = [];
  for (let i = 0; i < warmup + samples; i++) {
    const start = performance.now();
    const sandbox = await Sandbox.create();
    const value = await sandbox.eval("1 + 1");
    const us = elapsedUs(start);
    await sandbox.close();
    if (value !== 2) throw new Error(`a new sandbox's first eval gave ${String(value)}`);
    if (i >= warmup) times.push(us);
  }
  return summarize(times);
}

/** Fills the pool and waits until its new carriers are ready and done with their start-up work. */
async function settlePool(): Promise<void> {
  await Sandbox.warm();
  await sleep(POOL_SETTLE_MS);
}

/**
 * The pids of a sandbox's carriers. Sandbox has no public accessor, so this reads its private
 * `slots` array, and fails loudly if that layout changes rather than reporting a wrong figure.
 */
export function carrierPids(sandbox: Sandbox): number[] {
  const slots: unknown = (sandbox as unknown as { slots?: unknown }).slots;
  if (!Array.isArray(slots)) throw new Error("bench: Sandbox no longer keeps its carriers in `slots`; update carrierPids()");
  return slots.map((slot: unknown) => {
    const pid = (slot as { pid?: unknown } | undefined)?.pid;
    if (typeof pid !== "number") throw new Error("bench: a sandbox slot has no carrier pid; update carrierPids()");
    return pid;
  });
}
