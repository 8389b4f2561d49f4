/**
 * Remembers request ids for a window so that a QoS 1 redelivery (same correlation data or
 * transaction) is answered once. Ids enter in time order, so expiry prunes from the front.
 * Bounded in entries so that a flood of unique ids cannot grow memory without limit.
 */
export class Dedupe {
  private readonly seen = new Map<string, number>();

  constructor(
    /** window, milliseconds (0 disables) */
    private readonly windowMs: number,
    /** most ids kept; the oldest go first */
    private readonly maxEntries = 50_000,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** True when `key` was seen within the window; otherwise records it and returns false. */
  seenBefore(key: string): boolean {
    if (this.windowMs <= 0) return false;
    const t = this.now();
    this.prune(t);
    const at = this.seen.get(key);
    if (at !== undefined && t - at <= this.windowMs) return true;
    this.seen.delete(key);
    this.seen.set(key, t);
    while (this.seen.size > this.maxEntries) {
      const oldest = this.seen.keys().next().value;
      if (oldest === undefined) break;
      this.seen.delete(oldest);
    }
    return false;
  }

  /** Forget `key` (a request that was recorded but then refused, e.g. E_BUSY, may be retried). */
  forget(key: string): void {
    this.seen.delete(key);
  }

  get size(): number {
    return this.seen.size;
  }

  private prune(t: number): void {
    for (const [k, at] of this.seen) {
      if (t - at <= this.windowMs) break;
      this.seen.delete(k);
    }
  }
}
