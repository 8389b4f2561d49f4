/**
 * Per-token exit statistics of a decoder on one data split, and the thresholds chosen from them.
 *
 * Family: for a target disagreement ε, each exit point e gets the largest score τ_e(ε) at which
 * the tokens with score ≤ τ_e disagree with the full model at most a fraction ε of the time
 * (fitted on the "fit" split, with at least `minExits` such tokens; otherwise no exit at e). This is
 * what finds the minimum useful layer: a layer whose confident tokens are wrong (stories260K layer
 * 0 echoes its input) gets no threshold at any ε.
 * Shape: per level, candidate structures (exit points, optional cap) are built on the fit split;
 * calibration times the cheapest and picks one (decoderCalibrate.ts).
 * Choice: Learn-then-Test — on the calibration split, for that one structure, test "agreement <
 * target" for ε in increasing order with a binomial test at δ = 1 − confidence and stop at the
 * first not rejected.
 */
import { binomCdf, clopperPearsonUpper } from './classifierLadder.js';
import type { CostModel } from '../engine/ladder.js';

export interface TokenTable {
  /** score[e-1][i]: the exit head's score after e layers, token i (normalized entropy or margin score; lower is surer) */
  score: Float32Array[];
  /** pred[e-1][i]: the exit head's argmax after e layers */
  pred: Int32Array[];
  /** the full model's argmax */
  full: Int32Array;
}

export interface Simulation {
  n: number;
  disagreements: number;
  agreement: number;
  /** tokens exiting after e layers, e = 1..L (index e) */
  exits: number[];
  meanLayers: number;
}

/** Replay thresholds (per exit point, -1 = none) over a table. */
export function simulateTable(t: TokenTable, thresholds: number[], nLayers: number): Simulation {
  const n = t.full.length;
  const exits = new Array<number>(nLayers + 1).fill(0);
  let dis = 0;
  let layers = 0;
  for (let i = 0; i < n; i++) {
    let depth = nLayers;
    for (let e = 1; e < nLayers; e++) {
      const tau = thresholds[e - 1]!;
      if (tau >= 0 && t.score[e - 1]![i]! <= tau) {
        depth = e;
        if (t.pred[e - 1]![i] !== t.full[i]) dis++;
        break;
      }
    }
    exits[depth]!++;
    layers += depth;
  }
  return { n, disagreements: dis, agreement: n ? 1 - dis / n : 1, exits, meanLayers: n ? layers / n : nLayers };
}

/** ε grid, finer near 0 where high targets live. */
export const EPS_GRID: number[] = [0, ...Array.from({ length: 40 }, (_, j) => 0.0005 * (j + 1)), ...Array.from({ length: 46 }, (_, j) => 0.02 + 0.01 * (j + 1))];

/**
 * τ(ε) for every ε of the grid. Going through the exit points in order, τ_e(ε) is fitted on the
 * tokens still running there (the ones no earlier point took), so each point's own exits disagree
 * at most a fraction ε of the time, as they would in the cascade.
 */
export function fitThresholdFamily(t: TokenTable, nLayers: number, minExits: number): number[][] {
  const n = t.full.length;
  const wrong = t.pred.map((p) => Uint8Array.from(p, (v, i) => (v !== t.full[i] ? 1 : 0)));
  const orders = t.score.map((sc) => Int32Array.from({ length: n }, (_, i) => i).sort((a, b) => sc[a]! - sc[b]!));
  return EPS_GRID.map((eps) => {
    const running = new Uint8Array(n).fill(1);
    const thresholds: number[] = [];
    for (let e = 1; e < nLayers; e++) {
      const sc = t.score[e - 1]!;
      const bad = wrong[e - 1]!;
      let seen = 0;
      let dis = 0;
      let best = -1;
      const order = orders[e - 1]!;
      for (let j = 0; j < n; j++) {
        const i = order[j]!;
        if (!running[i]) continue;
        seen++;
        dis += bad[i]!;
        const next = order[j + 1];
        if (next !== undefined && sc[next] === sc[i]) continue; // cut only between distinct values
        if (seen >= minExits && dis <= eps * seen) best = sc[i]!;
      }
      thresholds.push(best);
      if (best >= 0) for (let i = 0; i < n; i++) if (running[i] && sc[i]! <= best) running[i] = 0;
    }
    return thresholds;
  });
}

/**
 * The shape of a plan before thresholds: the exit points that may get a score threshold, and an
 * optional cap — the deepest layer run, where every token still running exits (static truncation;
 * scored exits may come before it).
 */
export interface Structure {
  points: number[];
  cap?: number;
}

export interface LevelFit {
  /** the chosen thresholds per exit point (-1 = none; Infinity at the cap) */
  thresholds: number[];
  calibration: Simulation & { upper: number };
}

/** A family row restricted to a structure. */
function restrict(row: number[], s: Structure): number[] {
  return row.map((tau, k) => (k + 1 === s.cap ? Infinity : s.points.includes(k + 1) ? tau : -1));
}

/**
 * Learn-then-Test over the family restricted to a structure, in order of ε: the hypotheses "this
 * row's agreement < target" are tested in sequence with a binomial test at δ = 1 − confidence,
 * starting from the structure with no scored exits (full depth, or plain truncation at the cap),
 * and the last one rejected is kept. Undefined when even the first is not rejected (a cap too shallow).
 */
