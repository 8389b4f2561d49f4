/**
 * Exit-head training: on synthetic data with a known linear teacher, distillation recovers it
 * (the folded standardization included), the label mix moves the head toward the labels, and heads
 * survive packing into the bundle's blob.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { evaluateHead, rng, trainHead } from '../../agent/calibrate/classifierHeads.js';
import { headProbs, headSize, packHeads, unpackHeads } from '../../agent/engine/classifierExit.js';

/** n rows of 8 features (shifted and scaled, so standardization matters) and 3 teacher logits. */
function synthetic(n: number, seed: number): { x: Float32Array; teacher: Float32Array } {
  const r = rng(seed);
  const x = new Float32Array(n * 8), teacher = new Float32Array(n * 3);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < 8; j++) x[i * 8 + j] = (r() - 0.5) * (j + 1) * 3 + 5 * j;
    const f = (j: number): number => (x[i * 8 + j]! - 5 * j) / (j + 1);
    teacher[i * 3] = 2 * f(0) - f(1);
    teacher[i * 3 + 1] = f(2) + f(3);
    teacher[i * 3 + 2] = -f(0) + 0.5 * f(4) - f(5);
  }
  return { x, teacher };
}

describe('exit heads', () => {
  it('a linear head distills a linear teacher (raw features in, standardization folded)', () => {
    const train = synthetic(3000, 1), test = synthetic(1000, 2);
    const { head, agreement } = trainHead(train.x, 8, train.teacher, undefined, { epochs: 30, seed: 3 });
    assert.equal(head.hidden, 0);
    assert.ok(agreement > 0.97, `train agreement ${agreement}`);
    const ev = evaluateHead(head, test.x, test.teacher);
    assert.ok(ev.agreement > 0.96, `test agreement ${ev.agreement}`);
    assert.ok(ev.kl < 0.05, `test KL ${ev.kl}`);
  });

  it('a tanh hidden layer trains too', () => {
    const train = synthetic(2000, 4);
    const { head, agreement } = trainHead(train.x, 8, train.teacher, undefined, { hidden: 16, epochs: 20, seed: 5 });
    assert.equal(head.hidden, 16);
    assert.ok(agreement > 0.95, `agreement ${agreement}`);
  });

  it('labels mixed in pull the head toward them', () => {
    const train = synthetic(1500, 6);
    // labels that always say class 2
    const labels = new Int32Array(1500).fill(2);
    const frac2 = (w: number): number => {
      const { head } = trainHead(train.x, 8, train.teacher, labels, { labelWeight: w, epochs: 15, seed: 7 });
      const p = new Float64Array(3);
      let n2 = 0;
      for (let i = 0; i < 1500; i++) if (headProbs(head, train.x.subarray(i * 8, i * 8 + 8), p).indexOf(Math.max(...p)) === 2) n2++;
      return n2 / 1500;
    };
    assert.ok(frac2(0.6) > frac2(0) + 0.1);
  });

  it('pack / unpack round trip, linear and hidden', () => {
    for (const hidden of [0, 4]) {
      const train = synthetic(300, 8);
      const heads = [0, 1].map((s) => trainHead(train.x, 8, train.teacher, undefined, { hidden, epochs: 2, seed: s }).head);
      const bytes = packHeads(heads);
      assert.equal(bytes.byteLength, 2 * 4 * headSize(8, hidden, 3));
      const back = unpackHeads(bytes, { in_dim: 8, hidden, classes: 3, layers: 2 });
      back.forEach((h, k) => {
        assert.deepEqual(Array.from(h.w2), Array.from(heads[k]!.w2));
        assert.deepEqual(Array.from(h.b1), Array.from(heads[k]!.b1));
      });
      assert.throws(() => unpackHeads(bytes.subarray(4), { in_dim: 8, hidden, classes: 3, layers: 2 }), /exit heads/);
    }
  });
});
