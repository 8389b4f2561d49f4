/**
 * ONNX graphs for a BERT-family encoder classifier, built from ORT's CPU contrib ops so that a layer
 * is 12 cheap kernels instead of ~30 (dispatch, not arithmetic, dominates at d=128 — DESIGN.md §8):
 *
 *   embed:  EmbedLayerNormalization(ids, type ids; word, position, type tables; LN)        1 kernel
 *   layer:  com.microsoft.Attention(h, Wqkv, bqkv, mask) → MatMul Wo → Add bo → Add h → LayerNorm
 *           → MatMul Wup → Add bup → Gelu (erf) → MatMul Wdown → Add bdown → Add h1 → LayerNorm
 *   head:   Gather [CLS] → Gemm + tanh (pooler) or + ReLU (DistilBERT pre-classifier) → Gemm
 *
 * All are exact float32 (ONNX Gelu uses erf); test/classify checks the goldens to 1e-4.
 * Tensor shapes: hidden (batch, seq, d); ids / type ids / mask int32 (batch, seq), mask 1 = token.
 */
import { DType, GraphBuilder } from './onnx.js';

const MS = 'com.microsoft';

export interface F32 {
  shape: number[];
  data: Float32Array;
}

export interface BertConfig {
  vocabSize: number;
  hidden: number;
  nLayers: number;
  nHeads: number;
  intermediate: number;
  maxPositions: number;
  /** 0 when the model has no token-type embeddings (DistilBERT) */
  typeVocabSize: number;
  layerNormEps: number;
  act: 'gelu' | 'relu' | 'gelu_tanh';
  numLabels: number;
  labels: string[];
}

/** One encoder layer; matrices are HF nn.Linear weights, (out, in). */
export interface BertLayer {
  q: F32; qb: F32; k: F32; kb: F32; v: F32; vb: F32;
  o: F32; ob: F32; ln1g: F32; ln1b: F32;
  up: F32; upb: F32; down: F32; downb: F32; ln2g: F32; ln2b: F32;
}

export type HeadActivation = 'tanh' | 'relu';

export interface BertSource {
  arch: 'bert' | 'distilbert';
  name: string;
  path: string;
  /** sha256 of the source files (bertSourceFiles), combined as detect.ts does */
  sha256: string;
  config: BertConfig;
  word: F32; // (vocab, d)
  position: F32; // (maxPositions, d)
  tokenType: F32 | undefined; // (types, d)
  embLnG: F32; // (d)
  embLnB: F32; // (d)
  layers: BertLayer[];
  /** pooler (BERT, tanh) or pre-classifier (DistilBERT, ReLU) on the [CLS] row: (d, d) */
  pre: { w: F32; b: F32; act: HeadActivation };
  /** classifier (labels, d) */
  cls: { w: F32; b: F32 };
}

/** (out, in) → (in, out), for MatMul x·W. */
function transpose(t: F32): Float32Array {
  const [out, inn] = t.shape as [number, number];
  const r = new Float32Array(out * inn);
  for (let o = 0; o < out; o++) for (let i = 0; i < inn; i++) r[i * out + o] = t.data[o * inn + i]!;
  return r;
}

/** Word + position (+ token type) embeddings and LayerNorm, one fused kernel. */
export function addEmbed(g: GraphBuilder, s: BertSource, ids: string, types: string | undefined, mask: string, out?: string): string {
  const d = s.config.hidden;
  const word = g.f32('emb.word', s.word.shape, s.word.data);
  const pos = g.f32('emb.pos', s.position.shape, s.position.data);
  const typ = s.tokenType ? g.f32('emb.type', s.tokenType.shape, s.tokenType.data) : '';
  const gamma = g.f32('emb.ln.g', [d], s.embLnG.data);
  const beta = g.f32('emb.ln.b', [d], s.embLnB.data);
  const [hidden] = g.node('EmbedLayerNormalization', [ids, s.tokenType && types ? types : '', word, pos, typ, gamma, beta, mask], [out ?? g.fresh('emb'), g.fresh('mask_index')], { epsilon: { float: s.config.layerNormEps } }, MS);
  return hidden!;
}

