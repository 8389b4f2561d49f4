/**
 * tokenizer.json (HF tokenizers semantics) for the caption models: the README prompt ids, and the
 * same ids as the SentencePiece encoder built from the model's GGUF and tokenizer.model on all 5000
 * validation captions plus odd strings (the README records that transformers.js and SentencePiece
 * agree on exactly these).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { readGguf } from '../../agent/convert/gguf.js';
import { parseSentencePieceModel } from '../../agent/convert/spModel.js';
import { createTokenizer, type EngineTokenizer } from '../../agent/engine/tokenizer/index.js';
import { buildDecoder, buildPreTokenizer } from '../../agent/engine/tokenizer/hfComponents.js';
import { sharedPath } from '../helpers/shared.js';
import { captionGoldens, jsonlTexts } from '../helpers/readmeGoldens.js';

function hfTokenizer(model: string): EngineTokenizer {
  const json: unknown = JSON.parse(readFileSync(sharedPath(`models/${model}/hf/tokenizer.json`), 'utf8'));
  return createTokenizer({ kind: 'hf-tokenizer-json', json });
}

const ODD = [
  '',
  ' ',
  '   leading and trailing   ',
  'a  dog   with    spaces',
  'Café naïve résumé Ångström',
  'a dog 🐶 and a cat 🐱‍👤 with 👨‍👩‍👧 family',
  'tab\tand\nnewline\r\nend',
  '\t\n',
  'digits 0123456789 and 3.14159 and 2024-01-01',
  'A MAN IN A RED SHIRT',
  'mixed 中文 日本語 한국어 العربية',
  'quotes "double" \'single\' `back`',
  'symbols <>[]{}|\\^~@#$%&*_+=',
  '\u0000\u0001 control \u007f chars',
  'a\uD800lone surrogate\uDC00',
  '▁already▁has▁metaspace',
  'the '.repeat(2000),
];

describe('tokenizer.json (BPE + byte_fallback) for the caption models', () => {
  for (const model of ['caption-lm-8L', 'caption-lm-8L-ee']) {
    const t = hfTokenizer(model);

    test(`${model}: kind, special ids and size`, () => {
      assert.equal(t.kind, 'bpe');
      assert.equal(t.bos, 1);
      assert.equal(t.eos, 2);
      assert.equal(t.vocabSize, 1024);
    });

    test(`${model}: every README prompt: ids with BOS, and full text from prompt + generated ids`, () => {
      for (const g of captionGoldens(model)) {
        const withBos = t.encodeWithSpecial(g.prompt);
        if (g.promptIds) assert.deepEqual(withBos.ids, g.promptIds, g.prompt);
        assert.deepEqual(withBos.ids, [1, ...t.encode(g.prompt)]);
        assert.equal(t.decode([...withBos.ids, ...g.generated]), g.fullText, g.prompt);
        const s = t.decodeStream();
        const streamed = [...withBos.ids, ...g.generated].map((id) => s.push(id)).join('') + s.flush();
        assert.equal(streamed, g.fullText, g.prompt);
      }
    });
  }
});

describe('tokenizer.json encoder == SentencePiece encoder (GGUF and tokenizer.model)', async () => {
  const hf = hfTokenizer('caption-lm-8L');
  const ggufSp = createTokenizer((await readGguf(sharedPath('models/caption-lm-8L/caption-lm-8L.gguf'))).tokenizer);
  const modelSp = createTokenizer(parseSentencePieceModel(readFileSync(sharedPath('models/caption-lm-8L/hf/tokenizer.model'))));
  const captions = jsonlTexts('data/flickr8k_captions/val.jsonl');

  test('the validation split has its 5000 captions', () => {
    assert.equal(captions.length, 5000);
  });

  test('all 5000 validation captions: identical ids from the three sources, and they round-trip', () => {
    const mismatches: string[] = [];
    for (const c of captions) {
      const a = hf.encode(c);
      const b = ggufSp.encode(c);
      const m = modelSp.encode(c);
      if (JSON.stringify(a) !== JSON.stringify(b) || JSON.stringify(b) !== JSON.stringify(m)) {
        mismatches.push(`${JSON.stringify(c)}: hf ${JSON.stringify(a)} gguf ${JSON.stringify(b)} model ${JSON.stringify(m)}`);
      }
      if (hf.decode(a) !== c || ggufSp.decode(b) !== c) mismatches.push(`round trip of ${JSON.stringify(c)}`);
    }
    assert.deepEqual(mismatches.slice(0, 5), []);
  });

  test('odd strings (accents, emoji, tabs/newlines, empty, digits, controls, long): identical ids', () => {
    for (const s of ODD) {
      const a = hf.encode(s);
      assert.deepEqual(ggufSp.encode(s), a, JSON.stringify(s));
      assert.deepEqual(modelSp.encode(s), a, JSON.stringify(s));
      // Both decoders give the text back (lone surrogates come back as U+FFFD; a ▁ typed in the
      // text is indistinguishable from an encoded space, so it comes back as one).
      if (s.includes('\u2581')) continue;
      const expected = s.replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, '\uFFFD');
      assert.equal(hf.decode(a), expected, JSON.stringify(s));
      assert.equal(ggufSp.decode(a), expected, JSON.stringify(s));
    }
  });

  test('a 100 kB string encodes identically and quickly in both', () => {
    const long = captions.join(' ').slice(0, 100_000);
    assert.equal(long.length, 100_000);
    const t0 = performance.now();
    const a = hf.encode(long);
    const t1 = performance.now();
    const b = ggufSp.encode(long);
    const t2 = performance.now();
    assert.deepEqual(a, b);
    assert.equal(hf.decode(a), long);
    assert.ok(t1 - t0 < 3000 && t2 - t1 < 3000, `100 kB: tokenizer.json ${(t1 - t0).toFixed(0)} ms, SentencePiece ${(t2 - t1).toFixed(0)} ms`);
  });

  test('special tokens written in the text are split out (HF added-token semantics)', () => {
    // tokenizer.json declares <s>, </s>, <unk> as added tokens, so HF maps the literal text to them;
    // the SentencePiece encoder (like SentencePiece itself) spells the characters instead.
    assert.deepEqual(hf.encode('a dog</s>'), [...hf.encode('a dog'), 2]);
    assert.ok(!ggufSp.encode('a dog</s>').includes(2));
    // The Prepend normalizer runs per piece between added tokens, as in HF (legacy Llama behaviour).
    assert.deepEqual(hf.encode('<s>a dog'), [1, ...hf.encode('a dog')]);
  });

  test('decoding drops special tokens and strips only the first leading space', () => {
    assert.equal(hf.decode([1, 259, 293, 2]), 'a dog');
    assert.equal(hf.decode(hf.encode('  two spaces')), '  two spaces');
    assert.equal(hf.decode([]), '');
  });
});

describe('Metaspace pre-tokenizer / decoder (the newer Llama conversion)', () => {
  const base = JSON.parse(readFileSync(sharedPath('models/caption-lm-8L/hf/tokenizer.json'), 'utf8')) as Record<string, unknown>;
  const variant = (pre: Record<string, unknown>): EngineTokenizer =>
    createTokenizer({
      kind: 'hf-tokenizer-json',
      json: { ...base, normalizer: null, pre_tokenizer: { type: 'Metaspace', replacement: '\u2581', ...pre }, decoder: { type: 'Metaspace', replacement: '\u2581', ...pre } },
    });

  test('splits exactly as HF tokenizers documents ("Hey   friend!")', () => {
    const pre = buildPreTokenizer({ type: 'Metaspace', replacement: '\u2581', prepend_scheme: 'always', split: true });
    assert.deepEqual(pre('Hey friend!', true), ['\u2581Hey', '\u2581friend!']);
    assert.deepEqual(pre('Hey   friend!', true), ['\u2581Hey', '\u2581', '\u2581', '\u2581friend!']);
    const dec = buildDecoder({ type: 'Metaspace', replacement: '\u2581', prepend_scheme: 'always', split: true });
    assert.deepEqual(dec(['\u2581Hey', '\u2581friend!']), ['Hey', ' friend!']);
  });

  test('prepend_scheme "first" prepends only at the start of the text, not after an added token', () => {
    const first = variant({ prepend_scheme: 'first', split: false });
    const never = variant({ prepend_scheme: 'never', split: false });
    assert.deepEqual(first.encode(' a dog <s>runs'), [...never.encode(' a dog '), 1, ...never.encode('runs')]);
    assert.deepEqual(first.encode('a dog'), never.encode(' a dog'));
  });

  test('with split true or false it equals SentencePiece on the 5000 validation captions', () => {
    const sp = createTokenizer(parseSentencePieceModel(readFileSync(sharedPath('models/caption-lm-8L/hf/tokenizer.model'))));
    const captions = jsonlTexts('data/flickr8k_captions/val.jsonl');
    for (const t of [variant({ prepend_scheme: 'first', split: false }), variant({ prepend_scheme: 'always', split: true })]) {
      for (const c of captions) assert.deepEqual(t.encode(c), sp.encode(c), c);
      assert.equal(t.decode(t.encode(captions[0] as string)), captions[0]);
    }
  });
});
