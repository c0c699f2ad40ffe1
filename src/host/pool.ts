/**
 * Pre-spawned, never-used carriers, so that `Sandbox.create()` does not wait for a Deno start.
 * Carriers are grouped by what their command line fixes (the heap limit); a carrier leaves the
 * pool for exactly one sandbox and is never returned to it.
 */
import { Carrier, type CarrierSpec } from "./carrier.js";

export interface PoolOptions {
  /** Idle carriers kept ready per carrier kind (memory limit). 0 turns the pool off. Default 2. */
  size?: number;
}

const MAX_KINDS = 4;
/** Replacing idle carriers that keep dying waits longer each time, up to this; a take resets it. */
const MAX_REFILL_DELAY_MS = 5_000;

class CarrierPool {
  private size = 2;
  private readonly idle = new Map<string, Carrier[]>();
  /** Idle carriers of each kind that died since one was last taken. */
  private readonly deaths = new Map<string, number>();

  configure(options: PoolOptions): void {
    if (options.size !== undefined) {
      if (!Number.isInteger(options.size) || options.size < 0 || options.size > 64) {
        throw new RangeError(`pool size must be an integer from 0 to 64 (got ${String(options.size)})`);
      }
      this.size = options.size;
    }
    for (const [key, carriers] of this.idle) this.trim(key, carriers);
  }

  /**
   * A carrier for one sandbox: `startedAhead` if given (see startAhead), else a warm one if the
   * pool has it, else a fresh start.
   */
  take(spec: CarrierSpec, startedAhead?: Carrier): Carrier {
    const key = keyOf(spec);
    const carriers = this.idle.get(key) ?? [];
    let carrier = startedAhead;
    if (!carrier) while ((carrier = carriers.shift()) && !carrier.isAlive);
    this.idle.delete(key);
    this.idle.set(key, carriers);
    this.deaths.delete(key);
    this.evictOldKinds();
    // Spawning costs the host a few ms; the caller gets its carrier first.
    setImmediate(() => {
      if (this.idle.get(key) === carriers) this.refill(spec, carriers);
    });
    return carrier ?? Carrier.start(spec);
  }

  /**
   * For a sandbox whose options are still being checked: a carrier starting now, unless an idle
   * one of its kind is waiting. A cold start runs in its own process, so it overlaps the check.
   */
  startAhead(spec: CarrierSpec): Carrier | undefined {
    if (this.idle.get(keyOf(spec))?.some((carrier) => carrier.isAlive)) return undefined;
    return Carrier.start(spec);
  }

  /** Starts idle carriers of `spec`'s kind in the background until the pool is full. */
  warm(spec: CarrierSpec): Promise<void> {
    const key = keyOf(spec);
    const carriers = this.idle.get(key) ?? [];
    this.idle.set(key, carriers);
    this.refill(spec, carriers);
    return Promise.all(carriers.map((c) => c.ready.catch(() => {}))).then(() => {});
  }

  /** Kills every idle carrier (tests, shutdown). */
  drain(): void {
    const carriers = [...this.idle.values()].flat();
    this.idle.clear();
    for (const carrier of carriers) carrier.destroySync();
  }

  /** Idle carriers of `spec`'s kind, and how many of them are ready (tests, diagnostics). */
  status(spec: CarrierSpec): { idle: number; ready: number } {
    const carriers = this.idle.get(keyOf(spec)) ?? [];
    return { idle: carriers.length, ready: carriers.filter((carrier) => carrier.isReady).length };
  }

  private refill(spec: CarrierSpec, carriers: Carrier[]): void {
    while (carriers.length < this.size) {
      const carrier = Carrier.start(spec);
      carriers.push(carrier);
      void carrier.exited.then(() => {
        const index = carriers.indexOf(carrier);
        if (index < 0) return; // taken, trimmed or drained: not the pool's any more
        carriers.splice(index, 1);
        // One that failed to start is not replaced: a broken engine must not start a loop. The
        // sandbox that needs one starts it and sees the error.
        if (carrier.isReady) this.replaceDead(spec, carriers);
      });
    }
  }

  /** An idle carrier was killed from outside (an OOM killer, an operator): start its replacement. */
  private replaceDead(spec: CarrierSpec, carriers: Carrier[]): void {
    const key = keyOf(spec);
    const deaths = (this.deaths.get(key) ?? 0) + 1;
    this.deaths.set(key, deaths);
    const delay = deaths <= 3 ? 0 : Math.min(MAX_REFILL_DELAY_MS, 50 * 2 ** (deaths - 3));
    setTimeout(() => {
      if (this.idle.get(key) === carriers) this.refill(spec, carriers);
    }, delay).unref();
  }

  private trim(key: string, carriers: Carrier[]): void {
    while (carriers.length > this.size) carriers.pop()!.destroySync();
    if (carriers.length === 0) this.idle.delete(key);
  }

  private evictOldKinds(): void {
    while (this.idle.size > MAX_KINDS) {
      const [oldest, carriers] = this.idle.entries().next().value!;
      for (const carrier of carriers) carrier.destroySync();
      this.idle.delete(oldest);
    }
  }
}

function keyOf(spec: CarrierSpec): string {
  return `heap:${spec.memoryMb}`;
}

export const pool = new CarrierPool();

/** Sets how many warm carriers are kept per memory limit (default 2; 0 turns the pool off). */
export function configurePool(options: PoolOptions): void {
  pool.configure(options);
}
