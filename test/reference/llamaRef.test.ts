/**
 * The reference forward pass against goldens from independent runtimes (../shared model READMEs):
 * llama.cpp's greedy text for stories260K, and the torch greedy ids of the caption models, read
 * from the GGUF files (adjacent-pair RoPE) and from the Hugging Face folders (rotate-half RoPE).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { readGguf } from '../../agent/convert/gguf.js';
import type { LlamaSource } from '../../agent/convert/source.js';
import { sharedPath } from '../helpers/shared.js';
import { argmax, LlamaReference, referenceGreedy, referenceLogits } from './llamaRef.js';

/** stories260K/README.md: llama.cpp's greedy continuation of `Once upon a time` (BOS first). */
const STORIES_PROMPT = [1, 403, 407, 261, 378];
const STORIES_GOLDEN =
  ', there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball. She wanted to play with it, but it was too high.\n' +
  'Lily\'s mom said, "Lily, let\'s go to the park." Lily was sad and didn\'t know what to do. She said, "I want to play with your ball, but I can\'t find it."\n' +
  'Lily was sad and didn\'t know what to do. She said, "I\'m sorry, Lily. I didn\'t know what to do."\n';

/** caption READMEs: the two highest-margin prompts, prompt ids → generated ids (EOS included). */
const CAPTION_GOLDENS: Record<string, Array<{ prompt: string; ids: number[]; out: number[] }>> = {
  'caption-lm-8L': [
    { prompt: 'a black dog', ids: [1, 259, 342, 293], out: [294, 415, 420, 271, 370, 2] },
    { prompt: 'the dog', ids: [1, 271, 293], out: [294, 415, 420, 271, 370, 2] },
  ],
  'caption-lm-8L-ee': [
    { prompt: 'the dog', ids: [1, 271, 293], out: [294, 415, 420, 271, 370, 2] },
    { prompt: 'a black dog', ids: [1, 259, 342, 293], out: [294, 415, 420, 271, 394, 2] },
  ],
};
const CAPTION_CONTEXT = 64;

/**
 * caption READMEs: every golden prompt with its greedy ids and the torch runtime's smallest
 * top-1 minus top-2 logit margin along the greedy path (printed to 3 decimals).
 */
const CAPTION_MARGINS: Record<string, Array<[number[], number[], number]>> = {
  'caption-lm-8L': [
    [[1, 259, 293], [526, 420, 271, 370, 2], 0.09],
    [[1, 315, 493], [343, 422, 269, 259, 370, 286, 524, 2], 0.0],
    [[1, 259, 301, 269, 259, 377], [572, 294, 436, 285, 259, 478, 2], 0.229],
    [[1, 259, 342, 293], [294, 415, 420, 271, 370, 2], 0.629],
    [[1, 271, 293], [294, 415, 420, 271, 370, 2], 0.553],
  ],
  'caption-lm-8L-ee': [
    [[1, 259, 293], [294, 415, 420, 271, 394, 2], 0.082],
    [[1, 315, 493], [343, 422, 269, 259, 370, 286, 524, 2], 0.447],
    [[1, 259, 301, 269, 259, 377], [421, 294, 436, 285, 259, 478, 571, 310, 259, 706, 2], 0.009],
    [[1, 271, 293], [294, 415, 420, 271, 370, 2], 0.383],
    [[1, 259, 342, 293], [294, 415, 420, 271, 394, 2], 0.305],
  ],
};
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
  const ids = referenceGreedy(src, STORIES_PROMPT, 200, src.tokenizer.kind === 'sentencepiece' ? src.tokenizer.eos : EOS);
  assert.equal(ids.length, 200);
  const text = decodePieces(src, ids);
  assert.ok(text.startsWith(STORIES_GOLDEN), `reference text differs from llama.cpp's:\n${text}`);
});

for (const model of Object.keys(CAPTION_GOLDENS)) {
  test(`${model} (GGUF F32, adjacent RoPE): greedy ids equal the README goldens`, async () => {
    const src = await readGguf(sharedPath(`models/${model}/${model}.gguf`));
    assert.equal(src.config.ropeLayout, 'adjacent');
    for (const g of CAPTION_GOLDENS[model] ?? []) {
      assert.deepEqual(referenceGreedy(src, g.ids, CAPTION_CONTEXT - g.ids.length, EOS), g.out, `prompt '${g.prompt}'`);
    }
  });
}

for (const model of Object.keys(CAPTION_MARGINS)) {
  test(`${model}: teacher-forced logits give the golden argmax and the README's logit margins (±0.0006)`, async () => {
    const src = await readGguf(sharedPath(`models/${model}/${model}.gguf`));
    for (const [prompt, out, margin] of CAPTION_MARGINS[model] ?? []) {
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
    for (const g of CAPTION_GOLDENS['caption-lm-8L-ee'] ?? []) {
      assert.deepEqual(referenceGreedy(src, g.ids, CAPTION_CONTEXT - g.ids.length, EOS), g.out, `${file}, prompt '${g.prompt}'`);
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
