/**
 * Plan choice on synthetic token tables, where the right answer is known by construction: capped
 * plans (static truncation with entropy exits before it) against full-depth ones, Learn-then-Test
 * refusing a cap that is too shallow, and the speculative drafter replay's bookkeeping.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type TokenTable, chooseThresholds, fitThresholdFamily, planCandidates, simulateTable, testPlan, testPlans } from '../../agent/calibrate/exitTable.js';
import { drafterCandidates, replayDrafts } from '../../agent/calibrate/speculation.js';
import type { CostModel } from '../../agent/engine/ladder.js';
import { prng } from '../../agent/engine/sampling.js';

const L = 4;
const costs: CostModel = { call_us: 20, layer_us: 70, head_us: 60, verify_us: [400, 410, 420, 430, 440] };

/**
 * n tokens; after `layer` layers the exit head is right with probability agree[layer-1]; a right
 * answer has low entropy with probability `sharp` (else high), a wrong one always high.
 */
function table(n: number, agree: number[], seed: number, sharp = 0.9): TokenTable {
  const rnd = prng(seed);
  const full = Int32Array.from({ length: n }, () => Math.floor(rnd() * 50));
  const entropy: Float32Array[] = [];
  const pred: Int32Array[] = [];
  for (let e = 1; e < L; e++) {
    const p = new Int32Array(n);
    const h = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      const right = rnd() < agree[e - 1]!;
      p[i] = right ? full[i]! : full[i]! + 1;
      h[i] = right && rnd() < sharp ? 0.1 + 0.1 * rnd() : 0.5 + 0.4 * rnd();
    }
    entropy.push(h);
    pred.push(p);
  }
  return { score: entropy, pred, full };
}

describe('capped plans', () => {
  const fit = table(6000, [0.5, 0.985, 0.995], 1);
  const cal = table(6000, [0.5, 0.985, 0.995], 2);
  const family = fitThresholdFamily(fit, L, 20);

  test('a cap whose plain truncation misses the target is refused; a feasible one exits every token by the cap', () => {
    assert.equal(chooseThresholds(family, cal, L, { points: [], cap: 1 }, 0.97, 0.95), undefined, 'layer 1 agrees 50 %: no plan may stop there');
    const f = chooseThresholds(family, cal, L, { points: [1], cap: 2 }, 0.97, 0.95)!;
    assert.ok(f, 'cap 2 (98.5 %) holds a 97 % target');
    assert.equal(f.thresholds[1], Infinity);
    assert.equal(f.calibration.exits[3], 0, 'no token runs past the cap');
    assert.equal(f.calibration.exits[4], 0);
    assert.ok(f.calibration.agreement >= 0.97);
    assert.ok(f.calibration.upper <= 0.03 + 1e-12, 'the guarantee: upper bound on disagreement within 1 − target');
  });

  test('the cheapest candidate is the shallow cap when it holds the target; a higher target moves it deeper', () => {
    const c97 = planCandidates(family, fit, L, 0.97, 0.95, costs);
    assert.equal(c97[0]!.s.cap, 2, `candidates: ${JSON.stringify(c97.map((c) => c.s))}`);
    assert.ok(c97.every((c) => c.s.cap === undefined || c.s.cap >= 2), 'no candidate capped at layer 1');
    for (let i = 1; i < c97.length; i++) assert.ok(c97[i]!.us >= c97[i - 1]!.us, 'sorted by predicted cost');
    const c99 = planCandidates(family, fit, L, 0.99, 0.95, costs);
    assert.ok(!c99.some((c) => c.s.cap === 2), 'cap 2 (98.5 %) cannot hold 99 %');
    const p = testPlan(family, cal, L, c97[0]!.s, 0.97, 0.95, costs);
    assert.equal(p.cap, 2);
    assert.equal(p.exits.at(-1), 2);
    assert.ok(p.fit.calibration.meanLayers <= 2);
  });

  test('fallbacks in a fixed order: the first that holds the target is used, each tested at δ/K', () => {
    const r = testPlans(family, cal, L, [{ points: [], cap: 1 }, { points: [1], cap: 2 }, { points: [], cap: 3 }], 0.97, 0.95, costs);
    assert.equal(r.index, 1);
    assert.equal(r.plan.cap, 2);
    // δ/3 is stricter than δ: the bound is at least as tight as a single test's
    assert.ok(r.plan.fit.calibration.upper <= 0.03 + 1e-12);
    const none = testPlans(family, cal, L, [{ points: [], cap: 1 }], 0.97, 0.95, costs);
    assert.equal(none.index, -1);
    assert.deepEqual(none.plan.exits, []);
  });

  test('a structure that fails on the calibration split falls back to full depth', () => {
    const bad = table(6000, [0.5, 0.9, 0.995], 3);
    const p = testPlan(family, bad, L, { points: [], cap: 2 }, 0.97, 0.95, costs);
    assert.deepEqual(p.exits, []);
    assert.equal(p.cap, undefined);
    assert.equal(p.fit.calibration.agreement, 1);
    assert.equal(simulateTable(bad, p.fit.thresholds, L).meanLayers, L);
  });
});

