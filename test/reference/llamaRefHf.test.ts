/**
 * The reference forward pass on the caption models' Hugging Face folders (config.json +
 * model.safetensors, HF rotate-half RoPE on permuted q/k rows) against the README goldens, and
 * against the same weights read from GGUF (adjacent-pair RoPE): the two layouts must agree.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { readGguf } from '../../agent/convert/gguf.js';
import { readHfLlama } from '../../agent/convert/hf.js';
import { highMarginGoldens } from '../helpers/readmeGoldens.js';
import { sharedPath } from '../helpers/shared.js';
import { referenceGreedy, referenceLogits } from './llamaRef.js';

const CONTEXT = 64;
const EOS = 2;

for (const model of ['caption-lm-8L', 'caption-lm-8L-ee']) {
  test(`${model} (HF safetensors, rotate-half RoPE): greedy ids equal the README goldens`, async () => {
    const src = await readHfLlama(sharedPath(`models/${model}/hf`));
    assert.equal(src.config.ropeLayout, 'halves');
    assert.equal(src.config.tiedEmbeddings, true, 'config.json ties the LM head to the embedding');
    for (const g of highMarginGoldens(model, 0.2).slice(0, 2)) {
      assert.deepEqual(referenceGreedy(src, g.promptIds, CONTEXT - g.promptIds.length, EOS), g.generated, `prompt '${g.prompt}'`);
    }
  });
}

test('caption-lm-8L-ee: HF (rotate-half) and GGUF (adjacent) logits agree to 1e-4 on 32 positions', async () => {
  const hf = await readHfLlama(sharedPath('models/caption-lm-8L-ee/hf'));
  const gguf = await readGguf(sharedPath('models/caption-lm-8L-ee/caption-lm-8L-ee.gguf'));
  // a golden caption, then a second one: 32 positions, every RoPE angle distinct
  const tokens = [1, 259, 342, 293, 294, 415, 420, 271, 394, 2, 1, 259, 301, 269, 259, 377, 421, 294, 436, 285, 259, 478, 571, 310, 259, 706, 2, 1, 271, 293, 294, 415];
  const a = referenceLogits(hf, tokens);
  const b = referenceLogits(gguf, tokens);
  assert.equal(a.length, 32);
  for (let i = 0; i < 32; i++) {
    const x = a[i] as Float32Array;
    const y = b[i] as Float32Array;
    let diff = 0;
    for (let v = 0; v < x.length; v++) diff = Math.max(diff, Math.abs((x[v] as number) - (y[v] as number)));
    assert.ok(diff < 1e-4, `position ${i}: max |HF - GGUF| = ${diff}`);
  }
});
