import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadSource } from '../../agent/convert/detect.js';
import { toFloat32 } from '../../agent/convert/dequant.js';
import { readGguf } from '../../agent/convert/gguf.js';
import { readHfLlama } from '../../agent/convert/hf.js';
import { parseSafetensors } from '../../agent/convert/safetensors.js';
import type { HfTokenizerJson, LlamaSource, SentencePieceVocab, SourceTensor } from '../../agent/convert/source.js';
import { f32Bytes, f32Values, linkFolder, MODELS, permuteToHf, rejectsWith, safetensorsBytes, spModelBytes, tempDir, writeJson, type StTensor } from '../helpers/fixtures.js';

/** Undo HF's q/k permutation: HF row h*hd + j*hd/2 + i holds Meta row h*hd + 2i + j. */
function unpermute(hf: Float32Array, nHeads: number, rows: number, cols: number): Float32Array {
  const hd = rows / nHeads;
  const out = new Float32Array(hf.length);
  for (let h = 0; h < nHeads; h++) {
    for (let i = 0; i < hd / 2; i++) {
      for (let j = 0; j < 2; j++) {
        const src = (h * hd + j * (hd / 2) + i) * cols;
        out.set(hf.subarray(src, src + cols), (h * hd + 2 * i + j) * cols);
      }
    }
  }
  return out;
}

function pairs(s: LlamaSource): [string, SourceTensor][] {
  const t = s.tensors;
  return [
    ['tokEmbd', t.tokEmbd],
    ['outputNorm', t.outputNorm],
    ...t.layers.flatMap((l, i) => Object.entries(l).map(([k, v]) => [`${i}.${k}`, v as SourceTensor] as [string, SourceTensor])),
  ];
}

/** HF tensors equal the GGUF F32 tensors once q/k rows are un-permuted (exact). */
function assertSameWeights(hf: LlamaSource, gguf: LlamaSource): void {
  const want = new Map(pairs(gguf));
  const c = hf.config;
  for (const [name, t] of pairs(hf)) {
    let got = toFloat32(t);
    if (name.endsWith('.wq')) got = unpermute(got, c.nHeads, c.nHeads * c.headDim, c.dim);
    if (name.endsWith('.wk')) got = unpermute(got, c.nKvHeads, c.nKvHeads * c.headDim, c.dim);
    assert.deepEqual(t.shape, want.get(name)!.shape, name);
    assert.deepEqual(got, toFloat32(want.get(name)!), name);
  }
}


describe('Hugging Face reader on the shared caption models', () => {
  for (const ee of [false, true]) {
    const name = ee ? 'caption-lm-8L-ee' : 'caption-lm-8L';
    it(`${name}/hf: README config, tied head, tokenizer.json, weights equal the GGUF after un-permuting q/k`, async () => {
      const hf = await readHfLlama(MODELS.captionHf(ee));
      assert.equal(hf.format, 'hf');
      assert.equal(hf.name, name);
      assert.deepEqual(
        { ...hf.config },
        { dim: 128, nLayers: 8, nHeads: 4, nKvHeads: 4, headDim: 32, ffnDim: 352, vocabSize: 1024, normEps: 1e-5, ropeTheta: 10000, maxSeqLen: 64, ropeLayout: 'halves', tiedEmbeddings: true },
      );
      assert.equal(hf.tensors.output, undefined);
      const tok = hf.tokenizer as HfTokenizerJson;
      assert.equal(tok.kind, 'hf-tokenizer-json');
      assert.deepEqual([tok.bos, tok.eos], [1, 2]);
      assert.equal((tok.json as { model: { type: string } }).model.type, 'BPE');
      const gguf = await readGguf(MODELS.captionF32(ee));
      assertSameWeights(hf, gguf);
      // and the permutation is real: q as stored differs from the GGUF's
      assert.notDeepEqual(toFloat32(hf.tensors.layers[0]!.wq), toFloat32(gguf.tensors.layers[0]!.wq));
    });
  }
});

