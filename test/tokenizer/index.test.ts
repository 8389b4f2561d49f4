/**
 * createTokenizer / the bundle's tokenizer file (tokenizerToJson → JSON → tokenizerFromJson), the
 * streaming decoder over tokenizer.json, and encoding speed on the 5000 validation captions.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { readGguf } from '../../agent/convert/gguf.js';
import type { TokenizerSource } from '../../agent/convert/source.js';
import { createTokenizer, readTokenizerFile, tokenizerFromJson, tokenizerToJson } from '../../agent/engine/tokenizer/index.js';
import { sharedPath } from '../helpers/shared.js';
import { captionGoldens, jsonlTexts } from '../helpers/readmeGoldens.js';

const captions = jsonlTexts('data/flickr8k_captions/val.jsonl');

function hfSource(rel: string): TokenizerSource {
  return { kind: 'hf-tokenizer-json', json: JSON.parse(readFileSync(sharedPath(rel), 'utf8')) as unknown };
}

describe('bundle tokenizer file', async () => {
  const sources: [string, TokenizerSource][] = [
    ['stories260K gguf', (await readGguf(sharedPath('models/stories260K/stories260K.gguf'))).tokenizer],
    ['caption gguf', (await readGguf(sharedPath('models/caption-lm-8L/caption-lm-8L.gguf'))).tokenizer],
    ['caption tokenizer.json', hfSource('models/caption-lm-8L/hf/tokenizer.json')],
    ['bert tokenizer.json', hfSource('models/moderation-bert-6L/hf/tokenizer.json')],
  ];

  for (const [name, src] of sources) {
    test(`${name}: written, read back, and tokenizes identically`, () => {
      const text = JSON.stringify(tokenizerToJson(src));
      const back = createTokenizer(tokenizerFromJson(JSON.parse(text)));
      const orig = createTokenizer(src);
      assert.equal(back.vocabSize, orig.vocabSize);
      assert.equal(back.bos, orig.bos);
      assert.equal(back.eos, orig.eos);
      for (const c of [...captions.slice(0, 300), 'Zoë 🐶\tok', '']) {
        const ids = orig.encode(c);
        assert.deepEqual(back.encode(c), ids, c);
        assert.equal(back.decode(ids), orig.decode(ids));
      }
    });
  }

  test('a SentencePiece vocabulary file stays compact (types as digits, float32-shortest scores)', () => {
    const src = sources[1]?.[1] as TokenizerSource;
    const text = JSON.stringify(tokenizerToJson(src));
    const obj = JSON.parse(text) as { types: unknown; scores: number[] };
    assert.equal(typeof obj.types, 'string');
    // 1024 pieces: well under 20 bytes a piece
    assert.ok(text.length < 20 * 1024, `${text.length} bytes`);
    if (src.kind === 'sentencepiece') {
      obj.scores.forEach((s, i) => assert.ok(Math.fround(s) === src.scores[i], `score ${i}`)); // 0 === -0
    }
  });

  test('readTokenizerFile reads what was written; malformed files are E_MODEL_TOKENIZER', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sedac-tok-'));
    try {
      const p = join(dir, 'tokenizer.json');
      writeFileSync(p, JSON.stringify(tokenizerToJson(sources[0]?.[1] as TokenizerSource)));
      assert.deepEqual(readTokenizerFile(p).encode('Once upon a time'), [403, 407, 261, 378]);
      writeFileSync(p, '{"kind": "sentencepiece", "pieces": ');
      assert.throws(() => readTokenizerFile(p), { code: 'E_MODEL_TOKENIZER' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const bad: unknown[] = [
      null,
      { kind: 'nope' },
      { kind: 'sentencepiece', pieces: ['a'], scores: [], types: '1', bos: 0, eos: 0, unk: 0 },
      { kind: 'sentencepiece', pieces: ['a'], scores: [0], types: '9', bos: 0, eos: 0, unk: 0 },
      { kind: 'sentencepiece', pieces: ['a'], scores: [0], types: '1', bos: 'x', eos: 0, unk: 0 },
      { kind: 'hf-tokenizer-json', json: 3 },
      { kind: 'sentencepiece', version: 99 },
    ];
    for (const b of bad) assert.throws(() => tokenizerFromJson(b), { code: 'E_MODEL_TOKENIZER' }, JSON.stringify(b));
  });

  test('malformed or unsupported tokenizer.json is refused with a stable code', () => {
    assert.throws(() => createTokenizer({ kind: 'hf-tokenizer-json', json: {} }), { code: 'E_MODEL_TOKENIZER' });
    assert.throws(() => createTokenizer({ kind: 'hf-tokenizer-json', json: { model: { type: 'Unigram', vocab: [] } } }), { code: 'E_MODEL_UNSUPPORTED' });
    const json = JSON.parse(readFileSync(sharedPath('models/caption-lm-8L/hf/tokenizer.json'), 'utf8')) as Record<string, unknown>;
    assert.throws(() => createTokenizer({ kind: 'hf-tokenizer-json', json: { ...json, normalizer: { type: 'Precompiled' } } }), { code: 'E_MODEL_UNSUPPORTED' });
    const model = json.model as Record<string, unknown>;
    assert.throws(
      () => createTokenizer({ kind: 'hf-tokenizer-json', json: { ...json, model: { ...model, merges: ['▁ nosuchtoken'] } } }),
      { code: 'E_MODEL_TOKENIZER' },
    );
  });
});

describe('streaming decode over tokenizer.json', () => {
  const t = createTokenizer(hfSource('models/caption-lm-8L/hf/tokenizer.json'));

  test('byte-fallback emoji and accents: chunks join to decode(), no U+FFFD mid-stream', () => {
    for (const text of ['a 🐶 runs', 'Café ÅNGSTRÖM 👨‍👩‍👧', '  two leading spaces', 'x\ny']) {
      const ids = [1, ...t.encode(text), 2];
      const s = t.decodeStream();
      const chunks = ids.map((id) => s.push(id));
      chunks.push(s.flush());
      assert.equal(chunks.join(''), t.decode(ids), text);
      assert.equal(chunks.join(''), text);
      assert.ok(chunks.every((c) => !c.includes('\uFFFD')), JSON.stringify(chunks));
    }
  });

  test('README generations stream token by token to the full text', () => {
    for (const g of captionGoldens('caption-lm-8L')) {
      const ids = [1, ...t.encode(g.prompt), ...g.generated];
      const s = t.decodeStream();
      let text = '';
      for (const id of ids) text += s.push(id);
      assert.equal(text + s.flush(), g.fullText);
    }
  });
});

describe('speed', async () => {
  const sp = createTokenizer((await readGguf(sharedPath('models/caption-lm-8L/caption-lm-8L.gguf'))).tokenizer);
  const hf = createTokenizer(hfSource('models/caption-lm-8L/hf/tokenizer.json'));
  const bert = createTokenizer(hfSource('models/moderation-bert-6L/hf/tokenizer.json'));

  for (const [name, t] of [['SentencePiece', sp], ['tokenizer.json BPE', hf], ['WordPiece', bert]] as const) {
    test(`${name}: 5000 validation captions encode well under a second`, () => {
      for (const c of captions.slice(0, 200)) t.encode(c); // warm-up
      const t0 = performance.now();
      let n = 0;
      for (const c of captions) n += t.encode(c).length;
      const ms = performance.now() - t0;
      console.log(`# ${name}: 5000 captions, ${n} tokens in ${ms.toFixed(1)} ms`);
      assert.ok(ms < 1000, `${ms.toFixed(0)} ms`);
    });
  }
});
