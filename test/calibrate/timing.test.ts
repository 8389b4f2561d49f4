/**
 * The shared level-vs-full timing harness (calibration's speed checks and `sedac eval`): what it
 * counts, on stories260K at full depth, where every number is known without a clock.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { evaluateLevel } from '../../agent/calibrate/evaluate.js';
import { generationRun, interleavedRuns } from '../../agent/calibrate/timing.js';
import type { Decoder } from '../../agent/engine/decoder.js';
import { generateIds } from '../../agent/engine/generation.js';
import { makeSampler } from '../../agent/engine/sampling.js';
import { sharedDecoder } from '../helpers/bundles.js';

describe('timing harness', () => {
  let d: Decoder;
  const texts = ['Once upon a time there was a little girl', 'The sun was shining and the birds', 'Tom had a red ball'];
  before(async () => {
    d = await sharedDecoder('models/stories260K/stories260K.gguf');
  });
  after(async () => {
    await d.dispose();
  });

  test('counts decode steps after the first token, and the layers of what it generated', async () => {
    const prompts = texts.map((t) => d.encodePromptTruncated(t, 4));
    const r = await generationRun(d, undefined, prompts, 12);
    let steps = 0;
    for (const [i, p] of prompts.entries()) {
      const ref = await generateIds(d, p, undefined, makeSampler(0), true, 12);
      assert.deepEqual(r.outs[i], ref.tokens);
      steps += ref.tokens.length - 1 + (ref.stop === 'eos' ? 1 : 0);
    }
    assert.equal(r.decodeSteps, steps);
    assert.equal(r.layers, r.outs.flat().length * d.config.nLayers);
    assert.ok(r.decodeMs > 0);
  });

  test('interleaves full depth and the level round by round', async () => {
    const prompts = texts.map((t) => d.encodePromptTruncated(t, 3));
    const pairs = await interleavedRuns(d, undefined, prompts, 3, 8);
    assert.equal(pairs.length, 3);
    for (const p of pairs) assert.deepEqual(p.level.outs, p.full.outs);
  });

  test('eval of an uncalibrated bundle: full depth against itself', async () => {
    const r = await evaluateLevel(d, 'balanced', texts, { prompts: 3, rounds: 3, genTokens: 8 });
    assert.equal(r.level, 'full');
    assert.equal(r.agreement, 1);
    assert.equal(r.mean_layers, d.config.nLayers);
    assert.equal(r.first32_exact_match, 1);
    assert.equal(r.gen_mean_layers, d.config.nLayers);
    assert.ok(r.tokens_per_s > 0 && r.full_tokens_per_s > 0 && r.speedup > 0);
  });
});