describe('Hugging Face reader on written folders', () => {
  let dir: string;
  let cleanup: () => void;
  before(() => ({ dir, cleanup } = tempDir()));
  after(() => cleanup());

  const folder = (name: string, skip: string[] = []): string => {
    const p = join(dir, name);
    mkdirSync(p);
    linkFolder(MODELS.captionHf(), p, skip);
    return p;
  };

  it('the sharded index form reads the same as the single file', async () => {
    const p = folder('sharded', ['model.safetensors']);
    const entries = [...parseSafetensors(readFileSync(join(MODELS.captionHf(), 'model.safetensors')), 'model.safetensors').values()];
    const shards: StTensor[][] = [[], [], []];
    const weightMap: Record<string, string> = {};
    entries.forEach((e, i) => {
      shards[i % 3]!.push(e);
      weightMap[e.name] = `model-0000${(i % 3) + 1}-of-00003.safetensors`;
    });
    shards.forEach((s, i) => writeFileSync(join(p, `model-0000${i + 1}-of-00003.safetensors`), safetensorsBytes(s)));
    writeJson(join(p, 'model.safetensors.index.json'), { metadata: { total_size: 0 }, weight_map: weightMap });
    const [a, b] = await Promise.all([readHfLlama(p), readHfLlama(MODELS.captionHf())]);
    assert.deepEqual(a.config, b.config);
    assertSameWeights(a, await readGguf(MODELS.captionF32()));
    assert.notEqual(a.sha256, b.sha256);
    // an index naming a shard outside the folder is refused
    writeJson(join(p, 'model.safetensors.index.json'), { weight_map: { ...weightMap, 'model.norm.weight': '../model.safetensors' } });
    await rejectsWith(readHfLlama(p), 'E_MODEL_FORMAT', /model\.norm\.weight/);
  });

  it('tokenizer.model is used when tokenizer.json is absent, and matches the GGUF vocabulary', async () => {
    const p = folder('spm', ['tokenizer.json']);
    const s = await loadSource(p);
    const v = s.tokenizer as SentencePieceVocab;
    const g = (await readGguf(MODELS.captionF32())).tokenizer as SentencePieceVocab;
    assert.equal(v.kind, 'sentencepiece');
    assert.deepEqual(v.pieces, g.pieces);
    assert.deepEqual(v.types, g.types);
    assert.deepEqual(v.scores, g.scores);
    assert.deepEqual([v.unk, v.bos, v.eos, v.addDummyPrefix, v.splitDigits], [0, 1, 2, true, true]);
  });

  it('GQA stories260K in HF form (q/k permuted, BF16 and F16 tensors, lm_head untied)', async () => {
    const ref = await readGguf(MODELS.stories());
    const c = ref.config;
    const p = join(dir, 'stories-hf');
    mkdirSync(p);
    const bf16 = (a: Float32Array): Uint8Array => {
      const u = new Uint16Array(a.length);
      const bits = new Uint32Array(a.buffer.slice(a.byteOffset, a.byteOffset + a.byteLength));
      for (let i = 0; i < a.length; i++) u[i] = bits[i]! >>> 16;
      return new Uint8Array(u.buffer);
    };
    const lmHead = f32Values(ref.tensors.tokEmbd).map((v) => -v);
    const tensors: StTensor[] = [
      { name: 'model.embed_tokens.weight', dtype: 'F32', shape: [512, 64], data: f32Bytes(f32Values(ref.tensors.tokEmbd)) },
      { name: 'model.norm.weight', dtype: 'F32', shape: [64], data: f32Bytes(f32Values(ref.tensors.outputNorm)) },
      { name: 'lm_head.weight', dtype: 'F32', shape: [512, 64], data: f32Bytes(lmHead) },
    ];
    ref.tensors.layers.forEach((l, i) => {
      const t = (n: string, v: Float32Array, shape: number[], dtype = 'F32'): void => {
        tensors.push({ name: `model.layers.${i}.${n}.weight`, dtype, shape, data: dtype === 'BF16' ? bf16(v) : f32Bytes(v) });
      };
      t('input_layernorm', f32Values(l.attnNorm), [64]);
      t('self_attn.q_proj', permuteToHf(f32Values(l.wq), c.nHeads, 64, 64), [64, 64]);
      t('self_attn.k_proj', permuteToHf(f32Values(l.wk), c.nKvHeads, 32, 64), [32, 64]);
      t('self_attn.v_proj', f32Values(l.wv), [32, 64]);
      t('self_attn.o_proj', f32Values(l.wo), [64, 64]);
      t('post_attention_layernorm', f32Values(l.ffnNorm), [64]);
      t('mlp.gate_proj', f32Values(l.wGate), [172, 64], i === 0 ? 'BF16' : 'F32');
      t('mlp.up_proj', f32Values(l.wUp), [172, 64]);
      t('mlp.down_proj', f32Values(l.wDown), [64, 172]);
    });
    writeFileSync(join(p, 'model.safetensors'), safetensorsBytes(tensors.reverse()));
    writeJson(join(p, 'config.json'), {
      architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: 64, intermediate_size: 172, num_hidden_layers: 5,
      num_attention_heads: 8, num_key_value_heads: 4, max_position_embeddings: 512, rms_norm_eps: 1e-5, vocab_size: 512,
      tie_word_embeddings: false, rope_theta: 10000.0, hidden_act: 'silu',
    });
    writeFileSync(join(p, 'tokenizer.model'), spModelBytes(ref.tokenizer as SentencePieceVocab));
    const s = await loadSource(p);
    assert.deepEqual(s.config, { ...c, maxSeqLen: 512, ropeLayout: 'halves', tiedEmbeddings: false });
    assert.deepEqual(toFloat32(s.tensors.output!), lmHead);
    // BF16 widened exactly: the f32 values with their low 16 bits cleared
    const gate0 = f32Values(ref.tensors.layers[0]!.wGate);
    const cleared = new Float32Array(new Uint32Array(gate0.buffer.slice(0)).map((b) => b & 0xffff0000).buffer);
    assert.equal(s.tensors.layers[0]!.wGate.dtype, 'f32');
    assert.deepEqual(toFloat32(s.tensors.layers[0]!.wGate), cleared);
    for (let i = 0; i < 5; i++) {
      assert.deepEqual(unpermute(toFloat32(s.tensors.layers[i]!.wq), 8, 64, 64), f32Values(ref.tensors.layers[i]!.wq));
      assert.deepEqual(unpermute(toFloat32(s.tensors.layers[i]!.wk), 4, 32, 64), f32Values(ref.tensors.layers[i]!.wk));
      assert.deepEqual(toFloat32(s.tensors.layers[i]!.wDown), f32Values(ref.tensors.layers[i]!.wDown));
    }
    assert.deepEqual((s.tokenizer as SentencePieceVocab).pieces, (ref.tokenizer as SentencePieceVocab).pieces);
  });

  it('refuses other architectures, pickle weights, missing tokenizers, unexpected dtypes', async () => {
    await rejectsWith(readHfLlama(MODELS.bertHf()), 'E_MODEL_UNSUPPORTED', /Bert|bert/);
    await rejectsWith(loadSource(MODELS.bertHf()), 'E_MODEL_UNSUPPORTED', /Bert|bert/);
    const pickle = folder('pickle', ['model.safetensors']);
    writeFileSync(join(pickle, 'pytorch_model.bin'), 'x');
    await rejectsWith(readHfLlama(pickle), 'E_MODEL_UNSUPPORTED', /pytorch_model\.bin/);
    await rejectsWith(readHfLlama(folder('notok', ['tokenizer.json', 'tokenizer.model'])), 'E_MODEL_TOKENIZER', /tokenizer/);
    const i8 = folder('i8', ['model.safetensors']);
    const entries = [...parseSafetensors(readFileSync(join(MODELS.captionHf(), 'model.safetensors')), 'x').values()];
    const changed = entries.map((e) => (e.name === 'model.layers.3.mlp.up_proj.weight' ? { ...e, dtype: 'I32' } : e));
    writeFileSync(join(i8, 'model.safetensors'), safetensorsBytes(changed));
    await rejectsWith(readHfLlama(i8), 'E_MODEL_UNSUPPORTED', /model\.layers\.3\.mlp\.up_proj\.weight.*I32/);
    const biased = folder('bias', ['model.safetensors']);
    writeFileSync(join(biased, 'model.safetensors'), safetensorsBytes([...entries, { name: 'model.layers.0.self_attn.q_proj.bias', dtype: 'F32', shape: [128], data: new Uint8Array(512) }]));
    await rejectsWith(readHfLlama(biased), 'E_MODEL_UNSUPPORTED', /q_proj\.bias/);
    await rejectsWith(readHfLlama(join(dir, 'absent')), 'E_MODEL_NOT_FOUND', /absent/);
  });
});