/** One post-LN encoder layer. */
export function addLayer(g: GraphBuilder, s: BertSource, l: number, h: string, mask: string, out?: string): string {
  const { hidden: d, intermediate: ff, nHeads, layerNormEps: eps } = s.config;
  const L = s.layers[l]!;
  const p = `l${l}.`;
  // fused QKV projection: (d, 3d) = [Wqᵀ | Wkᵀ | Wvᵀ]
  const wqkv = new Float32Array(d * 3 * d);
  const tq = transpose(L.q), tk = transpose(L.k), tv = transpose(L.v);
  for (let i = 0; i < d; i++) {
    wqkv.set(tq.subarray(i * d, (i + 1) * d), i * 3 * d);
    wqkv.set(tk.subarray(i * d, (i + 1) * d), i * 3 * d + d);
    wqkv.set(tv.subarray(i * d, (i + 1) * d), i * 3 * d + 2 * d);
  }
  const bqkv = new Float32Array(3 * d);
  bqkv.set(L.qb.data, 0);
  bqkv.set(L.kb.data, d);
  bqkv.set(L.vb.data, 2 * d);
  // self-attention with the padding mask (padded keys get -10000 before softmax: exp underflows to 0)
  const ctx = g.op('Attention', [h, g.f32(p + 'wqkv', [d, 3 * d], wqkv), g.f32(p + 'bqkv', [3 * d], bqkv), mask], { num_heads: nHeads }, MS);
  const attnOut = g.op('MatMul', [ctx, g.f32(p + 'wo', [d, d], transpose(L.o))]);
  // h1 = LN(attnOut + bo + h)
  const h1 = addNorm(g, attnOut, g.f32(p + 'bo', [d], L.ob.data), h, g.f32(p + 'ln1.g', [d], L.ln1g.data), g.f32(p + 'ln1.b', [d], L.ln1b.data), eps);
  // feed-forward: act(h1·Wup + bup)
  const up = g.op('Add', [g.op('MatMul', [h1, g.f32(p + 'wup', [d, ff], transpose(L.up))]), g.f32(p + 'bup', [ff], L.upb.data)]);
  const act = s.config.act === 'relu' ? g.op('Relu', [up]) : g.op('Gelu', [up], s.config.act === 'gelu_tanh' ? { approximate: 'tanh' } : {});
  const down = g.op('MatMul', [act, g.f32(p + 'wdown', [ff, d], transpose(L.down))]);
  // h2 = LN(down + bdown + h1)
  return addNorm(g, down, g.f32(p + 'bdown', [d], L.downb.data), h1, g.f32(p + 'ln2.g', [d], L.ln2g.data), g.f32(p + 'ln2.b', [d], L.ln2b.data), eps, out);
}

/**
 * LN(x + bias + residual) as Add, Add, LayerNormalization. Measured on this machine (seq 25, d 128):
 * ~4 µs of kernels, where com.microsoft.SkipLayerNormalization takes ~15 µs — which is also why the
 * classifier's sessions use graph optimization 'basic' (level 'all' fuses this back into SkipLN).
 */
function addNorm(g: GraphBuilder, x: string, bias: string, residual: string, gamma: string, beta: string, eps: number, out?: string): string {
  const sum = g.op('Add', [g.op('Add', [x, bias]), residual]);
  return g.node('LayerNormalization', [sum, gamma, beta], out ? [out] : 1, { axis: -1, epsilon: { float: eps } })[0]!;
}

/** Pooler (or pre-classifier) on the [CLS] row, then the classifier: (batch, labels). */
export function addHead(g: GraphBuilder, s: BertSource, h: string, out?: string): string {
  const d = s.config.hidden;
  const cls = g.op('Gather', [h, g.initializer('head.cls_index', DType.INT64, [], new Uint8Array(8))], { axis: 1 });
  const pre = g.op('Gemm', [cls, g.f32('head.pre.w', [d, d], s.pre.w.data), g.f32('head.pre.b', [d], s.pre.b.data)], { transB: 1 });
  const act = g.op(s.pre.act === 'tanh' ? 'Tanh' : 'Relu', [pre]);
  const n = s.config.numLabels;
  return g.op('Gemm', [act, g.f32('head.cls.w', [n, d], s.cls.w.data), g.f32('head.cls.b', [n], s.cls.b.data)], { transB: 1 }, '', out);
}

function encoderInputs(g: GraphBuilder, s: BertSource): { ids: string; types: string | undefined; mask: string } {
  const ids = g.input('input_ids', DType.INT32, ['batch', 'seq']);
  const types = s.tokenType ? g.input('token_type_ids', DType.INT32, ['batch', 'seq']) : undefined;
  const mask = g.input('attention_mask', DType.INT32, ['batch', 'seq']);
  return { ids, types, mask };
}

export function buildEmbedGraph(s: BertSource): GraphBuilder {
  const g = new GraphBuilder('embed');
  const { ids, types, mask } = encoderInputs(g, s);
  addEmbed(g, s, ids, types, mask, 'hidden');
  g.output('hidden', DType.FLOAT, ['batch', 'seq', s.config.hidden]);
  return g;
}

export function buildLayerGraph(s: BertSource, l: number): GraphBuilder {
  const g = new GraphBuilder(`layer.${l}`);
  const h = g.input('hidden_in', DType.FLOAT, ['batch', 'seq', s.config.hidden]);
  const mask = g.input('attention_mask', DType.INT32, ['batch', 'seq']);
  addLayer(g, s, l, h, mask, 'hidden');
  g.output('hidden', DType.FLOAT, ['batch', 'seq', s.config.hidden]);
  return g;
}

export function buildHeadGraph(s: BertSource): GraphBuilder {
  const g = new GraphBuilder('head');
  const h = g.input('hidden_in', DType.FLOAT, ['batch', 'seq', s.config.hidden]);
  addHead(g, s, h, 'logits');
  g.output('logits', DType.FLOAT, ['batch', s.config.numLabels]);
  return g;
}

/** The whole model in one graph: the fastest way to full depth (one session call). */
export function buildFullGraph(s: BertSource): GraphBuilder {
  const g = new GraphBuilder('full');
  const { ids, types, mask } = encoderInputs(g, s);
  let h = addEmbed(g, s, ids, types, mask);
  for (let l = 0; l < s.config.nLayers; l++) h = addLayer(g, s, l, h, mask);
  addHead(g, s, h, 'logits');
  g.output('logits', DType.FLOAT, ['batch', s.config.numLabels]);
  return g;
}
