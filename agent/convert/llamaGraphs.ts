/**
 * ONNX graphs for a Llama decoder, built from ORT's CPU contrib ops so that a layer is ~12 kernels
 * instead of ~34 (DESIGN.md §8: dispatch, not arithmetic, dominates at these sizes):
 *
 *   x   = SimplifiedLayerNormalization(h, attn_norm)
 *   qkv = x · Wqkvᵀ                                  (one packed MatMul)
 *   a, K', V' = GroupQueryAttention(qkv, K, V)       (RoPE inside; adjacent or rotate-half layout)
 *   x2, h2 = SkipSimplifiedLayerNormalization(a · Woᵀ, h, ffn_norm)   (h2 = h + a·Woᵀ)
 *   h'  = h2 + ((silu(x2 · Wgᵀ) ⊙ (x2 · Wuᵀ)) · Wdᵀ)
 *
 * GroupQueryAttention needs head_dim % 16 == 0. Smaller heads (stories260K: 8) are padded at
 * conversion: zero rows are inserted into Wq/Wk/Wv per head (placed so RoPE still pairs the real
 * dimensions, with frequency 0 — identity — on the padding), and a Gather drops the padded V dims
 * before Wo. Attention scores are unchanged because the padded q·k terms are 0·0.
 *
 * The same layer body is emitted into one graph per layer (so the engine can stop between layers)
 * and into one fused graph with all layers (the fastest full-depth path). KV caches are BNSH
 * (1, kv_heads, past, head_dim) and flow in and out of every graph identically, so the engine can
 * switch between the fused and the per-layer path from one token to the next.
 */
import type { ExitSignal } from '../engine/ladder.js';
import { SedacError } from '../errors.js';
import { DType, GraphBuilder } from './onnx.js';
import type { LlamaConfig, LlamaLayerTensors, LlamaSource, SourceTensor } from './source.js';
import { embedding, linear, vectorF32 } from './weights.js';

/** Names of the graph inputs/outputs the engine feeds. */
export const IO = {
  inputIds: 'input_ids',
  hidden: 'hidden',
  hiddenOut: 'hidden_out',
  logits: 'logits',
  exitLogits: 'exit_logits',
  exitEntropy: 'exit_entropy',
  /** the exit head's two largest logits, descending (margin-scored exit heads) */
  exitTop2: 'exit_top2',
  seqlensK: 'seqlens_k',
  totalLen: 'total_len',
  /** int64 [1]: first position written by this call (= cached positions) */
  kvStart: 'kv_start',
  /** int64 [1]: one past the last position written (= total_len) */
  kvEnd: 'kv_end',
  /** (2·layers, kv_heads, seq, kv_head_dim): this call's new K and V rows, k0 v0 k1 v1 … */
  newKv: 'new_kv',
  pastKey: (l: number) => `past_key.${l}`,
  pastValue: (l: number) => `past_value.${l}`,
  presentKey: (l: number) => `present_key.${l}`,
  presentValue: (l: number) => `present_value.${l}`,
} as const;

/** Concatenate the rows of several (out_i, in) matrices of the same dtype into one (Σout_i, in). */
function stackRows(name: string, parts: SourceTensor[]): SourceTensor {
  const first = parts[0]!;
  for (const p of parts) {
    if (p.dtype !== first.dtype || p.shape[1] !== first.shape[1]) {
      throw new SedacError('E_MODEL_SHAPE', `${p.name}: cannot pack with ${first.name} (dtype/shape differ)`);
    }
  }
  const total = parts.reduce((n, p) => n + p.data.byteLength, 0);
  const data = new Uint8Array(total);
  let off = 0;
  for (const p of parts) {
    data.set(p.data, off);
    off += p.data.byteLength;
  }
  const out: SourceTensor = { name, dtype: first.dtype, shape: [parts.reduce((n, p) => n + p.shape[0]!, 0), first.shape[1]!], data };
  if (first.dtype === 'q8_g') {
    out.groupSize = first.groupSize;
    const scales = new Float32Array(parts.reduce((n, p) => n + (p.scales?.length ?? 0), 0));
    let so = 0;
    for (const p of parts) {
      scales.set(p.scales!, so);
      so += p.scales!.length;
    }
    out.scales = scales;
  }
  return out;
}

/** The head size GroupQueryAttention runs at: head_dim rounded up to a multiple of 16. */
export function paddedHeadDim(c: LlamaConfig): number {
  return Math.ceil(c.headDim / 16) * 16;
}

