/**
 * At most `limit` holders at once; others wait their turn, in order. A waiter whose work is
 * called off before its turn (its eval ended, its time ran out) leaves the queue.
 */
export class Slots {
  private taken = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(private readonly limit: number) {}

  /**
   * Takes a slot: at once (true, no promise) when one is free, else when one is released; false if
   * `onStop` reports the work called off first.
   */
  acquire(onStop: (listener: () => void) => void): boolean | Promise<boolean> {
    if (this.taken < this.limit) {
      this.taken++;
      return true;
    }
    return new Promise((resolve) => {
      const grant = () => {
        this.taken++;
        resolve(true);
      };
      this.waiting.push(grant);
      onStop(() => {
        const index = this.waiting.indexOf(grant);
        if (index === -1) return;
        this.waiting.splice(index, 1);
        resolve(false);
      });
    });
  }

  release(): void {
    this.taken--;
    this.waiting.shift()?.();
  }
}