describe('speculative drafter replay', () => {
  /** one text of n positions; the depth-1 draft is right where `right` says, entropy `ent` */
  function oneText(right: boolean[], ent: number[]): { t: TokenTable; textOf: Int32Array } {
    const full = Int32Array.from(right, (_, i) => i + 10);
    const pred = Int32Array.from(right, (r, i) => (r ? i + 10 : 0));
    const t: TokenTable = { full, pred: [pred, pred, pred], score: [Float32Array.from(ent), Float32Array.from(ent), Float32Array.from(ent)] };
    return { t, textOf: new Int32Array(right.length) };
  }
  const draftUs = costs.call_us + costs.layer_us + costs.head_us;
  /** verifying n drafts from depth 1: layers 1..L of the fused graph's cost on n rows, plus a call */
  const v = (n: number) => costs.call_us + (costs.verify_us![n - 1]! - costs.call_us) * ((L - 1) / L);

  test('all drafts right: each verification keeps them all (n drafts, n rows verified)', () => {
    const { t, textOf } = oneText(new Array(6).fill(true), new Array(6).fill(0.1));
    const r = replayDrafts(t, textOf, 1, 2, Infinity, costs);
    // cycles at 0, 2 and 4: two drafts each, two tokens each
    assert.equal(r.acceptance, 1);
    assert.equal(r.usPerToken, (3 * (2 * draftUs + v(2))) / 6);
  });

  test('all drafts wrong: one token per verification; the entropy stop cuts the wasted drafts', () => {
    const { t, textOf } = oneText(new Array(4).fill(false), new Array(4).fill(0.8));
    const r = replayDrafts(t, textOf, 1, 3, Infinity, costs);
    assert.equal(r.acceptance, 0);
    // cycles at 0,1,2,3 draft min(3, 4-p) = 3,3,2,1 tokens
    assert.equal(r.usPerToken, (9 * draftUs + 2 * v(3) + v(2) + v(1)) / 4);
    const stopped = replayDrafts(t, textOf, 1, 3, 0.5, costs);
    assert.equal(stopped.usPerToken, (4 * draftUs + 4 * v(1)) / 4);
  });

  test('texts do not run into each other', () => {
    const { t } = oneText(new Array(6).fill(true), new Array(6).fill(0.1));
    const r = replayDrafts(t, Int32Array.of(0, 0, 0, 1, 1, 1), 1, 4, Infinity, costs);
    // each text: one cycle drafting its 3 positions, all right → 3 tokens
    assert.equal(r.usPerToken, (2 * (3 * draftUs + v(3))) / 6);
  });

  test('candidates are offered only when predicted faster than full depth', () => {
    const good = oneText(new Array(400).fill(true), new Array(400).fill(0.1));
    const cands = drafterCandidates(good.t, good.textOf, L, costs);
    assert.ok(cands.length > 0);
    assert.ok(cands[0]!.usPerToken < costs.verify_us![0]!);
    const bad = oneText(new Array(400).fill(false), new Array(400).fill(0.1));
    assert.deepEqual(drafterCandidates(bad.t, bad.textOf, L, costs), []);
  });
});
