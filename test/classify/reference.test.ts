/**
 * Any HF BERT-family classifier converts and runs exactly: tiny random BERT and DistilBERT models
 * (other vocab sizes, layer counts, head counts, label counts; token type ids; F16 weights; old
 * gamma/beta LayerNorm names; vocab.txt without tokenizer.json) against an independent float64
 * reference forward pass, which itself reproduces the moderation model's README goldens.
 */
import assert from 'node:assert/strict';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { convertBert, isBertDir } from '../../agent/convert/bert.js';
import { Classifier, type Encoded } from '../../agent/engine/classifier.js';
import { SedacError } from '../../agent/errors.js';
import { f32Bytes, prng, safetensorsBytes, tempDir, type StTensor } from '../helpers/fixtures.js';
import { refLogits } from './bertRef.js';
import { BERT_HF, bertProbes } from './fixtures.js';

const LETTERS = 'abcdefghijklmnopqrstuvwxyz'.split('');
const VOCAB = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', ...LETTERS, ...LETTERS.map((c) => `##${c}`), 'hello', 'world', 'good', 'bad', 'day', '!', ','];

function f16(x: number): number {
  const f = new Float32Array([x]), u = new Uint32Array(f.buffer)[0]!;
  const s = (u >>> 16) & 0x8000, e = ((u >>> 23) & 0xff) - 127 + 15, m = u & 0x7fffff;
  if (e <= 0) return s;
  if (e >= 31) return s | 0x7c00;
  const r = (e << 10) | (m >> 13);
  return s | (r + ((m >> 12) & 1)); // round half up on the dropped bits
}

interface TinySpec {
  kind: 'bert' | 'distilbert';
  d: number;
  heads: number;
  layers: number;
  ff: number;
  labels: number;
  dtype: 'F32' | 'F16';
  gammaBeta?: boolean;
  id2label?: boolean;
}

/** Write a random tiny classifier folder (config.json, model.safetensors, vocab.txt). */
function writeTiny(dir: string, s: TinySpec, seed: number): void {
  mkdirSync(dir, { recursive: true });
  const r = prng(seed);
  const tensors: StTensor[] = [];
  const put = (name: string, shape: number[], init: () => number): void => {
    const n = shape.reduce((a, b) => a * b, 1);
    const vals = Float32Array.from({ length: n }, init);
    const data = s.dtype === 'F32' ? f32Bytes(vals) : new Uint8Array(Uint16Array.from(vals, f16).buffer);
    tensors.push({ name, dtype: s.dtype, shape, data });
  };
  const w = () => (r() - 0.5) * 0.5;
  const g = () => 1 + (r() - 0.5) * 0.2;
  const ln = (base: string) => {
    put(`${base}.${s.gammaBeta ? 'gamma' : 'weight'}`, [s.d], g);
    put(`${base}.${s.gammaBeta ? 'beta' : 'bias'}`, [s.d], w);
  };
  const lin = (base: string, out: number, inn: number) => {
    put(`${base}.weight`, [out, inn], w);
    put(`${base}.bias`, [out], w);
  };
  const P = s.kind === 'bert' ? 'bert.' : 'distilbert.';
  put(`${P}embeddings.word_embeddings.weight`, [VOCAB.length, s.d], w);
  put(`${P}embeddings.position_embeddings.weight`, [32, s.d], w);
  if (s.kind === 'bert') put(`${P}embeddings.token_type_embeddings.weight`, [2, s.d], w);
  ln(`${P}embeddings.LayerNorm`);
  for (let l = 0; l < s.layers; l++) {
    if (s.kind === 'bert') {
      const p = `${P}encoder.layer.${l}.`;
      for (const x of ['query', 'key', 'value']) lin(`${p}attention.self.${x}`, s.d, s.d);
      lin(`${p}attention.output.dense`, s.d, s.d);
      ln(`${p}attention.output.LayerNorm`);
      lin(`${p}intermediate.dense`, s.ff, s.d);
      lin(`${p}output.dense`, s.d, s.ff);
      ln(`${p}output.LayerNorm`);
    } else {
      const p = `${P}transformer.layer.${l}.`;
      for (const x of ['q_lin', 'k_lin', 'v_lin', 'out_lin']) lin(`${p}attention.${x}`, s.d, s.d);
      ln(`${p}sa_layer_norm`);
      lin(`${p}ffn.lin1`, s.ff, s.d);
      lin(`${p}ffn.lin2`, s.d, s.ff);
      ln(`${p}output_layer_norm`);
    }
  }
  if (s.kind === 'bert') lin(`${P}pooler.dense`, s.d, s.d);
  else lin('pre_classifier', s.d, s.d);
  lin('classifier', s.labels, s.d);
  writeFileSync(join(dir, 'model.safetensors'), safetensorsBytes(tensors));
  writeFileSync(join(dir, 'vocab.txt'), VOCAB.join('\n') + '\n');
  const id2label = s.id2label ? Object.fromEntries(Array.from({ length: s.labels }, (_, i) => [String(i), `class_${i}`])) : undefined;
  const cfg =
    s.kind === 'bert'
      ? { model_type: 'bert', vocab_size: VOCAB.length, hidden_size: s.d, num_hidden_layers: s.layers, num_attention_heads: s.heads, intermediate_size: s.ff, hidden_act: 'gelu', max_position_embeddings: 32, type_vocab_size: 2, layer_norm_eps: 1e-12, id2label }
      : { model_type: 'distilbert', vocab_size: VOCAB.length, dim: s.d, n_layers: s.layers, n_heads: s.heads, hidden_dim: s.ff, activation: 'gelu', max_position_embeddings: 32, id2label };
  writeFileSync(join(dir, 'config.json'), JSON.stringify(cfg));
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ do_lower_case: true, model_max_length: 24 }));
}