/** Where real dimension j of a head sits in the padded head (RoPE pairs must stay pairs). */
function padSlot(c: LlamaConfig, j: number): number {
  const half = c.headDim / 2;
  if (c.ropeLayout === 'adjacent' || j < half) return j;
  return paddedHeadDim(c) / 2 + (j - half);
}

/** Insert zero rows so each head of `heads` rows of headDim becomes paddedHeadDim rows. */
function padHeads(t: SourceTensor, c: LlamaConfig, heads: number, rope: boolean): SourceTensor {
  const hd = c.headDim;
  const hdp = paddedHeadDim(c);
  if (hdp === hd) return t;
  const rows = t.shape[0]!;
  const rowBytes = t.data.byteLength / rows;
  const data = new Uint8Array(heads * hdp * rowBytes);
  const scaleRow = t.scales ? t.scales.length / rows : 0;
  const scales = t.scales ? new Float32Array(heads * hdp * scaleRow) : undefined;
  for (let h = 0; h < heads; h++) {
    for (let j = 0; j < hd; j++) {
      const from = h * hd + j;
      const to = h * hdp + (rope ? padSlot(c, j) : j);
      data.set(t.data.subarray(from * rowBytes, (from + 1) * rowBytes), to * rowBytes);
      if (scales) scales.set(t.scales!.subarray(from * scaleRow, (from + 1) * scaleRow), to * scaleRow);
    }
  }
  return { ...t, shape: [heads * hdp, t.shape[1]!], data, ...(scales ? { scales } : {}) };
}

/** cos/sin caches (maxSeq, paddedHeadDim/2) for GroupQueryAttention's rotary embedding. */
function ropeCaches(g: GraphBuilder, c: LlamaConfig): [string, string] {
  const halfP = paddedHeadDim(c) / 2;
  const cos = new Float32Array(c.maxSeqLen * halfP);
  const sin = new Float32Array(c.maxSeqLen * halfP);
  for (let p = 0; p < c.maxSeqLen; p++) {
    for (let i = 0; i < halfP; i++) {
      // padded pairs rotate by angle 0 (they are zero anyway)
      const freq = i < c.headDim / 2 ? 1 / Math.pow(c.ropeTheta, (2 * i) / c.headDim) : 0;
      cos[p * halfP + i] = Math.cos(p * freq);
      sin[p * halfP + i] = Math.sin(p * freq);
    }
  }
  return [g.f32('rope.cos', [c.maxSeqLen, halfP], cos), g.f32('rope.sin', [c.maxSeqLen, halfP], sin)];
}

function kvShape(c: LlamaConfig, seq: string): (number | string)[] {
  return [1, c.nKvHeads, seq, paddedHeadDim(c)];
}

/** Declare the per-step GQA inputs shared by every layer of a graph. */
function stepInputs(g: GraphBuilder): void {
  g.input(IO.seqlensK, DType.INT32, [1]);
  g.input(IO.totalLen, DType.INT32, []);
  g.input(IO.kvStart, DType.INT64, [1]);
  g.input(IO.kvEnd, DType.INT64, [1]);
}

/**
 * The KV cache lives in the engine's buffers, (1, kv_heads, capacity, kv_head_dim) per layer, fed
 * in without a copy; GroupQueryAttention reads the first seqlens_k+1-seq positions of it. A graph
 * returns only the rows it wrote, all layers packed in one tensor: copying whole caches out of
 * onnxruntime on every call cost more than the layers themselves at these sizes.
 */
function kvOutputs(g: GraphBuilder, c: LlamaConfig, rows: string[]): void {
  g.node('Concat', rows, [IO.newKv], { axis: 0 });
  g.output(IO.newKv, DType.FLOAT, [rows.length, c.nKvHeads, 'seq', paddedHeadDim(c)]);
}

/**
 * The residual stream between layers: either one summed tensor, or a pending sum `base + delta`
 * that the next norm adds itself (SkipSimplifiedLayerNormalization), saving one Add per layer.
 */
export type Residual = string | { base: string; delta: string };

/** norm(residual) · w, and the summed residual: one fused kernel when a sum is pending. */
function normResidual(g: GraphBuilder, r: Residual, weight: string, eps: number): [normed: string, sum: string] {
  if (typeof r === 'string') return [g.op('SimplifiedLayerNormalization', [r, weight], { axis: -1, epsilon: { float: eps } }), r];
  const [normed, , , sum] = g.node('SkipSimplifiedLayerNormalization', [r.delta, r.base, weight], 4, { epsilon: { float: eps } }, 'com.microsoft');
  return [normed!, sum!];
}

