/**
 * SentencePiece BPE against the goldens of ../shared (llama.cpp and SentencePiece ids in the model
 * READMEs), from the GGUF vocabularies (readGguf) and tokenizer.model (parseSentencePieceModel).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { readGguf } from '../../agent/convert/gguf.js';
import type { SentencePieceVocab } from '../../agent/convert/source.js';
import { parseSentencePieceModel } from '../../agent/convert/spModel.js';
import { createTokenizer, type EngineTokenizer } from '../../agent/engine/tokenizer/index.js';
import { sharedPath } from '../helpers/shared.js';
import { captionGoldens, storiesGolden } from '../helpers/readmeGoldens.js';

const CAPTION_MODELS = ['caption-lm-8L', 'caption-lm-8L-ee'];

async function ggufTokenizer(rel: string): Promise<EngineTokenizer> {
  return createTokenizer((await readGguf(sharedPath(rel))).tokenizer);
}

function spModelTokenizer(model: string): EngineTokenizer {
  return createTokenizer(parseSentencePieceModel(readFileSync(sharedPath(`models/${model}/hf/tokenizer.model`))));
}

/** Feed ids one by one through decodeStream; returns the emitted chunks. */
function streamChunks(t: EngineTokenizer, ids: number[]): string[] {
  const s = t.decodeStream();
  const chunks = ids.map((id) => s.push(id));
  chunks.push(s.flush());
  return chunks;
}

