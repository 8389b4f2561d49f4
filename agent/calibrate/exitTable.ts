/**
 * Per-token exit statistics of a decoder on one data split, and the thresholds chosen from them.
 *
 * Family: for a target disagreement ε, each exit point e gets the largest entropy τ_e(ε) at which
 * the tokens with entropy ≤ τ_e disagree with the full model at most a fraction ε of the time
 * (fitted on the "fit" split, with at least `minExits` such tokens; otherwise no exit at e). This is
 * what finds the minimum useful layer: a layer whose confident tokens are wrong (stories260K layer
 * 0 echoes its input) gets no threshold at any ε.
 * Choice: Learn-then-Test — on the calibration split, test "agreement < target" for ε in increasing
 * order with a binomial test at δ = 1 − confidence and stop at the first not rejected.
 */
import { binomCdf, clopperPearsonUpper } from './classifierLadder.js';
import type { CostModel } from '../engine/ladder.js';

export interface TokenTable {
  /** entropy[e-1][i]: normalized exit entropy after e layers, token i */
  entropy: Float32Array[];
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
      if (tau >= 0 && t.entropy[e - 1]![i]! <= tau) {
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
  const orders = t.entropy.map((ent) => Int32Array.from({ length: n }, (_, i) => i).sort((a, b) => ent[a]! - ent[b]!));
  return EPS_GRID.map((eps) => {
    const running = new Uint8Array(n).fill(1);
    const thresholds: number[] = [];
    for (let e = 1; e < nLayers; e++) {
      const ent = t.entropy[e - 1]!;
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
        if (next !== undefined && ent[next] === ent[i]) continue; // cut only between distinct values
        if (seen >= minExits && dis <= eps * seen) best = ent[i]!;
      }
      thresholds.push(best);
      if (best >= 0) for (let i = 0; i < n; i++) if (running[i] && ent[i]! <= best) running[i] = 0;
    }
    return thresholds;
  });
}

export interface LevelFit {
  /** the chosen thresholds (all -1 when no ε passed: full depth) */
  thresholds: number[];
  calibration: Simulation & { upper: number };
}

/** Learn-then-Test over the family restricted to `points` (exit points kept), in order of ε. */
export function chooseThresholds(family: number[][], cal: TokenTable, nLayers: number, points: Set<number>, target: number, confidence: number): LevelFit {
  const delta = 1 - confidence;
  const none = new Array<number>(nLayers - 1).fill(-1);
  let chosen = none;
  let sim = simulateTable(cal, none, nLayers);
  for (const row of family) {
    const thresholds = row.map((tau, k) => (points.has(k + 1) ? tau : -1));
    const s = simulateTable(cal, thresholds, nLayers);
    if (binomCdf(s.disagreements, s.n, 1 - target) > delta) break;
    chosen = thresholds;
    sim = s;
  }
  return { thresholds: chosen, calibration: { ...sim, upper: clopperPearsonUpper(sim.disagreements, sim.n, delta) } };
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
  exits: number[];
  fit: LevelFit;
  predictedUs: number;
}

/**
 * Exit points that pay: start from every point that has a threshold, drop greedily the one whose
 * removal lowers the predicted cost most, while any does. Each candidate is LTT-tested on its own.
 */
export function choosePlan(family: number[][], cal: TokenTable, nLayers: number, target: number, confidence: number, costs: CostModel): PlanChoice {
  const evaluate = (pts: number[]): PlanChoice => {
    const fit = chooseThresholds(family, cal, nLayers, new Set(pts), target, confidence);
    const exits = pts.filter((e) => fit.thresholds[e - 1]! >= 0);
    return { exits, fit, predictedUs: predictedCost(costs, exits, fit.calibration, nLayers) };
  };
  let best = evaluate(Array.from({ length: nLayers - 1 }, (_, i) => i + 1).filter((e) => family.some((row) => row[e - 1]! >= 0)));
  for (;;) {
    let improved: PlanChoice | undefined;
    for (const e of best.exits) {
      const c = evaluate(best.exits.filter((x) => x !== e));
      if (c.predictedUs < (improved ?? best).predictedUs) improved = c;
    }
    if (!improved) return best;
    best = improved;
  }
}