/** Materialize a pending residual sum. */
function sumResidual(g: GraphBuilder, r: Residual): string {
  return typeof r === 'string' ? r : g.op('Add', [r.base, r.delta]);
}

/**
 * Emit one decoder layer; returns the residual stream after it (with the FFN sum pending) and
 * appends the names of its new K and V rows to `kvRows`.
 */
function addLayer(g: GraphBuilder, c: LlamaConfig, l: number, w: LlamaLayerTensors, hIn: Residual, rope: [string, string], kvRows: string[]): Residual {
  const p = `layer${l}`;
  g.input(IO.pastKey(l), DType.FLOAT, kvShape(c, 'capacity'));
  g.input(IO.pastValue(l), DType.FLOAT, kvShape(c, 'capacity'));

  // attention block: pre-norm, packed QKV projection, GQA with rotary, output projection
  const [x, h] = normResidual(g, hIn, g.f32(`${p}.attn_norm`, [c.dim], vectorF32(w.attnNorm)), c.normEps);
  const wqkv = stackRows(`${p}.wqkv`, [padHeads(w.wq, c, c.nHeads, true), padHeads(w.wk, c, c.nKvHeads, true), padHeads(w.wv, c, c.nKvHeads, false)]);
  const qkv = linear(g, x, wqkv, `${p}.wqkv`);
  const [attnPadded] = g.node(
    'GroupQueryAttention',
    [qkv, '', '', IO.pastKey(l), IO.pastValue(l), IO.seqlensK, IO.totalLen, rope[0], rope[1]],
    [g.fresh(`${p}.attn`), IO.presentKey(l), IO.presentValue(l)],
    { num_heads: c.nHeads, kv_num_heads: c.nKvHeads, do_rotary: 1, rotary_interleaved: c.ropeLayout === 'adjacent' ? 1 : 0, scale: { float: 1 / Math.sqrt(c.headDim) } },
    'com.microsoft',
  );
  for (const present of [IO.presentKey(l), IO.presentValue(l)]) kvRows.push(g.op('Slice', [present, IO.kvStart, IO.kvEnd, g.i64('axis.seq', [2])]));
  const o = outputProjection(g, c, attnPadded!, w.wo, `${p}.wo`);

  // residual add fused with the FFN pre-norm: x2 = norm(h + o), h2 = h + o
  const [x2, , , h2] = g.node('SkipSimplifiedLayerNormalization', [o, h, g.f32(`${p}.ffn_norm`, [c.dim], vectorF32(w.ffnNorm))], 4, { epsilon: { float: c.normEps } }, 'com.microsoft');

  // SwiGLU feed-forward and the second residual
  const gate = linear(g, x2!, w.wGate, `${p}.w_gate`);
  const up = linear(g, x2!, w.wUp, `${p}.w_up`);
  const act = g.op('Mul', [g.op('Mul', [gate, g.op('Sigmoid', [gate])]), up]);
  return { base: h2!, delta: linear(g, act, w.wDown, `${p}.w_down`) };
}

/**
 * attn · Woᵀ where attn has padded heads: float Wo gets zero columns for the padding (no extra
 * kernel); block-quantized Wo keeps its blocks and a Gather drops the padded dims first.
 */
function outputProjection(g: GraphBuilder, c: LlamaConfig, attn: string, wo: SourceTensor, name: string): string {
  const hd = c.headDim;
  const hdp = paddedHeadDim(c);
  if (hdp === hd) return linear(g, attn, wo, name);
  if (wo.dtype === 'f32' || wo.dtype === 'f16') {
    const esz = wo.dtype === 'f32' ? 4 : 2;
    const rows = wo.shape[0]!;
    const data = new Uint8Array(rows * c.nHeads * hdp * esz);
    for (let r = 0; r < rows; r++) {
      for (let h = 0; h < c.nHeads; h++) {
        const from = (r * c.nHeads * hd + h * hd) * esz;
        data.set(wo.data.subarray(from, from + hd * esz), (r * c.nHeads * hdp + h * hdp) * esz);
      }
    }
    return linear(g, attn, { ...wo, shape: [rows, c.nHeads * hdp], data }, name);
  }
  const keep: number[] = [];
  for (let h = 0; h < c.nHeads; h++) for (let j = 0; j < hd; j++) keep.push(h * hdp + j);
  return linear(g, g.op('Gather', [attn, g.i64('attn.keep', keep)], { axis: 2 }), wo, name);
}