describe('SentencePiece: stories260K (GGUF, llama.cpp goldens)', async () => {
  const t = await ggufTokenizer('models/stories260K/stories260K.gguf');
  const golden = storiesGolden();

  test('prompt encodes to the README ids (README includes BOS)', () => {
    assert.deepEqual([t.bos, ...t.encode(golden.prompt)], golden.promptIds);
    assert.deepEqual(t.encodeWithSpecial(golden.prompt).ids, golden.promptIds);
    assert.equal(t.bos, 1);
    assert.equal(t.eos, 2);
    assert.equal(t.vocabSize, 512);
  });

  test('the golden continuation (newlines, quotes, apostrophes) round-trips exactly', () => {
    assert.match(golden.text, /\n/);
    assert.match(golden.text, /"/);
    const ids = t.encode(golden.text);
    assert.ok(ids.length > 50);
    assert.equal(t.decode(ids), golden.text);
    assert.equal(t.decode([t.bos as number, ...ids, t.eos as number]), golden.text);
    assert.equal(streamChunks(t, [t.bos as number, ...ids]).join(''), golden.text);
  });

  test('characters outside the 512 pieces fall back to bytes and come back', () => {
    const text = 'Zoë saw a 🐉 — “quiet” naïve café';
    const ids = t.encode(text);
    assert.equal(t.decode(ids), text);
    // the dragon is 4 UTF-8 bytes F0 9F 90 89, each its own <0xNN> piece
    const dragon = ['<0xF0>', '<0x9F>', '<0x90>', '<0x89>'].map((p) => t.pieceToId(p));
    const at = ids.indexOf(dragon[0] as number);
    assert.ok(at >= 0);
    assert.deepEqual(ids.slice(at, at + 4), dragon);
  });
});

describe('SentencePiece: caption models (GGUF and tokenizer.model vs README prompt ids)', async () => {
  for (const model of CAPTION_MODELS) {
    const sources: [string, EngineTokenizer][] = [
      ['gguf f32', await ggufTokenizer(`models/${model}/${model}.gguf`)],
      ['gguf q8_0', await ggufTokenizer(`models/${model}/${model}.q8_0.gguf`)],
      ['tokenizer.model', spModelTokenizer(model)],
    ];
    for (const [name, t] of sources) {
      test(`${model} ${name}: every README prompt encodes to its ids and decodes to the full text`, () => {
        for (const g of captionGoldens(model)) {
          const prompt = [t.bos as number, ...t.encode(g.prompt)];
          if (g.promptIds) assert.deepEqual(prompt, g.promptIds, g.prompt);
          assert.equal(t.decode([...prompt, ...g.generated]), g.fullText, g.prompt);
          assert.equal(streamChunks(t, [...prompt, ...g.generated]).join(''), g.fullText, g.prompt);
        }
      });
    }
  }
});

describe('SentencePiece: encoding details (caption vocabulary: byte_fallback, split_digits)', () => {
  const t = spModelTokenizer('caption-lm-8L');
  const id = (p: string): number => {
    const v = t.pieceToId(p);
    assert.ok(v !== undefined, `piece ${p} missing`);
    return v;
  };

  test('empty text encodes to nothing; a lone space is the dummy prefix plus ▁', () => {
    assert.deepEqual(t.encode(''), []);
    assert.deepEqual(t.decode([]), '');
    // '▁▁' is no piece, so the dummy ▁ and the space's ▁ stay apart
    assert.deepEqual(t.encode(' '), [id('▁'), id('▁')]);
    assert.equal(t.decode(t.encode(' ')), ' ');
  });

  test('upper case is not in the (lower-cased) vocabulary: byte pieces', () => {
    assert.deepEqual(t.encode('A').slice(-1), [id('<0x41>')]);
    assert.equal(t.decode(t.encode('A Dog')), 'A Dog');
  });

  test('digits stay single pieces', () => {
    const ids = t.encode('2024');
    assert.deepEqual(ids.slice(-4), ['2', '0', '2', '4'].map(id));
  });

  test('tabs and newlines are bytes; they round-trip', () => {
    for (const s of ['a\tdog', 'a\ndog\r\n', '\t']) assert.equal(t.decode(t.encode(s)), s);
    assert.ok(t.encode('a\tdog').includes(id('<0x09>')));
  });

  test('an unpaired surrogate is encoded as U+FFFD (EF BF BD), as UTF-8 encoding does', () => {
    const ids = t.encode('a\uD800b');
    assert.deepEqual(
      ids.filter((x) => [id('<0xEF>'), id('<0xBF>'), id('<0xBD>')].includes(x)),
      [id('<0xEF>'), id('<0xBF>'), id('<0xBD>')],
    );
    assert.equal(t.decode(ids), 'a\uFFFDb');
  });

  test('control ids vanish in decoding; <unk> prints as SentencePiece does', () => {
    assert.equal(t.decode([1, 259, 2]), 'a');
    assert.equal(t.decode([0]), ' \u2047 ');
  });

  test('streaming never emits half a character: a 4-byte emoji comes out whole', () => {
    const ids = [1, ...t.encode('a 🐶 runs')];
    const chunks = streamChunks(t, ids);
    assert.equal(chunks.join(''), 'a 🐶 runs');
    assert.ok(chunks.every((c) => !c.includes('\uFFFD')));
    assert.ok(chunks.includes('🐶') || chunks.some((c) => c.endsWith('🐶')));
  });

  test('a truncated byte sequence decodes to U+FFFD at flush', () => {
    const bytes = [id('<0xF0>'), id('<0x9F>')];
    const s = t.decodeStream();
    assert.equal(s.push(bytes[0] as number) + s.push(bytes[1] as number), '');
    assert.equal(s.flush(), '\uFFFD');
  });

  test('encodeWithSpecial adds BOS and truncates the text part', () => {
    const e = t.encodeWithSpecial('a dog runs through the water', 4);
    assert.equal(e.ids.length, 4);
    assert.equal(e.ids[0], 1);
    assert.deepEqual(e.typeIds, [0, 0, 0, 0]);
    assert.deepEqual(e.attentionMask, [1, 1, 1, 1]);
  });
});

describe('SentencePiece: hand-built vocabularies', () => {
  // scores decide the merge order: '▁ab' (−1) beats '▁a'+'b' since it is merged last from '▁a'
  const base = (extra: Partial<SentencePieceVocab> = {}): SentencePieceVocab => ({
    kind: 'sentencepiece',
    pieces: ['<unk>', '<s>', '</s>', '▁', 'a', 'b', 'c', '▁a', 'ab', '▁ab', 'bc'],
    scores: [0, 0, 0, -10, -10, -10, -10, -1, -2, -3, -0.5],
    types: [2, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1],
    bos: 1,
    eos: 2,
    unk: 0,
    addDummyPrefix: true,
    ...extra,
  });

  test('BPE merges the highest-scoring pair first (hand-computed)', () => {
    const t = createTokenizer(base());
    // ▁ a b c: pairs ▁a(−1) ab(−2) bc(−0.5) → bc first, then ▁a; '▁a'+'bc' is no piece → [▁a, bc]
    assert.deepEqual(t.encode('abc'), [7, 10]);
    // ▁ a b: ▁a (−1) first, then ▁a+b = ▁ab (−3) → [▁ab]
    assert.deepEqual(t.encode('ab'), [9]);
  });

  test('without byte pieces an unknown run is one unk', () => {
    const t = createTokenizer(base());
    assert.deepEqual(t.encode('a\u00e9\u00e9'), [7, 0]);
  });

  test('unigram vocabularies use the Viterbi path (hand-computed)', () => {
    const t = createTokenizer(base({ algorithm: 'unigram' }));
    // 'ab' → ▁ab (−3) vs ▁a + b (−11) vs ▁ + ab (−12) → ▁ab
    assert.deepEqual(t.encode('ab'), [9]);
    // 'abc' → ▁a + bc (−1.5) beats ▁ab + c (−13)
    assert.deepEqual(t.encode('abc'), [7, 10]);
    // 'x' is no piece: unk
    assert.deepEqual(t.encode('x'), [3, 0]);
  });

  test('a long input stays fast (heap, not quadratic rescans)', () => {
    const t = createTokenizer(base());
    const text = 'abc '.repeat(25_000); // 100 kB
    const t0 = performance.now();
    const ids = t.encode(text);
    const ms = performance.now() - t0;
    assert.equal(t.decode(ids), text);
    assert.ok(ms < 3000, `100 kB took ${ms.toFixed(0)} ms`);
  });

  test('inconsistent vocabularies are refused with E_MODEL_TOKENIZER', () => {
    assert.throws(() => createTokenizer(base({ scores: [0] })), { code: 'E_MODEL_TOKENIZER' });
    assert.throws(() => createTokenizer(base({ bos: 99 })), { code: 'E_MODEL_TOKENIZER' });
  });
});
