/**
 * The engine against the goldens in ../shared/models READMEs (llama.cpp / torch / numpy outputs),
 * from every source form: GGUF F32, GGUF F16, Hugging Face folder; Q8_0 against F32 by teacher forcing.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, describe, test } from 'node:test';
import type { Decoder } from '../../agent/engine/decoder.js';
import { argmax } from '../../agent/engine/sampling.js';
import { sharedDecoder } from '../helpers/bundles.js';
import { highMarginGoldens, storiesGolden } from '../helpers/readmeGoldens.js';
import { sharedPath } from '../helpers/shared.js';

async function greedyIds(d: Decoder, promptIds: number[], max: number, eos: number): Promise<number[]> {
  const s = d.newState();
  const V = d.config.vocabSize;
  let logits = await d.forward(promptIds, s);
  let off = (promptIds.length - 1) * V;
  const out: number[] = [];
  while (out.length < max) {
    const next = argmax(logits, off, V);
    out.push(next);
    if (next === eos || s.pos >= d.config.maxSeqLen) break;
    logits = await d.forward([next], s);
    off = 0;
  }
  return out;
}

const open: Decoder[] = [];
after(async () => {
  for (const d of open) await d.dispose();
});

async function decoder(rel: string): Promise<Decoder> {
  const d = await sharedDecoder(rel);
  open.push(d);
  return d;
}

describe('stories260K (GGUF, llama.cpp golden)', () => {
  // The README's golden text holds the complete lines of llama.cpp's 200-token continuation: it is
  // exactly the first 178 tokens, and token 179 is the newline before a last, cut-off line.
  test('greedy 200 tokens from "Once upon a time" equal the golden text', async () => {
    const d = await decoder('models/stories260K/stories260K.gguf');
    const { prompt, promptIds, text: STORIES_GOLDEN } = storiesGolden();
    assert.deepEqual(d.encodePrompt(prompt), promptIds);
    const r = await d.generate(prompt, { maxTokens: 200 });
    assert.equal(r.tokens.length, 200);
    assert.equal(r.stop, 'max_tokens');
    assert.equal(d.tokenizer.decode(r.tokens.slice(0, 178)), STORIES_GOLDEN);
    assert.ok(r.text.startsWith(STORIES_GOLDEN + '\n'), 'the continuation after the golden lines starts a new line');
    assert.ok(!r.text.slice(STORIES_GOLDEN.length + 1).includes('\n'), 'the README omits only the final, incomplete line');
  });

  test('the layered path gives the same tokens as the fused graph', async () => {
    const d = await decoder('models/stories260K/stories260K.gguf');
    const prompt = [1, 403, 407, 261, 378];
    const fused = await greedyIds(d, prompt, 40, 2);
    const s = d.newState();
    let logits = await d.forwardLayered(prompt, s);
    let off = (prompt.length - 1) * d.config.vocabSize;
    const layered: number[] = [];
    while (layered.length < 40) {
      const next = argmax(logits, off, d.config.vocabSize);
      layered.push(next);
      logits = await d.forwardLayered([next], s);
      off = 0;
    }
    assert.deepEqual(layered, fused);
  });
});

for (const model of ['caption-lm-8L', 'caption-lm-8L-ee']) {
  describe(`${model} goldens (torch / llama.cpp)`, () => {
    const goldens = highMarginGoldens(model, 0.2); // near-ties may legitimately differ (README)
    test('README lists high-margin goldens', () => {
      assert.ok(goldens.length >= 2, `expected ≥ 2 high-margin goldens in the ${model} README, found ${goldens.length}`);
    });
    for (const form of [`${model}.gguf`, `${model}.f16.gguf`, 'hf']) {
      test(`${form}: greedy ids equal the goldens`, async () => {
        const d = await decoder(`models/${model}/${form}`);
        for (const { prompt, promptIds, generated: golden } of goldens) {
          assert.deepEqual(d.encodePrompt(prompt), promptIds, `prompt ids of '${prompt}'`);
          assert.deepEqual(await greedyIds(d, promptIds, 64 - promptIds.length, 2), golden, `generation from '${prompt}'`);
        }
      });
    }
  });
}

describe('Q8_0 against F32 (teacher forcing over validation captions)', () => {
  for (const model of ['caption-lm-8L', 'caption-lm-8L-ee']) {
    test(`${model}: ≥ 99 % top-1 agreement on 400 validation captions`, async () => {
      const f32 = await decoder(`models/${model}/${model}.gguf`);
      const q8 = await decoder(`models/${model}/${model}.q8_0.gguf`);
      assert.match(q8.manifest.weights, /q8_0/, 'the Q8_0 bundle must keep int8 weights');
      const lines = readFileSync(sharedPath('data/flickr8k_captions/val.jsonl'), 'utf8').trim().split('\n').slice(0, 400);
      const V = f32.config.vocabSize;
      let agree = 0;
      let total = 0;
      for (const line of lines) {
        const ids = f32.encodePrompt((JSON.parse(line) as { text: string }).text).slice(0, f32.config.maxSeqLen);
        const a = await f32.forward(ids, f32.newState());
        const b = await q8.forward(ids, q8.newState());
        for (let p = 0; p < ids.length; p++) {
          total++;
          if (argmax(a, p * V, V) === argmax(b, p * V, V)) agree++;
        }
      }
      const rate = agree / total;
      assert.ok(rate >= 0.99, `agreement ${agree}/${total} = ${(rate * 100).toFixed(2)} % < 99 %`);
    });
  }
});