/** Final norm + LM head (tied → the token embedding): (1, S, dim) → logits (1, S, vocab). */
function headLogits(g: GraphBuilder, src: LlamaSource, h: Residual): string {
  const c = src.config;
  const [x] = normResidual(g, h, g.f32('output_norm', [c.dim], vectorF32(src.tensors.outputNorm)), c.normEps);
  return linear(g, x, src.tensors.output ?? src.tensors.tokEmbd, 'lm_head');
}

/** (1, S, dim) → (1, 1, dim): the last row, the token being decoded. */
function lastRow(g: GraphBuilder, x: string): string {
  return g.op('Slice', [x, g.i64('slice.last.start', [-1]), g.i64('slice.last.end', [2 ** 31]), g.i64('slice.axis1', [1])]);
}

/** A fitted affine lens: the layer's hidden state mapped towards the final hidden state. */
export interface AffineLens {
  /** (dim, dim) row-major [out, in] */
  weight: Float32Array;
  /** (dim) */
  bias: Float32Array;
}

/**
 * What a graph ends with:
 * - `none`: the summed hidden state of every row (`hidden_out`);
 * - `final`: the LM head's logits, for every row or only the last;
 * - `exit`: `hidden_out` plus an exit head on the last row — optional affine lens, final norm, LM
 *   head — giving `exit_logits` (1, 1, vocab) and its score: `exit_entropy` (1) = entropy / ln(vocab),
 *   or with `signal: 'margin'` `exit_top2` (1, 1, 2), the two largest logits (the engine scores them).
 */
export type GraphEnd = { kind: 'none' } | { kind: 'final'; rows: 'all' | 'last' } | { kind: 'exit'; lens?: AffineLens; name: string; signal?: ExitSignal };

function addEnd(g: GraphBuilder, src: LlamaSource, h: Residual, end: GraphEnd): void {
  const c = src.config;
  if (end.kind === 'final') {
    const x = end.rows === 'last' ? lastRow(g, sumResidual(g, h)) : h;
    g.alias(headLogits(g, src, x), IO.logits);
    g.output(IO.logits, DType.FLOAT, [1, end.rows === 'last' ? 1 : 'seq', c.vocabSize]);
    return;
  }
  const hs = g.alias(sumResidual(g, h), IO.hiddenOut);
  g.output(IO.hiddenOut, DType.FLOAT, [1, 'seq', c.dim]);
  if (end.kind === 'none') return;
  const logits = g.alias(headLogits(g, src, applyLens(g, c, lastRow(g, hs), end.lens, end.name)), IO.exitLogits);
  g.output(IO.exitLogits, DType.FLOAT, [1, 1, c.vocabSize]);
  if (end.signal === 'margin') {
    g.alias(topTwo(g, logits), IO.exitTop2);
    g.output(IO.exitTop2, DType.FLOAT, [1, 1, 2]);
    return;
  }
  g.op('Reshape', [normalizedEntropy(g, c, logits), g.i64('shape.one', [1])], {}, '', IO.exitEntropy);
  g.output(IO.exitEntropy, DType.FLOAT, [1]);
}

/** The two largest logits, descending: (1, S, V) → (1, S, 2). */
function topTwo(g: GraphBuilder, logits: string): string {
  return g.node('TopK', [logits, g.i64('topk.k', [2])], 2, { axis: -1, largest: 1, sorted: 1 })[0]!;
}

function applyLens(g: GraphBuilder, c: LlamaConfig, x: string, lens: AffineLens | undefined, name: string): string {
  if (!lens) return x;
  const w: SourceTensor = { name: `${name}.lens`, dtype: 'f32', shape: [c.dim, c.dim], data: new Uint8Array(lens.weight.buffer, lens.weight.byteOffset, lens.weight.byteLength) };
  return g.op('Add', [linear(g, x, w, `${name}.lens`), g.f32(`${name}.lens.bias`, [c.dim], lens.bias)]);
}

/** -Σ p·log p / ln V over the last axis: (1, S, V) → (1, S). */
function normalizedEntropy(g: GraphBuilder, c: LlamaConfig, logits: string): string {
  const logp = g.op('LogSoftmax', [logits], { axis: -1 });
  const sum = g.op('ReduceSum', [g.op('Mul', [g.op('Exp', [logp]), logp]), g.i64('reduce.last', [-1])], { keepdims: 0 });
  return g.op('Mul', [sum, g.f32('entropy.scale', [1], Float32Array.of(-1 / Math.log(c.vocabSize)))]);
}

/**
 * Calibration probe: an exit head (optional lens, final norm, LM head) on every row of a hidden
 * state: `hidden` (1, S, dim) → `exit_entropy` (1, S) normalized, `exit_top2` (1, S, 2) the two
 * largest logits, `exit_token` (1, S) argmax.
 */
