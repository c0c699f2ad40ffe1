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

class CarrierPool {
  private size = 2;
  private readonly idle = new Map<string, Carrier[]>();

  configure(options: PoolOptions): void {
    if (options.size !== undefined) {
      if (!Number.isInteger(options.size) || options.size < 0 || options.size > 64) {
        throw new RangeError(`pool size must be an integer from 0 to 64 (got ${String(options.size)})`);
      }
      this.size = options.size;
    }
    for (const [key, carriers] of this.idle) this.trim(key, carriers);
  }

  /** A carrier for one sandbox: a warm one if the pool has it, else a fresh start. */
  take(spec: CarrierSpec): Carrier {
    const key = keyOf(spec);
    const carriers = this.idle.get(key) ?? [];
    let carrier: Carrier | undefined;
    while ((carrier = carriers.shift()) && !carrier.isAlive);
    this.idle.delete(key);
    this.idle.set(key, carriers);
    this.evictOldKinds();
    // Spawning costs the host a few ms; the caller gets its carrier first.
    setImmediate(() => {
      if (this.idle.get(key) === carriers) this.refill(spec, carriers);
    });
    return carrier ?? Carrier.start(spec);
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
    for (const carriers of this.idle.values()) for (const carrier of carriers) carrier.destroySync();
    this.idle.clear();
  }

  private refill(spec: CarrierSpec, carriers: Carrier[]): void {
    while (carriers.length < this.size) {
      let carrier: Carrier;
      try {
        carrier = Carrier.start(spec);
      } catch {
        return; // The sandbox that needs one will start it and see the error.
      }
      carriers.push(carrier);
      void carrier.exited.then(() => {
        const index = carriers.indexOf(carrier);
        if (index >= 0) carriers.splice(index, 1);
      });
    }
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
