/**
 * Bad inputs never crash the classifier: each is classified or rejected with a stable code.
 * Empty / whitespace / control-only text → E_INPUT; emoji → classified ([UNK]); far past the
 * maximum length → truncated to 128 tokens like the HF tokenizer (truncation=True) and classified;
 * past the character limit → E_TOO_LARGE; invalid UTF-8 bytes → E_INPUT from decodeUtf8, lone
 * surrogates in a string → U+FFFD, which BERT's normalizer drops.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Classifier, decodeUtf8 } from '../../agent/engine/classifier.js';
import { SedacError } from '../../agent/errors.js';
import { tempBertBundle } from './fixtures.js';

function rejects(fn: () => unknown, code: string): Promise<void> {
  return assert.rejects(async () => fn(), (err: unknown) => err instanceof SedacError && err.code === code, `expected ${code}`);
}

describe('classifier input handling', () => {
  let b: { dir: string; cleanup: () => void };
  let model: Classifier;
  before(async () => {
    b = await tempBertBundle();
    model = await Classifier.open(b.dir, undefined, { maxChars: 50_000 });
  });
  after(async () => {
    await model?.dispose();
    b?.cleanup();
  });

  for (const [name, text] of [
    ['empty', ''],
    ['whitespace', ' \t\n\r  \u3000'],
    ['control characters', '\u0000\u0001\u0007\u001b'],
    ['zero-width characters', '\u200b\u200b'],
    ['replacement characters', '\uFFFD\uFFFD'],
    ['a lone surrogate', '\uD800'],
  ]) {
    it(`${name} → E_INPUT`, () => rejects(() => model.classify(text!), 'E_INPUT'));
  }

  it('a non-string → E_INPUT', () => rejects(() => model.classify(42 as unknown as string), 'E_INPUT'));

  it('emoji only → classified as [UNK] tokens', async () => {
    const r = await model.classify('😀😂🔥 🙃');
    assert.ok(model.labels.includes(r.label));
    assert.equal(r.tokens, 4);
    const sum = Object.values(r.probs).reduce((a, x) => a + x, 0);
    assert.ok(Math.abs(sum - 1) < 1e-9);
  });

  it('a lone surrogate inside text is dropped, the rest classified', async () => {
    const r = await model.classify('\uD800hello there');
    const clean = await model.classify('hello there');
    assert.equal(r.tokens, clean.tokens);
    assert.deepEqual(r.probs, clean.probs);
  });

  it('text far past the maximum length → truncated to 128 tokens, same result as its first 126 word pieces', async () => {
    const words = Array.from({ length: 6000 }, (_, i) => ['you', 'are', 'a', 'wonderful', 'person', 'lol', '!'][i % 7]).join(' ');
    const r = await model.classify(words);
    assert.equal(r.tokens, 128);
    assert.equal(r.truncated, true);
    // the first 126 word pieces of the text, reassembled: [CLS] + 126 + [SEP]
    const enc = model.encode(words);
    assert.equal(enc.ids.length, 128);
    const prefix = model.tokenizer.encodeWithSpecial(words.slice(0, 2000), 128);
    assert.deepEqual(Array.from(enc.ids), prefix.ids);
    const direct = await model.runFull(enc);
    assert.equal(r.label, model.labels[direct.probs.indexOf(Math.max(...direct.probs))]);
  });

  it('one huge word (no whitespace) → one [UNK], classified', async () => {
    const r = await model.classify('a'.repeat(40_000));
    assert.equal(r.tokens, 3);
  });

  it('past the character limit → E_TOO_LARGE', () => rejects(() => model.classify('x '.repeat(30_000)), 'E_TOO_LARGE'));

  it('invalid UTF-8 bytes → E_INPUT; valid bytes decode', () => {
    for (const bytes of [[0x68, 0xff, 0x69], [0xc3], [0xed, 0xa0, 0x80], [0xe2, 0x82]]) {
      assert.throws(() => decodeUtf8(Uint8Array.from(bytes)), (e: unknown) => e instanceof SedacError && e.code === 'E_INPUT', `bytes ${bytes.join(',')}`);
    }
    assert.equal(decodeUtf8(Buffer.from('héllo 😀', 'utf8')), 'héllo 😀');
  });

  it('an unknown level → E_BAD_REQUEST naming the levels; exact → full depth', async () => {
    await rejects(() => model.classify('hello', { level: 'turbo' }), 'E_BAD_REQUEST');
    const r = await model.classify('hello', { level: 'exact' });
    assert.equal(r.layers, 6);
    assert.equal(r.level, 'exact');
  });
});
