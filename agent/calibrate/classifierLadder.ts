/**
 * Choosing a classifier's exit thresholds per operating level, with a guarantee (Learn-then-Test):
 *
 * 1. A fixed family of threshold vectors τ(ε), ε = 0, 0.0025, 0.005, … is fitted on one split
 *    ("family"): going through the exit points in order, τ_k(ε) is the largest head-k entropy at
 *    which the texts still running at point k that would exit there disagree with the full model at
 *    most a fraction ε of the time (class-balanced: weighted by 1 / label frequency), with at least
 *    `minExits` such texts.
 * 2. On a second split ("calibration"), the nulls H_ε: "agreement(τ(ε)) < target" are tested in
 *    the fixed order of increasing ε with a binomial test (p = P[Bin(n, 1 − target) ≤ disagreements]),
 *    stopping at the first that is not rejected at level δ = 1 − confidence. Fixed-sequence testing
 *    controls the family-wise error at δ, so the chosen τ has agreement ≥ target with probability
 *    ≥ confidence (for texts like the calibration ones).
 * 3. A third split ("holdout") checks the result; the ladder records both measurements.
 */

/** What the ladder needs of one split: per exit point, each text's head entropy and label. */
export interface ExitTable {
  /** entropy[k][i]: normalized entropy of head k on text i */
  entropy: Float64Array[];
  /** pred[k][i]: head k's label for text i */
  pred: Int32Array[];
  /** the full model's label per text */
  full: Int32Array;
}

export interface Simulated {
  agreement: number;
  disagreements: number;
  meanLayers: number;
  /** texts exiting at each point k (index nLayers = full depth) */
  exits: number[];
}

/** Replay thresholds on a table: which label each text gets and at what depth. */
export function simulate(t: ExitTable, thresholds: number[], nLayers: number): Simulated {
  const n = t.full.length;
  const exits = new Array<number>(nLayers + 1).fill(0);
  let dis = 0, layers = 0;
  for (let i = 0; i < n; i++) {
    let depth = nLayers;
    let label = t.full[i]!;
    for (let k = 0; k < t.entropy.length; k++) {
      const tau = thresholds[k] ?? -1;
      if (tau >= 0 && t.entropy[k]![i]! <= tau) {
        depth = k;
        label = t.pred[k]![i]!;
        break;
      }
    }
    exits[depth]!++;
    layers += depth;
    if (label !== t.full[i]) dis++;
  }
  return { agreement: n ? 1 - dis / n : 1, disagreements: dis, meanLayers: n ? layers / n : nLayers, exits };
}

export interface FamilyOptions {
  /** least number of texts that must exit at a point for it to get a threshold; default max(20, 1 % of n) */
  minExits?: number;
  /**
   * Weigh each text by 1 / (frequency of its full-model label) when fitting τ(ε), so that a rare
   * class's disagreements count as much as a frequent one's. The guarantee is still on plain
   * agreement (the test in chooseLevel); this only decides where the allowed disagreements go —
   * away from the rare classes, which is what keeps macro-F1. Default true.
   */
  classBalanced?: boolean;
}

/** τ(ε) fitted on a split, for every ε of the grid. */
export function fitFamily(t: ExitTable, grid: number[], opts: FamilyOptions = {}): number[][] {
  const n = t.full.length;
  const minExits = opts.minExits ?? Math.max(20, Math.ceil(0.01 * n));
  const counts = new Map<number, number>();
  for (const y of t.full) counts.set(y, (counts.get(y) ?? 0) + 1);
  const weight = (i: number): number => (opts.classBalanced === false ? 1 : n / (counts.size * counts.get(t.full[i]!)!));
  return grid.map((eps) => {
    const thresholds: number[] = [];
    let running = Array.from({ length: n }, (_, i) => i);
    for (let k = 0; k < t.entropy.length; k++) {
      const e = t.entropy[k]!, p = t.pred[k]!;
      const sorted = [...running].sort((a, b) => e[a]! - e[b]!);
      let dis = 0, mass = 0, best = -1;
      for (let j = 0; j < sorted.length; j++) {
        const i = sorted[j]!;
        const w = weight(i);
        mass += w;
        if (p[i] !== t.full[i]) dis += w;
        // only cut between distinct entropies, so "≤ τ" selects exactly this prefix
        const next = sorted[j + 1];
        if (next !== undefined && e[next] === e[i]) continue;
        if (j + 1 >= minExits && dis <= eps * mass) best = e[i]!;
      }
      thresholds.push(best);
      if (best >= 0) running = running.filter((i) => e[i]! > best);
    }
    return thresholds;
  });
}

/** The ε grid: 0 … 0.5 in steps of 0.0025. */
export function defaultGrid(): number[] {
  return Array.from({ length: 201 }, (_, j) => j * 0.0025);
}

function logChoose(n: number, k: number): number {
  return lgamma(n + 1) - lgamma(k + 1) - lgamma(n - k + 1);
}

/** log Γ(x), Lanczos (g = 7, n = 9), |error| < 1e-13 for x > 0. */
export function lgamma(x: number): number {
  const c = [0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059, 12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7];
  if (x < 0.5) return Math.log(Math.PI / Math.abs(Math.sin(Math.PI * x))) - lgamma(1 - x);
  x -= 1;
  let a = c[0]!;
  const t = x + 7.5;
  for (let i = 1; i < 9; i++) a += c[i]! / (x + i);
  return 0.5 * Math.log(2 * Math.PI) + (x + 0.5) * Math.log(t) - t + Math.log(a);
}

/** P[Bin(n, p) ≤ k]. */
export function binomCdf(k: number, n: number, p: number): number {
  if (k < 0) return 0;
  if (k >= n) return 1;
  if (p <= 0) return 1;
  if (p >= 1) return 0;
  const lp = Math.log(p), lq = Math.log1p(-p);
  let s = 0;
  for (let j = 0; j <= k; j++) s += Math.exp(logChoose(n, j) + j * lp + (n - j) * lq);
  return Math.min(1, s);
}

/** Clopper–Pearson one-sided upper bound on a rate with k events in n trials, at confidence 1 − α. */
export function clopperPearsonUpper(k: number, n: number, alpha: number): number {
  if (n === 0 || k >= n) return 1;
  let lo = k / n, hi = 1;
  for (let it = 0; it < 60; it++) {
    const mid = (lo + hi) / 2;
    if (binomCdf(k, n, mid) > alpha) lo = mid;
    else hi = mid;
  }
  return hi;
}

export interface LevelChoice {
  /** index into the grid of the chosen ε, or -1 when none passed (the level runs at full depth) */
  index: number;
  thresholds: number[] | null;
  /** on the calibration split */
  calibration: Simulated & { n: number; upperDisagreement: number };
}

/**
 * Fixed-sequence test over the family (increasing ε) on the calibration split: the last ε whose
 * null "agreement < target" is rejected at δ, before the first that is not.
 */
export function chooseLevel(family: number[][], cal: ExitTable, nLayers: number, target: number, confidence: number): LevelChoice {
  const n = cal.full.length;
  const delta = 1 - confidence;
  let chosen = -1;
  let sim: Simulated = simulate(cal, [], nLayers);
  for (let j = 0; j < family.length; j++) {
    const s = simulate(cal, family[j]!, nLayers);
    const p = binomCdf(s.disagreements, n, 1 - target);
    if (p > delta) break;
    chosen = j;
    sim = s;
  }
  return {
    index: chosen,
    thresholds: chosen >= 0 ? family[chosen]! : null,
    calibration: { ...sim, n, upperDisagreement: clopperPearsonUpper(sim.disagreements, n, delta) },
  };
}