export function exitProbeGraph(src: LlamaSource, lens?: AffineLens): GraphBuilder {
  const c = src.config;
  const g = new GraphBuilder('exit_probe');
  g.input(IO.hidden, DType.FLOAT, [1, 'seq', c.dim]);
  const logits = headLogits(g, src, applyLens(g, c, IO.hidden, lens, 'probe'));
  g.node('Identity', [normalizedEntropy(g, c, logits)], [IO.exitEntropy]);
  g.output(IO.exitEntropy, DType.FLOAT, [1, 'seq']);
  g.node('Identity', [topTwo(g, logits)], [IO.exitTop2]);
  g.output(IO.exitTop2, DType.FLOAT, [1, 'seq', 2]);
  g.op('ArgMax', [logits], { axis: -1, keepdims: 0 }, '', 'exit_token');
  g.output('exit_token', DType.INT64, [1, 'seq']);
  return g;
}

export function embedGraph(src: LlamaSource): GraphBuilder {
  const g = new GraphBuilder('embed');
  g.input(IO.inputIds, DType.INT64, [1, 'seq']);
  g.node('Identity', [embedding(g, IO.inputIds, src.tensors.tokEmbd, 'tok_embd')], [IO.hiddenOut]);
  g.output(IO.hiddenOut, DType.FLOAT, [1, 'seq', src.config.dim]);
  return g;
}

/**
 * Layers [from, to) in one graph. The first segment starts from token ids (embedding inside);
 * later ones from a hidden state. `end` says what the graph returns.
 */
/**
 * With `calm`, every row but the last is a pending position whose K/V come from its exited state
 * (CALM state propagation): those rows re-enter every layer unchanged, only the last row (the
 * token being decoded) evolves. Without it, all rows evolve through the layers (exact K/V).
 */
export function segmentGraph(src: LlamaSource, from: number, to: number, end: GraphEnd, name = `seg${from}_${to}`, calm = false): GraphBuilder {
  const c = src.config;
  if (!(0 <= from && from < to && to <= c.nLayers)) throw new SedacError('E_INTERNAL', `bad segment [${from}, ${to}) of ${c.nLayers} layers`);
  const g = new GraphBuilder(name);
  let h: Residual;
  if (from === 0) {
    g.input(IO.inputIds, DType.INT64, [1, 'seq']);
    h = embedding(g, IO.inputIds, src.tensors.tokEmbd, 'tok_embd');
  } else {
    h = g.input(IO.hidden, DType.FLOAT, [1, 'seq', c.dim]);
  }
  stepInputs(g);
  const rope = ropeCaches(g, c);
  const kvRows: string[] = [];
  const pending = calm && from > 0 ? g.op('Slice', [IO.hidden, g.i64('slice.first', [0]), g.i64('slice.last.start', [-1]), g.i64('slice.axis1', [1])]) : undefined;
  for (let l = from; l < to; l++) {
    h = addLayer(g, c, l, src.tensors.layers[l]!, h, rope, kvRows);
    // CALM: the pending rows feed the next layer their exited state again
    if (pending && l + 1 < to) h = g.op('Concat', [pending, lastRow(g, sumResidual(g, h))], { axis: 1 });
  }
  addEnd(g, src, h, end);
  kvOutputs(g, c, kvRows);
  return g;
}

export function layerGraph(src: LlamaSource, l: number): GraphBuilder {
  const g = new GraphBuilder(`layer${l}`);
  g.input(IO.hidden, DType.FLOAT, [1, 'seq', src.config.dim]);
  stepInputs(g);
  const kvRows: string[] = [];
  addEnd(g, src, addLayer(g, src.config, l, src.tensors.layers[l]!, IO.hidden, ropeCaches(g, src.config), kvRows), { kind: 'none' });
  kvOutputs(g, src.config, kvRows);
  return g;
}

/** Final norm + LM head on a hidden state, every row. */
export function headGraph(src: LlamaSource): GraphBuilder {
  const g = new GraphBuilder('head');
  g.input(IO.hidden, DType.FLOAT, [1, 'seq', src.config.dim]);
  addEnd(g, src, IO.hidden, { kind: 'final', rows: 'all' });
  return g;
}

/** Embedding, every layer and the head in one graph: no exit possible, fewest calls. */
export function fullGraph(src: LlamaSource): GraphBuilder {
  return segmentGraph(src, 0, src.config.nLayers, { kind: 'final', rows: 'all' }, 'full');
}
