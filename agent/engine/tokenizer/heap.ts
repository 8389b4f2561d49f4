/**
 * A binary heap ordered by `before(a, b)` (true when a must come out first). Both BPE encoders use
 * it as their agenda of candidate merges, which keeps encoding O(n log n) on long inputs.
 */
export class Heap<T> {
  private readonly items: T[] = [];

  constructor(private readonly before: (a: T, b: T) => boolean) {}

  get size(): number {
    return this.items.length;
  }

  push(item: T): void {
    const a = this.items;
    a.push(item);
    let i = a.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.before(a[i] as T, a[parent] as T)) break;
      [a[i], a[parent]] = [a[parent] as T, a[i] as T];
      i = parent;
    }
  }

  pop(): T | undefined {
    const a = this.items;
    if (a.length === 0) return undefined;
    const top = a[0] as T;
    const last = a.pop() as T;
    if (a.length > 0) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let best = i;
        if (l < a.length && this.before(a[l] as T, a[best] as T)) best = l;
        if (r < a.length && this.before(a[r] as T, a[best] as T)) best = r;
        if (best === i) break;
        [a[i], a[best]] = [a[best] as T, a[i] as T];
        i = best;
      }
    }
    return top;
  }
}
