/**
 * A least-recently-used cache bounded both by entry count and by the total size of its keys
 * (source texts, here), used by the host for prepared sources and by the carrier for compiled
 * scripts.
 */
export class BoundedCache<V> {
  private readonly entries = new Map<string, V>();
  private size = 0;

  constructor(
    private readonly maxEntries: number,
    private readonly maxKeyChars: number,
  ) {}

  get(key: string): V | undefined {
    const value = this.entries.get(key);
    if (value !== undefined) {
      this.entries.delete(key);
      this.entries.set(key, value);
    }
    return value;
  }

  set(key: string, value: V): void {
    if (this.entries.has(key)) return;
    this.entries.set(key, value);
    this.size += key.length;
    while (this.entries.size > this.maxEntries || this.size > this.maxKeyChars) {
      const oldest = this.entries.keys().next().value!;
      this.entries.delete(oldest);
      this.size -= oldest.length;
    }
  }

  delete(key: string): void {
    if (this.entries.delete(key)) this.size -= key.length;
  }
}