export function chooseThresholds(family: number[][], table: TokenTable, nLayers: number, s: Structure, target: number, confidence: number): LevelFit | undefined {
  const delta = 1 - confidence;
  let fit: LevelFit | undefined;
  for (const row of [new Array<number>(nLayers - 1).fill(-1), ...family]) {
    const thresholds = restrict(row, s);
    const sim = simulateTable(table, thresholds, nLayers);
    if (binomCdf(sim.disagreements, sim.n, 1 - target) > delta) break;
    fit = { thresholds, calibration: { ...sim, upper: clopperPearsonUpper(sim.disagreements, sim.n, delta) } };
  }
  return fit;
}

/** Predicted µs per token of a plan from the cost model and where tokens exit. */
export function predictedCost(costs: CostModel, exitPoints: number[], sim: Simulation, nLayers: number): number {
  const bounds = [0, ...exitPoints, nLayers];
  let total = 0;
  for (let e = 1; e <= nLayers; e++) {
    const count = sim.exits[e]!;
    if (!count) continue;
    let cost = 0;
    for (let s = 1; s < bounds.length; s++) {
      cost += costs.call_us + (bounds[s]! - bounds[s - 1]!) * costs.layer_us + costs.head_us;
      if (bounds[s]! >= e) break;
    }
    total += count * cost;
  }
  return total / Math.max(1, sim.n);
}

export function fusedCost(costs: CostModel, nLayers: number): number {
  return costs.call_us + nLayers * costs.layer_us + costs.head_us;
}

export interface PlanChoice {
  /** exit points with a threshold, ascending; the cap (if any) is the last */
  exits: number[];
  cap?: number;
  fit: LevelFit;
  predictedUs: number;
}

/** The exit points a fit actually uses. */
function usedExits(fit: LevelFit): number[] {
  return fit.thresholds.flatMap((tau, k) => (tau >= 0 ? [k + 1] : []));
}

export interface Candidate {
  s: Structure;
  /** thresholds as fitted on the fit split (for measuring the candidate's speed) */
  thresholds: number[];
  /** predicted µs per token on the fit split */
  us: number;
}

/**
 * A level's candidate structures, cheapest predicted first, chosen on the fit split (where the
 * thresholds were fitted): for full depth and for every cap, start from every point before it that
 * has a threshold and drop greedily the one whose removal lowers the predicted cost most, while any
 * does; one candidate per cap that meets the target there.
 */
export function planCandidates(family: number[][], fit: TokenTable, nLayers: number, target: number, confidence: number, costs: CostModel): Candidate[] {
  const plausible = Array.from({ length: nLayers - 1 }, (_, i) => i + 1).filter((e) => family.some((row) => row[e - 1]! >= 0));
  const out: Candidate[] = [];
  for (const cap of [undefined, ...Array.from({ length: nLayers - 1 }, (_, i) => i + 1)]) {
    const evaluate = (points: number[]): Candidate | undefined => {
      const f = chooseThresholds(family, fit, nLayers, { points, cap }, target, confidence);
      return f && { s: { points: points.filter((e) => f.thresholds[e - 1]! >= 0), cap }, thresholds: f.thresholds, us: predictedCost(costs, usedExits(f), f.calibration, nLayers) };
    };
    let cur = evaluate(plausible.filter((e) => cap === undefined || e < cap));
    if (!cur) continue;
    for (;;) {
      let improved: Candidate | undefined;
      for (const e of cur.s.points) {
        const c = evaluate(cur.s.points.filter((x) => x !== e));
        if (c && c.us < (improved ?? cur).us) improved = c;
      }
      if (!improved) break;
      cur = improved;
    }
    if (cur.s.points.length > 0 || cap !== undefined) out.push(cur);
  }
  return out.sort((a, b) => a.us - b.us);
}

/**
 * The one structure chosen for a level, tested on the calibration split (one Learn-then-Test
 * sequence per level, so the guarantee holds at the stated confidence); if it fails there, the
 * level runs full depth.
 */
export function testPlan(family: number[][], cal: TokenTable, nLayers: number, s: Structure | undefined, target: number, confidence: number, costs: CostModel): PlanChoice {
  const chosen = (s && chooseThresholds(family, cal, nLayers, s, target, confidence)) ?? chooseThresholds(family, cal, nLayers, { points: [] }, target, confidence)!;
  const exits = usedExits(chosen);
  const cap = chosen.thresholds.some((t) => t === Infinity) ? exits.at(-1) : undefined;
  return { exits, ...(cap === undefined ? {} : { cap }), fit: chosen, predictedUs: predictedCost(costs, exits, chosen.calibration, nLayers) };
}

/**
 * Several structures in a fixed order (decided without the calibration split, e.g. by measured
 * speed): each is tested at δ/K (Bonferroni over the K fallbacks, so the level's guarantee still
 * holds at `confidence`), and the first that keeps an exit is used; none → full depth.
 */
export function testPlans(family: number[][], cal: TokenTable, nLayers: number, structures: Structure[], target: number, confidence: number, costs: CostModel): { plan: PlanChoice; index: number } {
  const each = 1 - (1 - confidence) / Math.max(1, structures.length);
  for (const [index, s] of structures.entries()) {
    const plan = testPlan(family, cal, nLayers, s, target, each, costs);
    if (plan.exits.length > 0) return { plan, index };
  }
  return { plan: testPlan(family, cal, nLayers, undefined, target, confidence, costs), index: -1 };
}
