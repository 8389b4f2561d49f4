import assert from 'node:assert/strict';
import { renameSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadSource, sourceSha256 } from '../../agent/convert/detect.js';
import { toFloat32 } from '../../agent/convert/dequant.js';
import { readGguf } from '../../agent/convert/gguf.js';
import { readLlama2c } from '../../agent/convert/llama2c.js';
import type { LlamaSource, SentencePieceVocab, SourceTensor } from '../../agent/convert/source.js';
import { SedacError } from '../../agent/errors.js';
import { f32Values, MODELS, tempDir } from '../helpers/fixtures.js';
import { writeLlama2c, writeLlama2cTokenizer } from '../helpers/llama2cWriter.js';

function named(s: LlamaSource): [string, SourceTensor][] {
  const t = s.tensors;
  const out: [string, SourceTensor][] = [['tokEmbd', t.tokEmbd], ['outputNorm', t.outputNorm]];
  if (t.output) out.push(['output', t.output]);
  t.layers.forEach((l, i) => {
    for (const [k, v] of Object.entries(l)) out.push([`layers.${i}.${k}`, v as SourceTensor]);
  });
  return out;
}

describe('llama2.c checkpoints written from stories260K', () => {
  let dir: string;
  let cleanup: () => void;
  let ref: LlamaSource;
  let untied: Float32Array;
  before(async () => {
    ({ dir, cleanup } = tempDir());
    ref = await readGguf(MODELS.stories());
    untied = f32Values(ref.tensors.tokEmbd).map((v, i) => v * 0.5 + (i % 7) * 1e-3);
    for (const version of [0, 1, 2] as const) {
      writeLlama2c(join(dir, `v${version}.bin`), ref, { version });
      writeLlama2c(join(dir, `v${version}-untied.bin`), ref, { version, untiedOutput: untied });
    }
    writeLlama2cTokenizer(join(dir, 'tokenizer.bin'), ref.tokenizer as SentencePieceVocab);
  });
  after(() => cleanup());

  const expectedConfig = (tied: boolean): LlamaSource['config'] => ({ ...ref.config, tiedEmbeddings: tied });

  for (const version of [0, 1] as const) {
    for (const tied of [true, false]) {
      it(`v${version} ${tied ? 'shared' : 'unshared'} classifier: same config and tensors as the GGUF`, async () => {
        const path = join(dir, `v${version}${tied ? '' : '-untied'}.bin`);
        const s = await loadSource(path);
        assert.equal(s.format, 'llama2c');
        assert.deepEqual(s.config, expectedConfig(tied));
        const want = new Map(named(ref));
        for (const [name, t] of named(s)) {
          if (name === 'output') {
            assert.ok(!tied);
            assert.deepEqual(f32Values(t), untied);
            continue;
          }
          assert.equal(t.dtype, 'f32');
          assert.deepEqual(t.shape, want.get(name)!.shape, name);
          assert.ok(Buffer.from(t.data).equals(Buffer.from(want.get(name)!.data)), `${name} bytes differ`);
        }
        assert.equal(s.tensors.output === undefined, tied);
      });
    }
  }

  for (const tied of [true, false]) {
    it(`v2 (int8 groups) ${tied ? 'shared' : 'unshared'}: q8_g tensors within half a quantization step`, async () => {
      const s = await readLlama2c(join(dir, `v2${tied ? '' : '-untied'}.bin`));
      assert.deepEqual(s.config, expectedConfig(tied));
      const want = new Map(named(ref));
      if (!tied) want.set('output', { name: 'output', dtype: 'f32', shape: [512, 64], data: new Uint8Array(untied.buffer) });
      let quantized = 0;
      for (const [name, t] of named(s)) {
        const w = f32Values(want.get(name)!);
        const got = toFloat32(t);
        assert.deepEqual(t.shape, want.get(name)!.shape, name);
        if (t.dtype === 'f32') {
          assert.deepEqual(got, w, name);
          continue;
        }
        assert.equal(t.dtype, 'q8_g', name);
        assert.equal(t.groupSize, 64, 'export.py keeps group size 64 when it divides dim');
        quantized++;
        for (let g = 0; g < w.length / 64; g++) {
          let amax = 0;
          for (let j = 0; j < 64; j++) amax = Math.max(amax, Math.abs(w[g * 64 + j]!));
          for (let j = 0; j < 64; j++) {
            const k = g * 64 + j;
            const bound = (amax / 127) * 0.5 * (1 + 1e-5) + 1e-12;
            if (!(Math.abs(got[k]! - w[k]!) <= bound)) assert.fail(`${name}[${k}] ${got[k]} vs ${w[k]}`);
          }
        }
      }
      assert.equal(quantized, 1 + 7 * 5 + (tied ? 0 : 1), 'every matrix is int8, norms stay f32');
    });
  }

  it('tokenizer.bin gives the same SentencePiece vocabulary as the GGUF', async () => {
    const s = await readLlama2c(join(dir, 'v1.bin'));
    const v = s.tokenizer as SentencePieceVocab;
    const r = ref.tokenizer as SentencePieceVocab;
    assert.deepEqual(v.pieces, r.pieces);
    assert.deepEqual(v.scores, r.scores);
    assert.deepEqual(v.types, r.types);
    assert.deepEqual([v.unk, v.bos, v.eos, v.addDummyPrefix], [r.unk, r.bos, r.eos, true]);
  });

  it('sha256 covers checkpoint and tokenizer; sourceSha256 agrees with the reader', async () => {
    const a = await loadSource(join(dir, 'v0.bin'));
    assert.equal(a.sha256, await sourceSha256(join(dir, 'v0.bin')));
    const b = await loadSource(join(dir, 'v1.bin'));
    assert.notEqual(a.sha256, b.sha256);
  });

  it('an explicit tokenizer path is used; a missing tokenizer.bin is E_MODEL_TOKENIZER', async () => {
    renameSync(join(dir, 'tokenizer.bin'), join(dir, 'tok-elsewhere.bin'));
    try {
      await assert.rejects(readLlama2c(join(dir, 'v0.bin')), (e: unknown) => e instanceof SedacError && e.code === 'E_MODEL_TOKENIZER' && /tokenizer\.bin/.test(e.message));
      await assert.rejects(sourceSha256(join(dir, 'v0.bin')), (e: unknown) => e instanceof SedacError && e.code === 'E_MODEL_TOKENIZER');
      const s = await loadSource(join(dir, 'v0.bin'), { tokenizerPath: join(dir, 'tok-elsewhere.bin') });
      assert.equal((s.tokenizer as SentencePieceVocab).pieces.length, 512);
    } finally {
      renameSync(join(dir, 'tok-elsewhere.bin'), join(dir, 'tokenizer.bin'));
    }
  });
});
