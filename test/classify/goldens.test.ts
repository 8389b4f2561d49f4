/**
 * moderation-bert-6L converted to a bundle reproduces the README's goldens (numpy/torch reference):
 * the HF tokenizer's input_ids exactly, and the full model's logits to 1e-4 — through the fused
 * full-depth graph and through the per-layer graphs the early-exit path uses.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { readManifest } from '../../agent/engine/bundle.js';
import { Classifier } from '../../agent/engine/classifier.js';
import { bertProbes, tempBertBundle } from './fixtures.js';

describe('moderation-bert-6L goldens', () => {
  let b: { dir: string; cleanup: () => void };
  let model: Classifier;
  before(async () => {
    b = await tempBertBundle();
    model = await Classifier.open(b.dir);
  });
  after(async () => {
    await model?.dispose();
    b?.cleanup();
  });

  it('writes a classify manifest with labels from id2label', () => {
    const m = readManifest(b.dir, true);
    assert.equal(m.task, 'classify');
    assert.equal(m.architecture, 'bert');
    assert.deepEqual(m.labels, ['hate', 'offensive', 'neither']);
    assert.equal(m.config.nLayers, 6);
    assert.equal(m.config.maxLength, 128);
    for (const role of ['embed', 'layer.0', 'layer.5', 'head', 'full']) assert.ok(m.graphs[role], `graph ${role}`);
  });

  for (const p of bertProbes()) {
    it(`"${p.text}": ids and logits`, async () => {
      const enc = model.encode(p.text);
      assert.deepEqual(Array.from(enc.ids), p.ids);
      assert.deepEqual(Array.from(enc.typeIds), new Array(p.ids.length).fill(0));
      for (const [path, out] of [
        ['fused', await model.runFull(enc)],
        ['per-layer', await model.runExits(enc, new Array(6).fill(-1))],
      ] as const) {
        assert.ok(out.logits, `${path}: logits`);
        assert.equal(out.layers, 6);
        out.logits.forEach((v, i) => assert.ok(Math.abs(v - p.logits[i]!) <= 1e-4, `${path} logit ${i}: ${v} vs ${p.logits[i]}`));
      }
      const r = await model.classify(p.text);
      assert.equal(r.label, p.label);
      assert.equal(r.level, 'full');
    });
  }

  it('padded batches (trace) give the same logits as single texts', async () => {
    const probes = bertProbes();
    const t = await model.trace(probes.map((p) => model.encode(p.text)), 8);
    probes.forEach((p, i) => p.logits.forEach((v, c) => assert.ok(Math.abs(t.logits[i * 3 + c]! - v) <= 1e-4, `${p.text} logit ${c}`)));
  });
});
