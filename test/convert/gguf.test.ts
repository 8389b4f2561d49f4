import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { f16ToF32, f32ToF16, toFloat32 } from '../../agent/convert/dequant.js';
import { parseGguf, readGguf } from '../../agent/convert/gguf.js';
import type { LlamaSource, SentencePieceVocab, SourceTensor } from '../../agent/convert/source.js';
import { SedacError } from '../../agent/errors.js';
import { f32Bytes, f32Values, ggufBytes, llamaGgufMeta, llamaGgufTensors, MODELS, tempDir, type GgufMeta } from '../helpers/fixtures.js';

function allTensors(s: LlamaSource): SourceTensor[] {
  const t = s.tensors;
  return [t.tokEmbd, t.outputNorm, ...(t.output ? [t.output] : []), ...t.layers.flatMap((l) => Object.values(l))];
}

async function rejects(p: Promise<unknown>, code: string, mention: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof SedacError, `expected SedacError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    assert.match(e.message, mention);
    return true;
  });
}

describe('GGUF reader on the shared models', () => {
  it('stories260K: config, vocabulary and sha256 as in its README', async () => {
    const s = await readGguf(MODELS.stories());
    assert.equal(s.format, 'gguf');
    assert.deepEqual(
      { ...s.config },
      { dim: 64, nLayers: 5, nHeads: 8, nKvHeads: 4, headDim: 8, ffnDim: 172, vocabSize: 512, normEps: 1e-5, ropeTheta: 10000, maxSeqLen: 2048, ropeLayout: 'adjacent', tiedEmbeddings: true },
    );
    assert.equal(s.tensors.output, undefined, 'tied: the stored output.weight is a copy of token_embd');
    const v = s.tokenizer as SentencePieceVocab;
    assert.equal(v.kind, 'sentencepiece');
    assert.equal(v.pieces.length, 512);
    assert.deepEqual([v.unk, v.bos, v.eos], [0, 1, 2]);
    assert.deepEqual(v.pieces.slice(0, 3), ['<unk>', '<s>', '</s>']);
    assert.equal(v.pieces[3], '<0x00>');
    assert.equal(v.pieces[258], '<0xFF>');
    assert.ok(v.types.slice(3, 259).every((t) => t === 6), 'byte fallback pieces have type 6');
    assert.equal(v.addDummyPrefix, true);
    assert.equal(s.sha256, '270cba1bd5109f42d03350f60406024560464db173c0e387d91f0426d3bd256d');
    for (const l of s.tensors.layers) {
      assert.deepEqual(l.wq.shape, [64, 64]);
      assert.deepEqual(l.wk.shape, [32, 64]);
      assert.deepEqual(l.wDown.shape, [64, 172]);
    }
  });

  for (const ee of [false, true]) {
    const name = ee ? 'caption-lm-8L-ee' : 'caption-lm-8L';
    it(`${name}: F32, F16 and Q8_0 files give the README config; F16/Q8_0 values are within their rounding of F32`, async () => {
      const [f32, f16, q8] = await Promise.all([readGguf(MODELS.captionF32(ee)), readGguf(MODELS.captionF16(ee)), readGguf(MODELS.captionQ8(ee))]);
      const expected = { dim: 128, nLayers: 8, nHeads: 4, nKvHeads: 4, headDim: 32, ffnDim: 352, vocabSize: 1024, normEps: 1e-5, ropeTheta: 10000, maxSeqLen: 64, ropeLayout: 'adjacent', tiedEmbeddings: true };
      for (const s of [f32, f16, q8]) {
        assert.deepEqual({ ...s.config }, expected);
        assert.equal(s.tensors.output, undefined, 'output.weight duplicates token_embd: tied');
        assert.equal(s.name, name);
      }
      assert.equal(f16.tensors.layers[0]!.wq.dtype, 'f16');
      assert.equal(f16.tensors.layers[0]!.attnNorm.dtype, 'f32');
      assert.equal(q8.tensors.tokEmbd.dtype, 'q8_0');
      const a = allTensors(f32);
      const b = allTensors(f16);
      const c = allTensors(q8);
      let maxQ8Rel = 0;
      for (let i = 0; i < a.length; i++) {
        const ref = f32Values(a[i]!);
        const h = toFloat32(b[i]!);
        const q = toFloat32(c[i]!);
        assert.equal(h.length, ref.length);
        for (let k = 0; k < ref.length; k++) {
          const x = ref[k]!;
          // f16 rounding: half an ulp of 11 significant bits (or of the subnormal step)
          if (!(Math.abs(h[k]! - x) <= Math.max(Math.abs(x) * 2 ** -11, 2 ** -25))) assert.fail(`${a[i]!.name}[${k}] f16 ${h[k]} vs ${x}`);
        }
        if (c[i]!.dtype !== 'q8_0') {
          assert.deepEqual(q, ref);
          continue;
        }
        // Q8_0: d = amax/127 per block of 32; rounding error ≤ d/2, plus the fp16 rounding of d
        for (let blk = 0; blk < ref.length / 32; blk++) {
          let amax = 0;
          for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(ref[blk * 32 + j]!));
          const d = amax / 127;
          for (let j = 0; j < 32; j++) {
            const k = blk * 32 + j;
            const err = Math.abs(q[k]! - ref[k]!);
            if (!(err <= 0.5 * d + 127 * d * 2 ** -11 + 1e-12)) assert.fail(`${a[i]!.name}[${k}] q8_0 ${q[k]} vs ${ref[k]} (d ${d})`);
            if (amax > 0) maxQ8Rel = Math.max(maxQ8Rel, err / d);
          }
        }
      }
      assert.ok(maxQ8Rel > 0.1, 'Q8_0 values differ from F32 (the file really is quantized)');
    });
  }
});

describe('GGUF reader on written variants', () => {
  let dir: string;
  let cleanup: () => void;
  let stories: LlamaSource;
  before(async () => {
    ({ dir, cleanup } = tempDir());
    stories = await readGguf(MODELS.stories());
    // the tied source lost its output tensor; give the writer one that equals token_embd
    stories.tensors.output = stories.tensors.tokEmbd;
  });
  after(() => cleanup());

  const write = (name: string, meta: [string, GgufMeta][], tensors: ReturnType<typeof llamaGgufTensors>, opts?: { version?: number; alignment?: number }): string => {
    const p = join(dir, name);
    writeFileSync(p, ggufBytes(meta, tensors, opts));
    return p;
  };

  it('reads every metadata value type, nested arrays, GGUF v2 and a 64-byte alignment', async () => {
    const meta: [string, GgufMeta][] = [
      ['general.alignment', { type: 4, value: 64 }],
      ...llamaGgufMeta(stories),
      ['t.u8', { type: 0, value: 250 }],
      ['t.i8', { type: 1, value: -5 }],
      ['t.u16', { type: 2, value: 65000 }],
      ['t.i16', { type: 3, value: -30000 }],
      ['t.u32', { type: 4, value: 4000000000 }],
      ['t.i32', { type: 5, value: -2000000000 }],
      ['t.f32', { type: 6, value: 0.5 }],
      ['t.bool', { type: 7, value: true }],
      ['t.str', { type: 8, value: 'héllo' }],
      ['t.u64', { type: 10, value: 2n ** 63n }],
      ['t.i64', { type: 11, value: -(2n ** 40n) }],
      ['t.f64', { type: 12, value: 0.1 }],
      ['t.arr', { type: 9, elemType: 9, value: [{ type: 9, elemType: 3, value: [1, -2] }, { type: 9, elemType: 8, value: ['a', 'b'] }] }],
    ];
    const p = write('v2.gguf', meta, llamaGgufTensors(stories), { version: 2, alignment: 64 });
    const f = parseGguf(readFileSync(p));
    assert.equal(f.version, 2);
    assert.equal(f.alignment, 64);
    assert.equal(f.dataOffset % 64, 0);
    const m = f.metadata;
    assert.deepEqual(
      ['t.u8', 't.i8', 't.u16', 't.i16', 't.u32', 't.i32', 't.f32', 't.bool', 't.str', 't.u64', 't.i64', 't.f64'].map((k) => m.get(k)),
      [250, -5, 65000, -30000, 4000000000, -2000000000, 0.5, true, 'héllo', 2n ** 63n, -(2n ** 40n), 0.1],
    );
    assert.deepEqual(m.get('t.arr'), [[1, -2], ['a', 'b']]);
    const s = await readGguf(p);
    assert.equal(s.config.tiedEmbeddings, true);
    const ref = await readGguf(MODELS.stories());
    assert.deepEqual(s.config, ref.config);
    assert.deepEqual(toFloat32(s.tensors.layers[4]!.wDown), toFloat32(ref.tensors.layers[4]!.wDown));
  });

  it('an output.weight that differs from token_embd is an untied LM head', async () => {
    const tensors = llamaGgufTensors(stories);
    const out = tensors.find((t) => t.name === 'output.weight')!;
    const vals = new Float32Array(out.data.buffer.slice(0));
    vals.forEach((v, i) => (vals[i] = -v));
    out.data = f32Bytes(vals);
    const s = await readGguf(write('untied.gguf', llamaGgufMeta(stories), tensors));
    assert.equal(s.config.tiedEmbeddings, false);
    assert.ok(s.tensors.output);
    assert.deepEqual(toFloat32(s.tensors.output), vals);
    // and without output.weight at all it is tied
    const s2 = await readGguf(write('noout.gguf', llamaGgufMeta(stories), tensors.filter((t) => t.name !== 'output.weight')));
    assert.equal(s2.config.tiedEmbeddings, true);
    assert.equal(s2.tensors.output, undefined);
  });

  it('Q4_0 tensors (quantized here like ggml quantize_row_q4_0_ref) read back within ggml\'s Q4_0 error', async () => {
    const tensors = llamaGgufTensors(stories).map((t) => {
      if (t.dims.length !== 2 || t.dims[0]! % 32 !== 0) return t; // ggml keeps such rows unquantized
      const x = new Float32Array(t.data.buffer.slice(0));
      const blocks = new Uint8Array((x.length / 32) * 18);
      const bv = new DataView(blocks.buffer);
      for (let b = 0; b < x.length / 32; b++) {
        let amax = 0;
        let max = 0;
        for (let j = 0; j < 32; j++) {
          const v = x[b * 32 + j]!;
          if (Math.abs(v) > amax) {
            amax = Math.abs(v);
            max = v;
          }
        }
        const d = max / -8;
        const id = d ? 1 / d : 0;
        bv.setUint16(b * 18, f32ToF16(d), true);
        for (let j = 0; j < 16; j++) {
          const lo = Math.min(15, Math.trunc(x[b * 32 + j]! * id + 8.5));
          const hi = Math.min(15, Math.trunc(x[b * 32 + 16 + j]! * id + 8.5));
          blocks[b * 18 + 2 + j] = lo | (hi << 4);
        }
      }
      return { ...t, type: 2, data: blocks };
    });
    const s = await readGguf(write('q4.gguf', llamaGgufMeta(stories), tensors));
    const ref = await readGguf(MODELS.stories());
    assert.equal(s.tensors.layers[0]!.wq.dtype, 'q4_0');
    assert.equal(s.tensors.output, undefined, 'identical Q4_0 blocks: still tied');
    const got = toFloat32(s.tensors.layers[2]!.wGate);
    const want = f32Values(ref.tensors.layers[2]!.wGate);
    const blockBytes = s.tensors.layers[2]!.wGate.data;
    for (let b = 0; b < want.length / 32; b++) {
      const d = f16ToF32(blockBytes[b * 18]! | (blockBytes[b * 18 + 1]! << 8));
      for (let j = 0; j < 32; j++) {
        const k = b * 32 + j;
        // rounding costs up to d/2; the extreme opposite the block's max clamps to code 15 (7d
        // instead of 8d) and costs up to d; the fp16 rounding of d adds at most 8·d·2^-11
        const clamped = want[k]! / d + 8.5 >= 16;
        const bound = Math.abs(d) * ((clamped ? 1 : 0.5) + 2 ** -7) + 1e-9;
        if (!(Math.abs(got[k]! - want[k]!) <= bound)) assert.fail(`[${k}] ${got[k]} vs ${want[k]} (d ${d})`);
      }
    }
  });

  it('BF16 tensors are widened to F32 exactly', async () => {
    const tensors = llamaGgufTensors(stories).map((t) => {
      const u16 = new Uint16Array(t.data.length / 4);
      const src = new Uint16Array(t.data.buffer.slice(0));
      for (let i = 0; i < u16.length; i++) u16[i] = src[i * 2 + 1]!; // the high half of each f32
      return { ...t, type: 30, data: new Uint8Array(u16.buffer) };
    });
    const s = await readGguf(write('bf16.gguf', llamaGgufMeta(stories), tensors));
    const ref = f32Values((await readGguf(MODELS.stories())).tensors.layers[1]!.wv);
    const got = toFloat32(s.tensors.layers[1]!.wv);
    const truncated = new Float32Array(new Uint32Array(ref.buffer.slice(0)).map((b) => b & 0xffff0000).buffer);
    assert.deepEqual(got, truncated);
  });

  it('rejects other architectures, dtypes, tokenizers and extra tensors with the right codes', async () => {
    const meta = llamaGgufMeta(stories);
    const tensors = llamaGgufTensors(stories);
    const withMeta = (k: string, m: GgufMeta | undefined): [string, GgufMeta][] => {
      const out = meta.filter(([key]) => key !== k);
      if (m) out.push([k, m]);
      return out;
    };
    await rejects(readGguf(write('arch.gguf', withMeta('general.architecture', { type: 8, value: 'qwen2' }), tensors)), 'E_MODEL_UNSUPPORTED', /qwen2/);
    const q5 = tensors.map((t) => (t.name === 'blk.1.attn_k.weight' ? { ...t, type: 6, data: new Uint8Array(((32 * 64) / 32) * 22) } : t));
    await rejects(readGguf(write('q5.gguf', meta, q5)), 'E_MODEL_UNSUPPORTED', /blk\.1\.attn_k\.weight.*Q5_0/);
    const i32 = tensors.map((t) => (t.name === 'blk.0.attn_norm.weight' ? { ...t, type: 26 } : t));
    await rejects(readGguf(write('i32.gguf', meta, i32)), 'E_MODEL_UNSUPPORTED', /blk\.0\.attn_norm\.weight.*I32/);
    await rejects(readGguf(write('gpt2.gguf', withMeta('tokenizer.ggml.model', { type: 8, value: 'gpt2' }), tensors)), 'E_MODEL_TOKENIZER', /gpt2/);
    await rejects(readGguf(write('notok.gguf', withMeta('tokenizer.ggml.model', undefined), tensors)), 'E_MODEL_TOKENIZER', /tokenizer/);
    const extra = [...tensors, { name: 'rope_freqs.weight', type: 0, dims: [4], data: new Uint8Array(16) }];
    await rejects(readGguf(write('ropefreqs.gguf', meta, extra)), 'E_MODEL_UNSUPPORTED', /rope_freqs/);
    await rejects(readGguf(write('missing.gguf', meta, tensors.filter((t) => t.name !== 'blk.3.ffn_up.weight'))), 'E_MODEL_SHAPE', /blk\.3\.ffn_up\.weight/);
    const wrongShape = tensors.map((t) => (t.name === 'blk.2.attn_v.weight' ? { ...t, dims: [32, 64] } : t));
    await rejects(readGguf(write('shape.gguf', meta, wrongShape)), 'E_MODEL_SHAPE', /blk\.2\.attn_v\.weight.*\[32, 64\].*\[64, 32\]/);
    await rejects(readGguf(write('v1.gguf', meta, tensors, { version: 1 })), 'E_MODEL_UNSUPPORTED', /version 1/);
    await rejects(readGguf(join(dir, 'nope.gguf')), 'E_MODEL_NOT_FOUND', /nope\.gguf/);
  });
});
