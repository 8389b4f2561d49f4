/** Label metrics for classifier runs: accuracy, per-class precision / recall / F1, macro-F1. */

export interface ClassMetrics {
  accuracy: number;
  macro_f1: number;
  per_class_f1: Record<string, number>;
  per_class_recall: Record<string, number>;
  /** recall of "any of `harmful`" as one class: gold harmful predicted harmful (when `harmful` given) */
  harmful_recall?: number;
}

/** gold[i] < 0 means unlabelled: such rows are left out. */
export function classMetrics(gold: ArrayLike<number>, pred: ArrayLike<number>, labels: string[], harmful?: string[]): ClassMetrics {
  const C = labels.length;
  const tp = new Array<number>(C).fill(0), fp = new Array<number>(C).fill(0), fn = new Array<number>(C).fill(0);
  let n = 0, correct = 0, harmGold = 0, harmHit = 0;
  const harm = new Set((harmful ?? []).map((h) => labels.indexOf(h)).filter((i) => i >= 0));
  for (let i = 0; i < gold.length; i++) {
    const g = gold[i]!, p = pred[i]!;
    if (g < 0) continue;
    n++;
    if (g === p) {
      correct++;
      tp[g]!++;
    } else {
      fp[p]!++;
      fn[g]!++;
    }
    if (harm.has(g)) {
      harmGold++;
      if (harm.has(p)) harmHit++;
    }
  }
  const per_class_f1: Record<string, number> = {};
  const per_class_recall: Record<string, number> = {};
  let sum = 0;
  labels.forEach((name, c) => {
    const prec = tp[c]! + fp[c]! > 0 ? tp[c]! / (tp[c]! + fp[c]!) : 0;
    const rec = tp[c]! + fn[c]! > 0 ? tp[c]! / (tp[c]! + fn[c]!) : 0;
    const f1 = prec + rec > 0 ? (2 * prec * rec) / (prec + rec) : 0;
    per_class_f1[name] = f1;
    per_class_recall[name] = rec;
    sum += f1;
  });
  const m: ClassMetrics = { accuracy: n ? correct / n : NaN, macro_f1: C ? sum / C : NaN, per_class_f1, per_class_recall };
  if (harm.size) m.harmful_recall = harmGold ? harmHit / harmGold : NaN;
  return m;
}

/** Fraction of rows where two label sequences agree. */
export function agreement(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let same = 0;
  for (let i = 0; i < a.length; i++) if (a[i] === b[i]) same++;
  return a.length ? same / a.length : NaN;
}

/** Median (mean of the middle two for an even count); NaN for an empty list. */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function percentile(xs: number[], q: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
}
