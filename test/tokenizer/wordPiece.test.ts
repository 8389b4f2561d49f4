/**
 * BERT WordPiece for moderation-bert-6L: the README probes' input_ids exactly, from tokenizer.json and
 * from vocab.txt + tokenizer_config.json, plus robustness (empty, whitespace, emoji, lone surrogates,
 * control characters, truncation to 128 with [SEP] kept).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { bertTokenizerJson, createTokenizer, type EngineTokenizer } from '../../agent/engine/tokenizer/index.js';
import { sharedPath } from '../helpers/shared.js';
import { bertGoldens, jsonlTexts } from '../helpers/readmeGoldens.js';

const HF = 'models/moderation-bert-6L/hf';
const CLS = 2;
const SEP = 3;
const UNK = 1;

function fromTokenizerJson(): EngineTokenizer {
  return createTokenizer({ kind: 'hf-tokenizer-json', json: JSON.parse(readFileSync(sharedPath(`${HF}/tokenizer.json`), 'utf8')) as unknown });
}

function fromVocabTxt(): EngineTokenizer {
  const config = JSON.parse(readFileSync(sharedPath(`${HF}/tokenizer_config.json`), 'utf8')) as Record<string, unknown>;
  return createTokenizer(bertTokenizerJson(readFileSync(sharedPath(`${HF}/vocab.txt`), 'utf8'), config));
}

const sources: [string, EngineTokenizer][] = [
  ['tokenizer.json', fromTokenizerJson()],
  ['vocab.txt', fromVocabTxt()],
];

for (const [name, t] of sources) {
  describe(`WordPiece from ${name}`, () => {
    test('the README probes: input_ids and tokens exactly', () => {
      for (const g of bertGoldens()) {
        const e = t.encodeWithSpecial(g.text, 128);
        assert.deepEqual(e.ids, g.inputIds, g.text);
        assert.deepEqual(e.typeIds, g.inputIds.map(() => 0));
        assert.deepEqual(e.attentionMask, g.inputIds.map(() => 1));
        assert.deepEqual(t.encode(g.text).map((id) => t.idToPiece(id)), g.tokens, g.text);
        assert.equal(t.decode(e.ids), g.text);
      }
    });

    test('kind and vocabulary', () => {
      assert.equal(t.kind, 'wordpiece');
      assert.equal(t.vocabSize, 4000);
      assert.equal(t.pieceToId('[CLS]'), CLS);
      assert.equal(t.pieceToId('[SEP]'), SEP);
    });

    test('empty, whitespace-only and control-only texts give [CLS] [SEP]', () => {
      for (const s of ['', ' ', ' \t\n\r\u00a0\u3000 ', '\u0000\u0007\u200b\ufeff\ufffd']) {
        assert.deepEqual(t.encodeWithSpecial(s, 128).ids, [CLS, SEP], JSON.stringify(s));
      }
    });

    test('emoji are not in the vocabulary: one [UNK] per whitespace word', () => {
      assert.deepEqual(t.encodeWithSpecial('😀', 128).ids, [CLS, UNK, SEP]);
      assert.deepEqual(t.encode('😀😀 🙈'), [UNK, UNK]);
      assert.deepEqual(t.encode('lol 😂'), [...t.encode('lol'), UNK]);
    });

    test('unpaired surrogates become U+FFFD, which clean_text removes', () => {
      assert.deepEqual(t.encode('\uD800'), []);
      assert.deepEqual(t.encode('a\uDC00b'), t.encode('ab'));
    });

    test('control characters are removed; tabs and newlines separate words', () => {
      assert.deepEqual(t.encode('tr\u0000a\u0007sh'), t.encode('trash'));
      assert.deepEqual(t.encode('great\tday\nlol'), t.encode('great day lol'));
    });

    test('lower-casing, accents, punctuation and CJK', () => {
      assert.deepEqual(t.encode('HAVE A GREAT DAY'), t.encode('have a great day'));
      assert.deepEqual(t.encode('Café'), t.encode('cafe'));
      assert.deepEqual(t.encode('day!!'), [...t.encode('day'), ...t.encode('!'), ...t.encode('!')]);
      assert.deepEqual(t.encode('$5'), [...t.encode('$'), ...t.encode('5')]);
      // each CJK ideograph is its own word; none is in this vocabulary
      assert.deepEqual(t.encode('你好'), [UNK, UNK]);
    });

    test('a word longer than 100 characters is one [UNK]', () => {
      assert.deepEqual(t.encode('a'.repeat(101)), [UNK]);
      assert.notDeepEqual(t.encode('a'.repeat(100)), [UNK]);
    });

    test('text far past 128 tokens is truncated to 128 with [SEP] last', () => {
      const long = 'you are a wonderful person '.repeat(100);
      const e = t.encodeWithSpecial(long, 128);
      assert.equal(e.ids.length, 128);
      assert.equal(e.ids[0], CLS);
      assert.equal(e.ids[127], SEP);
      assert.deepEqual(e.ids.slice(1, 127), t.encode(long).slice(0, 126));
      assert.equal(e.attentionMask.length, 128);
      assert.throws(() => t.encodeWithSpecial('x', 1), { code: 'E_INPUT' });
    });

    test('a 100 kB string does not blow up', () => {
      const t0 = performance.now();
      const ids = t.encode('offensive tweet with words and more words '.repeat(2400));
      assert.ok(ids.length > 10_000);
      assert.ok(performance.now() - t0 < 3000);
    });
  });
}

describe('WordPiece: tokenizer.json and vocab.txt agree', () => {
  test('on all validation tweets (untruncated)', () => {
    const [a, b] = [sources[0]?.[1] as EngineTokenizer, sources[1]?.[1] as EngineTokenizer];
    const tweets = jsonlTexts('data/davidson_hate_offensive/val.jsonl');
    assert.ok(tweets.length > 2000);
    for (const s of tweets) assert.deepEqual(a.encode(s), b.encode(s), s);
  });

  test('do_lower_case=false keeps case (and accents) like BertTokenizer', () => {
    const cased = createTokenizer(bertTokenizerJson('[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\nHello\n##é\ncaf\n', { do_lower_case: false }));
    assert.deepEqual(cased.encode('Hello hello'), [6, 5]);
    assert.deepEqual(cased.encode('café'), [8, 7]);
    const uncased = createTokenizer(bertTokenizerJson('[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\nHello\n##e\ncaf\n', {}));
    assert.deepEqual(uncased.encode('Hello CAFÉ'), [5, 8, 7]);
  });
});
