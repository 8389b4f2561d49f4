import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { readGguf } from '../../agent/convert/gguf.js';
import { ProtoWriter } from '../../agent/convert/protobuf.js';
import type { SentencePieceVocab } from '../../agent/convert/source.js';
import { parseSentencePieceModel } from '../../agent/convert/spModel.js';
import { SedacError } from '../../agent/errors.js';
import { MODELS } from '../helpers/fixtures.js';

const isTokErr = (e: unknown): boolean => e instanceof SedacError && e.code === 'E_MODEL_TOKENIZER';

describe('SentencePiece tokenizer.model', () => {
  it('caption-lm-8L: the README settings and the same pieces, scores and types as the GGUF vocabulary', async () => {
    const v = parseSentencePieceModel(readFileSync(join(MODELS.captionHf(), 'tokenizer.model')));
    // README: vocab 1024, byte_fallback (ids 3–258 are <0x00>…<0xFF>), unk 0, bos 1, eos 2,
    // add_dummy_prefix, split_digits, identity normalization
    assert.equal(v.pieces.length, 1024);
    assert.deepEqual([v.unk, v.bos, v.eos], [0, 1, 2]);
    assert.deepEqual(v.pieces.slice(0, 4), ['<unk>', '<s>', '</s>', '<0x00>']);
    assert.equal(v.pieces[258], '<0xFF>');
    assert.deepEqual(v.types.slice(0, 4), [2, 3, 3, 6]);
    assert.equal(v.addDummyPrefix, true);
    assert.equal(v.splitDigits, true);
    assert.equal(v.removeExtraWhitespaces, false);
    assert.equal(v.algorithm, 'bpe');
    const g = (await readGguf(MODELS.captionF32())).tokenizer as SentencePieceVocab;
    assert.deepEqual(v.pieces, g.pieces);
    assert.deepEqual(v.scores, g.scores);
    assert.deepEqual(v.types, g.types);
  });

  it('defaults, negative ids and unigram models', () => {
    const w = new ProtoWriter();
    for (const p of ['<unk>', '▁a', 'b']) w.message(1, (m) => m.string(1, p).float(2, -1.5));
    w.message(2, (t) => t.int(3, 1).int(40, 0).int(41, -1).int(42, -1));
    const v = parseSentencePieceModel(w.finish());
    assert.deepEqual(v.types, [1, 1, 1]);
    assert.deepEqual(v.scores, [-1.5, -1.5, -1.5]);
    assert.deepEqual([v.unk, v.bos, v.eos], [0, -1, -1]);
    assert.equal(v.algorithm, 'unigram');
    assert.equal(v.addDummyPrefix, true);
    assert.equal(v.removeExtraWhitespaces, true, 'SentencePiece default');
  });

  it('malformed models are E_MODEL_TOKENIZER', () => {
    const good = readFileSync(join(MODELS.captionHf(), 'tokenizer.model'));
    assert.throws(() => parseSentencePieceModel(good.subarray(0, 5000)), isTokErr);
    assert.throws(() => parseSentencePieceModel(Uint8Array.from([0x0a, 0xff, 0xff, 0xff, 0x0f])), isTokErr);
    assert.throws(() => parseSentencePieceModel(new Uint8Array(0)), isTokErr);
    const w = new ProtoWriter();
    w.message(1, (m) => m.string(1, 'a'));
    w.message(2, (t) => t.int(41, 7));
    assert.throws(() => parseSentencePieceModel(w.finish()), isTokErr);
  });
});
