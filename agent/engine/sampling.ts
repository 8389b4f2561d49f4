/** Token choice from logits: greedy argmax, or temperature + nucleus (top-p) sampling with a seeded PRNG. */

/** mulberry32: small, fast, good enough for sampling; deterministic for a seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function argmax(logits: Float32Array, offset = 0, n = logits.length - offset): number {
  let best = 0;
  let bestV = -Infinity;
  for (let i = 0; i < n; i++) {
    const v = logits[offset + i]!;
    if (v > bestV) {
      bestV = v;
      best = i;
    }
  }
  return best;
}

export interface Sampler {
  /** choose a token from `n` logits starting at `offset` */
  next(logits: Float32Array, offset: number, n: number): number;
}

export function makeSampler(temperature = 0, topP = 1, seed = 0): Sampler {
  if (!(temperature > 0)) return { next: (l, o, n) => argmax(l, o, n) };
  const rand = prng(seed);
  return {
    next(logits, offset, n) {
      // softmax at temperature T
      let max = -Infinity;
      for (let i = 0; i < n; i++) max = Math.max(max, logits[offset + i]!);
      const probs = new Float64Array(n);
      let sum = 0;
      for (let i = 0; i < n; i++) sum += probs[i] = Math.exp((logits[offset + i]! - max) / temperature);
      // nucleus: the smallest set of most likely tokens whose mass reaches topP
      const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => probs[b]! - probs[a]!);
      let kept = 0;
      let mass = 0;
      while (kept < n && (mass < topP * sum || kept === 0)) mass += probs[order[kept++]!]!;
      let r = rand() * mass;
      for (let k = 0; k < kept; k++) {
        r -= probs[order[k]!]!;
        if (r <= 0) return order[k]!;
      }
      return order[kept - 1]!;
    },
  };
}
