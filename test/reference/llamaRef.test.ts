/**
 * The reference forward pass against goldens from independent runtimes (../shared model READMEs):
 * llama.cpp's greedy text for stories260K, and the torch greedy ids of the caption models, read
 * from the GGUF files (adjacent-pair RoPE) and from the Hugging Face folders (rotate-half RoPE).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { readGguf } from '../../agent/convert/gguf.js';
import type { LlamaSource } from '../../agent/convert/source.js';
import { captionGoldens, highMarginGoldens, storiesGolden } from '../helpers/readmeGoldens.js';
import { sharedPath } from '../helpers/shared.js';
import { argmax, LlamaReference, referenceGreedy, referenceLogits } from './llamaRef.js';

/** Goldens read from the READMEs: the two highest-margin prompts per caption model for strict greedy equality. */
const CAPTION_MODELS = ['caption-lm-8L', 'caption-lm-8L-ee'];
const CAPTION_CONTEXT = 64;
const strict = (model: string) => highMarginGoldens(model, 0.2).slice(0, 2);
const EOS = 2;

/** SentencePiece pieces → text: '▁' is a space, `<0xNN>` pieces are raw UTF-8 bytes. */
function decodePieces(src: LlamaSource, ids: number[]): string {
  assert.equal(src.tokenizer.kind, 'sentencepiece', 'stories260K carries a SentencePiece vocabulary');
  const pieces = src.tokenizer.kind === 'sentencepiece' ? src.tokenizer.pieces : [];
  const bytes: number[] = [];
  for (const id of ids) {
    const p = pieces[id];
    assert.ok(p !== undefined, `id ${id} is not in the vocabulary`);
    const m = /^<0x([0-9A-Fa-f]{2})>$/.exec(p);
    if (m) bytes.push(parseInt(m[1] as string, 16));
    else bytes.push(...Buffer.from(p.replaceAll('\u2581', ' '), 'utf8'));
  }
  return Buffer.from(bytes).toString('utf8');
}

test('stories260K: 200 greedy tokens reproduce llama.cpp\'s golden text (GQA 8/4, adjacent RoPE)', async () => {
  const src = await readGguf(sharedPath('models/stories260K/stories260K.gguf'));
  assert.equal(src.config.nKvHeads * 2, src.config.nHeads, 'stories260K has grouped-query attention');
  const golden = storiesGolden();
  const ids = referenceGreedy(src, golden.promptIds, 200, src.tokenizer.kind === 'sentencepiece' ? src.tokenizer.eos : EOS);
  assert.equal(ids.length, 200);
  const text = decodePieces(src, ids);
  // the README shows the complete lines of the continuation; a cut-off last line follows
  assert.ok(text.startsWith(golden.text + '\n'), `reference text differs from llama.cpp's:\n${text}`);
});

for (const model of CAPTION_MODELS) {
  test(`${model} (GGUF F32, adjacent RoPE): greedy ids equal the README goldens`, async () => {
    const src = await readGguf(sharedPath(`models/${model}/${model}.gguf`));
    assert.equal(src.config.ropeLayout, 'adjacent');
    for (const g of strict(model)) {
      assert.deepEqual(referenceGreedy(src, g.promptIds, CAPTION_CONTEXT - g.promptIds.length, EOS), g.generated, `prompt '${g.prompt}'`);
    }
  });
}

for (const model of CAPTION_MODELS) {
  test(`${model}: teacher-forced logits give the golden argmax and the README's logit margins (±0.0006)`, async () => {
    const src = await readGguf(sharedPath(`models/${model}/${model}.gguf`));
    for (const g of captionGoldens(model)) {
      if (g.promptIds === undefined || g.margin === undefined) continue;
      const [prompt, out, margin] = [g.promptIds, g.generated, g.margin];
      const tokens = [...prompt, ...out.slice(0, -1)];
      const logits = referenceLogits(src, tokens);
      assert.equal(logits.length, tokens.length);
      let smallest = Infinity;
      for (let i = prompt.length - 1; i < tokens.length; i++) {
        const l = logits[i] as Float32Array;
        const top = argmax(l);
        assert.equal(top, out[i - prompt.length + 1], `prompt ${JSON.stringify(prompt)}, position ${i}`);
        let second = -Infinity;
        for (let v = 0; v < l.length; v++) if (v !== top) second = Math.max(second, l[v] as number);
        smallest = Math.min(smallest, (l[top] as number) - second);
      }
      assert.ok(Math.abs(smallest - margin) <= 6e-4, `prompt ${JSON.stringify(prompt)}: margin ${smallest.toFixed(5)}, README ${margin}`);
    }
  });
}

test('caption-lm-8L-ee F16 and Q8_0 GGUF: greedy ids equal the goldens (README: numpy reference with Q8_0 dequantized agrees)', async () => {
  for (const file of ['caption-lm-8L-ee.f16.gguf', 'caption-lm-8L-ee.q8_0.gguf']) {
    const src = await readGguf(sharedPath(`models/caption-lm-8L-ee/${file}`));
    for (const g of strict('caption-lm-8L-ee')) {
      assert.deepEqual(referenceGreedy(src, g.promptIds, CAPTION_CONTEXT - g.promptIds.length, EOS), g.generated, `${file}, prompt '${g.prompt}'`);
    }
  }
});

test('LlamaReference refuses positions past the context and tokens outside the vocabulary', async () => {
  const src = await readGguf(sharedPath('models/caption-lm-8L/caption-lm-8L.gguf'));
  const m = new LlamaReference(src);
  assert.throws(() => m.forward(src.config.vocabSize), /outside vocab/);
  for (let i = 0; i < CAPTION_CONTEXT; i++) m.forward(1);
  assert.throws(() => m.forward(1), /past the model's context 64/);
  m.reset();
  assert.equal(m.forward(1).length, src.config.vocabSize);
});
