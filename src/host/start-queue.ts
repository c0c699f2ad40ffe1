/**
 * Bounds how many carriers start at once. A Deno start costs tens of ms of CPU and ~40 MB; a burst
 * of hundreds of `Sandbox.create()` calls would otherwise start them all together, take minutes of
 * CPU on a small machine before any is ready (so every start would miss its ready timeout) and
 * reach for tens of GB. Queued starts run in order as running ones become ready or fail.
 */
import { availableParallelism } from "node:os";

export class StartQueue {
  private running = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(private readonly limit: number) {}

  /**
   * Runs `start` now or once a slot frees. `start` must call the release function it gets exactly
   * once, when its carrier is ready or has failed. Returns a function that drops a start still
   * waiting (it does nothing once the start has run).
   */
  enqueue(start: (release: () => void) => void): () => void {
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      this.running--;
      this.next();
    };
    const run = () => {
      this.running++;
      start(release);
    };
    if (this.running < this.limit) {
      run();
      return () => {};
    }
    this.waiting.push(run);
    return () => {
      const index = this.waiting.indexOf(run);
      if (index >= 0) this.waiting.splice(index, 1);
    };
  }

  /** Starts running now (tests, diagnostics). */
  get starting(): number {
    return this.running;
  }

  private next(): void {
    while (this.running < this.limit) {
      const run = this.waiting.shift();
      if (!run) return;
      run();
    }
  }
}

/** Two starts per core keep the cores busy while each start also waits on the kernel. */
export const carrierStarts = new StartQueue(Math.max(2, 2 * availableParallelism()));