const TEXTS = ['Hello world!', 'good day, bad day', 'xyz hello', 'a b c d e f g h i j k l m n o p q r s t u v w x y z z z z'];

function assertClose(got: ArrayLike<number>, want: number[], tol: number, what: string): void {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) assert.ok(Math.abs(got[i]! - want[i]!) <= tol, `${what}[${i}]: ${got[i]} vs ${want[i]}`);
}

describe('BERT-family conversion against a float64 reference', () => {
  const tmp = tempDir('sedac-bert-ref-');
  after(() => tmp.cleanup());

  it('the reference itself reproduces the README goldens of moderation-bert-6L', () => {
    for (const p of bertProbes()) assertClose(refLogits(BERT_HF(), p.ids), p.logits, 1e-4, p.text);
  });

  const specs: [string, TinySpec][] = [
    ['BERT, 5 labels, 3 heads, 2 layers, gamma/beta names, F32', { kind: 'bert', d: 48, heads: 3, layers: 2, ff: 96, labels: 5, dtype: 'F32', gammaBeta: true, id2label: true }],
    ['DistilBERT, 4 labels without id2label, 3 layers, F16', { kind: 'distilbert', d: 32, heads: 4, layers: 3, ff: 64, labels: 4, dtype: 'F16' }],
  ];
  specs.forEach(([name, spec], si) => {
    describe(name, () => {
      const src = join(tmp.dir, `src${si}`), out = join(tmp.dir, `bundle${si}`);
      let model: Classifier;
      before(async () => {
        writeTiny(src, spec, 11 + si);
        assert.ok(isBertDir(src));
        await convertBert(src, out, { quiet: true });
        model = await Classifier.open(out);
      });
      after(async () => model?.dispose());

      it('labels, layers and maximum length from the config', () => {
        assert.equal(model.nLayers, spec.layers);
        assert.deepEqual(model.labels, Array.from({ length: spec.labels }, (_, i) => (spec.id2label ? `class_${i}` : `LABEL_${i}`)));
        assert.equal(model.maxLength, 24);
      });

      it('full-depth logits equal the reference (fused and per-layer graphs), truncation included', async () => {
        for (const text of TEXTS) {
          const enc = model.encode(text);
          const want = refLogits(src, Array.from(enc.ids));
          assertClose((await model.runFull(enc)).logits!, want, 1e-4, `${text} fused`);
          assertClose((await model.runExits(enc, new Array(spec.layers).fill(-1))).logits!, want, 1e-4, `${text} per-layer`);
        }
        assert.equal(model.encode(TEXTS[3]!).ids.length, 24);
      });

      it('token type ids and padded batches', async () => {
        const enc = model.encode('hello world good day');
        const typed: Encoded = { ...enc, typeIds: enc.typeIds.map((_, i) => (i > 2 ? 1 : 0)) };
        const want = refLogits(src, Array.from(enc.ids), Array.from(typed.typeIds));
        assertClose((await model.runFull(typed)).logits!, want, 1e-4, 'typed');
        if (spec.kind === 'bert') assert.ok(Math.abs(want[0]! - refLogits(src, Array.from(enc.ids))[0]!) > 1e-3, 'type embeddings matter');
        const encs = TEXTS.map((t) => model.encode(t));
        const tr = await model.trace(encs, 4);
        encs.forEach((e, i) => assertClose(tr.logits.subarray(i * spec.labels, (i + 1) * spec.labels), refLogits(src, Array.from(e.ids)), 1e-4, `batch row ${i}`));
      });
    });
  });

  it('unsupported or broken folders are refused with coded errors', async () => {
    const bad = join(tmp.dir, 'bad');
    writeTiny(bad, specs[0]![1], 3);
    const cfgPath = join(bad, 'config.json');
    writeFileSync(cfgPath, JSON.stringify({ model_type: 'roberta', hidden_size: 48 }));
    assert.equal(isBertDir(bad), false);
    await assert.rejects(convertBert(bad, join(tmp.dir, 'o1'), { quiet: true }), (e: unknown) => e instanceof SedacError && e.code === 'E_MODEL_UNSUPPORTED');
    writeTiny(bad, { ...specs[0]![1], layers: 1 }, 3);
    writeFileSync(cfgPath, JSON.stringify({ model_type: 'bert', vocab_size: VOCAB.length, hidden_size: 48, num_hidden_layers: 2, num_attention_heads: 3, intermediate_size: 96, max_position_embeddings: 32, type_vocab_size: 2 }));
    await assert.rejects(convertBert(bad, join(tmp.dir, 'o2'), { quiet: true }), (e: unknown) => e instanceof SedacError && e.code === 'E_MODEL_SHAPE' && /layer\.1/.test(e.message));
    rmSync(join(bad, 'model.safetensors'));
    await assert.rejects(convertBert(bad, join(tmp.dir, 'o3'), { quiet: true }), (e: unknown) => e instanceof SedacError && e.code === 'E_MODEL_NOT_FOUND');
  });
});
