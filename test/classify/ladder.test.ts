/**
 * The statistics behind the ladder: binomial tail, Clopper–Pearson bound, the replay of thresholds,
 * the family fit, and Learn-then-Test's fixed-sequence stopping rule — on hand-checkable cases.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { binomCdf, chooseLevel, clopperPearsonUpper, fitFamily, lgamma, simulate, type ExitTable } from '../../agent/calibrate/classifierLadder.js';

const close = (a: number, b: number, tol: number, what: string): void => assert.ok(Math.abs(a - b) <= tol, `${what}: ${a} vs ${b}`);

/** One exit point; text i has entropy e[i], head label pred[i], full label full[i]. */
function table(e: number[], pred: number[], full: number[]): ExitTable {
  return { entropy: [Float64Array.from(e)], pred: [Int32Array.from(pred)], full: Int32Array.from(full) };
}

describe('ladder statistics', () => {
  it('lgamma and the binomial CDF match closed forms', () => {
    close(lgamma(10), Math.log(362880), 1e-10, 'lgamma(10)');
    close(lgamma(0.5), Math.log(Math.sqrt(Math.PI)), 1e-10, 'lgamma(1/2)');
    close(binomCdf(3, 10, 0.5), 176 / 1024, 1e-12, 'P[Bin(10,.5) ≤ 3]');
    close(binomCdf(0, 20, 0.1), 0.9 ** 20, 1e-12, 'P[Bin(20,.1) = 0]');
    assert.equal(binomCdf(-1, 5, 0.3), 0);
    assert.equal(binomCdf(5, 5, 0.3), 1);
  });

  it('Clopper–Pearson upper bound: closed form at k = 0, defining equation otherwise', () => {
    close(clopperPearsonUpper(0, 100, 0.05), 1 - 0.05 ** (1 / 100), 1e-9, 'k=0');
    const u = clopperPearsonUpper(5, 100, 0.05);
    close(binomCdf(5, 100, u), 0.05, 1e-6, 'P[Bin(100,u) ≤ 5] = α');
    assert.ok(u > 0.05 && u < 0.12);
    assert.equal(clopperPearsonUpper(3, 3, 0.05), 1);
  });

  it('simulate replays thresholds: exits, depth and agreement', () => {
    // two exit points, 4 texts
    const t: ExitTable = {
      entropy: [Float64Array.from([0.1, 0.5, 0.9, 0.2]), Float64Array.from([0.3, 0.1, 0.9, 0.1])],
      pred: [Int32Array.from([0, 1, 1, 2]), Int32Array.from([0, 1, 1, 1])],
      full: Int32Array.from([0, 1, 0, 1]),
    };
    const s = simulate(t, [0.2, 0.2], 3);
    // text0 exits at 0 (right), text1 at 1 (right), text2 runs to 3 (full: right), text3 at 0 (wrong)
    assert.deepEqual(s.exits, [2, 1, 0, 1]);
    assert.equal(s.disagreements, 1);
    assert.equal(s.meanLayers, (0 + 1 + 3 + 0) / 4);
    assert.equal(simulate(t, [-1, -1], 3).agreement, 1);
  });

  it('fitFamily: the largest entropy whose exiting prefix keeps disagreement ≤ ε', () => {
    // sorted by entropy: 20 right, then 1 wrong, then 20 right, then 10 wrong
    const e: number[] = [], pred: number[] = [], full: number[] = [];
    const push = (n: number, right: boolean): void => {
      for (let i = 0; i < n; i++) {
        e.push(e.length / 100);
        pred.push(right ? 1 : 0);
        full.push(1);
      }
    };
    push(20, true);
    push(1, false);
    push(20, true);
    push(10, false);
    const t = table(e, pred, full);
    const [f0, f1, f2] = fitFamily(t, [0, 0.05, 0.3], { minExits: 5, classBalanced: false });
    assert.deepEqual(f0, [0.19]); // 20 right ones only
    assert.deepEqual(f1, [0.41]); // 2 wrong in 42 ≤ 5 % (3 in 43 is not)
    assert.deepEqual(f2, [0.5]); // 11 wrong in 51 ≤ 30 %: everything
    assert.deepEqual(fitFamily(t, [0], { minExits: 30, classBalanced: false })[0], [-1]);
  });

  it('Learn-then-Test stops at the first threshold that fails, even when a later one would pass', () => {
    // 1000 texts: entropy i/1000; texts 300..399 disagree, all others agree
    const n = 1000;
    const e = Array.from({ length: n }, (_, i) => i / n);
    const pred = e.map((_, i) => (i >= 300 && i < 400 ? 0 : 1));
    const t = table(e, pred, new Array(n).fill(1));
    const family = [[0.1], [0.29], [0.5], [0.999]];
    // target 0.95: [0.29] has 0 disagreements; [0.5] has 100 (10 %): fails; [0.999] has 100 too
    const c = chooseLevel(family, t, 2, 0.95, 0.95);
    assert.equal(c.index, 1);
    assert.deepEqual(c.thresholds, [0.29]);
    assert.equal(c.calibration.disagreements, 0);
    // a family that starts with a failing entry gives no thresholds: full depth
    const none = chooseLevel([[0.5], [0.29]], t, 2, 0.95, 0.95);
    assert.equal(none.index, -1);
    assert.equal(none.thresholds, null);
    assert.equal(none.calibration.meanLayers, 2);
  });

  it('the binomial test is one-sided at the stated confidence', () => {
    // 2000 texts where the first 2000·r disagree at entropy below everything else
    const n = 2000;
    const check = (bad: number): number => {
      const e = Array.from({ length: n }, (_, i) => i / n);
      const pred = e.map((_, i) => (i < bad ? 0 : 1));
      return chooseLevel([[1]], table(e, pred, new Array(n).fill(1)), 1, 0.97, 0.95).index;
    };
    // 3 % target: 2000 texts, P[Bin(2000, .03) ≤ k] ≤ .05 holds up to k = 47 (mean 60)
    assert.equal(check(40), 0);
    assert.equal(check(60), -1);
  });
});
