/**
 * A plain, slow, obviously-correct forward pass for a Llama decoder, written from the architecture
 * (the shape of llama2.c `run.c`): the yardstick the ONNX engine is compared against. It shares no
 * code with the converter or the engine beyond the LlamaSource types; dequantization is its own
 * (dequantRef.ts). Activations and every dot product are Float64; weights are f32 as dequantized.
 * With `int8Activations`, a quantized matrix (Q8_0, Q4_0, llama2.c groups within rows) multiplies
 * int8 activations, as llama.cpp's quantized dot products and ORT's MatMulNBits accuracy_level 4 do:
 * its input is rounded to int8 per block of the weight's block, scale max|x|/127, to nearest.
 *
 * Per token at position `pos`:
 *   x = tok_embd[token]
 *   for each layer:  x += Wo · attn(rope(Wq·rms(x)), rope(Wk·rms(x)), Wv·rms(x))   (causal, GQA, KV cache)
 *                    x += Wdown · (silu(Wgate·rms(x)) * (Wup·rms(x)))
 *   logits = head · rms_final(x)          head = output, or tok_embd when tied
 */
import type { LlamaConfig, LlamaSource, SourceTensor } from '../../agent/convert/source.js';
import { dequantizeRef } from './dequantRef.js';

/** A weight matrix as f32, row-major [out, in], and how its input is rounded. */
interface RefMatrix {
  w: Float32Array;
  /** values per int8 block of the input; 0 for an f32 input (f32 / f16 weights) */
  actBlock: number;
}

/** One layer's weights. */
interface RefLayerWeights {
  attnNorm: Float32Array; // (dim)
  wq: RefMatrix; // (nHeads*headDim, dim)
  wk: RefMatrix; // (nKvHeads*headDim, dim)
  wv: RefMatrix; // (nKvHeads*headDim, dim)
  wo: RefMatrix; // (dim, nHeads*headDim)
  ffnNorm: Float32Array; // (dim)
  wGate: RefMatrix; // (ffnDim, dim)
  wUp: RefMatrix; // (ffnDim, dim)
  wDown: RefMatrix; // (dim, ffnDim)
}

/** All weights, dequantized once per source. */
interface RefWeights {
  tokEmbd: Float32Array; // (vocab, dim)
  layers: RefLayerWeights[];
  outputNorm: Float32Array; // (dim)
  head: RefMatrix; // (vocab, dim): output, or tokEmbd when tied
}

const weightCache = new WeakMap<LlamaSource, RefWeights>();

function load(t: SourceTensor | undefined, what: string, shape: number[]): Float32Array {
  if (!t) throw new Error(`reference: tensor ${what} is missing`);
  if (t.shape.length !== shape.length || t.shape.some((s, i) => s !== shape[i])) {
    throw new Error(`reference: tensor ${what} (${t.name}) has shape [${t.shape.join(', ')}], expected [${shape.join(', ')}]`);
  }
  return dequantizeRef(t);
}

/** Block of the int8 input of a quantized matrix: its weight block (groups straddling rows stay f32). */
function activationBlock(t: SourceTensor): number {
  if (t.dtype === 'q8_0' || t.dtype === 'q4_0') return 32;
  if (t.dtype === 'q8_g' && t.groupSize && (t.shape[1] ?? 0) % t.groupSize === 0) return t.groupSize;
  return 0;
}

function loadMatrix(t: SourceTensor | undefined, what: string, shape: number[]): RefMatrix {
  return { w: load(t, what, shape), actBlock: t ? activationBlock(t) : 0 };
}

function loadWeights(src: LlamaSource): RefWeights {
  const cached = weightCache.get(src);
  if (cached) return cached;
  const c = src.config;
  const t = src.tensors;
  if (t.layers.length !== c.nLayers) throw new Error(`reference: ${t.layers.length} layers in tensors, config says ${c.nLayers}`);
  const qDim = c.nHeads * c.headDim;
  const kvDim = c.nKvHeads * c.headDim;
  const tokEmbd = load(t.tokEmbd, 'tokEmbd', [c.vocabSize, c.dim]);
  const w: RefWeights = {
    tokEmbd,
    layers: t.layers.map((l, i) => ({
      attnNorm: load(l.attnNorm, `layers[${i}].attnNorm`, [c.dim]),
      wq: loadMatrix(l.wq, `layers[${i}].wq`, [qDim, c.dim]),
      wk: loadMatrix(l.wk, `layers[${i}].wk`, [kvDim, c.dim]),
      wv: loadMatrix(l.wv, `layers[${i}].wv`, [kvDim, c.dim]),
      wo: loadMatrix(l.wo, `layers[${i}].wo`, [c.dim, qDim]),
      ffnNorm: load(l.ffnNorm, `layers[${i}].ffnNorm`, [c.dim]),
      wGate: loadMatrix(l.wGate, `layers[${i}].wGate`, [c.ffnDim, c.dim]),
      wUp: loadMatrix(l.wUp, `layers[${i}].wUp`, [c.ffnDim, c.dim]),
      wDown: loadMatrix(l.wDown, `layers[${i}].wDown`, [c.dim, c.ffnDim]),
    })),
    outputNorm: load(t.outputNorm, 'outputNorm', [c.dim]),
    head: c.tiedEmbeddings || !t.output ? { w: tokEmbd, actBlock: activationBlock(t.tokEmbd) } : loadMatrix(t.output, 'output', [c.vocabSize, c.dim]),
  };
  weightCache.set(src, w);
  return w;
}

/** out = rms_norm(x) * w, i.e. x / sqrt(mean(x²) + eps) * w */
function rmsNorm(out: Float64Array, x: Float64Array, w: Float32Array, eps: number): void {
  let ss = 0;
  for (let i = 0; i < x.length; i++) ss += (x[i] as number) * (x[i] as number);
  const inv = 1 / Math.sqrt(ss / x.length + eps);
  for (let i = 0; i < x.length; i++) out[i] = (x[i] as number) * inv * (w[i] as number);
}

/** x (n) rounded to int8 per block: q = round(x / s), s = max|x| / 127 over the block; returns q·s. */
export function int8Blocks(x: Float64Array, n: number, block: number): Float64Array {
  const out = new Float64Array(n);
  for (let lo = 0; lo < n; lo += block) {
    const hi = Math.min(n, lo + block);
    let amax = 0;
    for (let j = lo; j < hi; j++) amax = Math.max(amax, Math.abs(x[j] as number));
    const s = amax / 127;
    for (let j = lo; j < hi; j++) out[j] = s === 0 ? 0 : roundHalfEven((x[j] as number) / s) * s;
  }
  return out;
}

function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** out (d) = W (d, n) · x (n), float64 accumulation */
function matmul(out: Float64Array, x: Float64Array, w: Float32Array, n: number, d: number): void {
  for (let i = 0; i < d; i++) {
    let s = 0;
    const row = i * n;
    for (let j = 0; j < n; j++) s += (w[row + j] as number) * (x[j] as number);
    out[i] = s;
  }
}

/** Rotate every head of `v` (nHeads * headDim) in place for position `pos`. */
function rope(v: Float64Array, nHeads: number, c: LlamaConfig, cos: Float64Array, sin: Float64Array): void {
  const hd = c.headDim;
  const half = hd / 2;
  for (let h = 0; h < nHeads; h++) {
    const o = h * hd;
    for (let i = 0; i < half; i++) {
      // frequency index i pairs (2i, 2i+1) in the Meta/GGUF layout, (i, i+half) in the HF layout
      const a = c.ropeLayout === 'adjacent' ? o + 2 * i : o + i;
      const b = c.ropeLayout === 'adjacent' ? o + 2 * i + 1 : o + i + half;
      const x0 = v[a] as number;
      const x1 = v[b] as number;
      v[a] = x0 * (cos[i] as number) - x1 * (sin[i] as number);
      v[b] = x0 * (sin[i] as number) + x1 * (cos[i] as number);
    }
  }
}

export interface ReferenceOptions {
  /** round the input of every quantized matrix to int8 blocks (see the header); default false */
  int8Activations?: boolean;
}

/** Called after each decoder layer with the residual stream (dim); do not keep the array. */
export type LayerHook = (layer: number, x: Float64Array) => void;

/**
 * A running decoder: weights, KV cache and scratch buffers. `forward` must be called with
 * positions 0, 1, 2, ... in order (or after `reset()`).
 */
export class LlamaReference {
  readonly config: LlamaConfig;
  private readonly w: RefWeights;
  // run state (run.c RunState)
  private readonly x: Float64Array; // (dim) residual stream
  private readonly xb: Float64Array; // (dim) normed input / attention output before Wo
  private readonly xb2: Float64Array; // (dim) projection output
  private readonly q: Float64Array; // (nHeads*headDim)
  private readonly hb: Float64Array; // (ffnDim) gate
  private readonly hb2: Float64Array; // (ffnDim) up
  private readonly att: Float64Array; // (maxSeqLen) attention scores of one head
  private readonly keyCache: Float64Array[][] = []; // [layer][pos] (nKvHeads*headDim)
  private readonly valueCache: Float64Array[][] = []; // [layer][pos] (nKvHeads*headDim)
  private nextPos = 0;
  private readonly int8Activations: boolean;

  constructor(src: LlamaSource, opts: ReferenceOptions = {}) {
    const c = src.config;
    if (c.headDim % 2 !== 0) throw new Error(`reference: head dim ${c.headDim} is odd`);
    if (c.nHeads % c.nKvHeads !== 0) throw new Error(`reference: ${c.nHeads} heads not a multiple of ${c.nKvHeads} kv heads`);
    this.config = c;
    this.w = loadWeights(src);
    this.int8Activations = opts.int8Activations ?? false;
    this.x = new Float64Array(c.dim);
    this.xb = new Float64Array(Math.max(c.dim, c.nHeads * c.headDim));
    this.xb2 = new Float64Array(c.dim);
    this.q = new Float64Array(c.nHeads * c.headDim);
    this.hb = new Float64Array(c.ffnDim);
    this.hb2 = new Float64Array(c.ffnDim);
    this.att = new Float64Array(c.maxSeqLen);
    this.reset();
  }

  /** Forget the KV cache; the next forward is position 0. */
  reset(): void {
    this.keyCache.length = 0;
    this.valueCache.length = 0;
    for (let l = 0; l < this.config.nLayers; l++) {
      this.keyCache.push([]);
      this.valueCache.push([]);
    }
    this.nextPos = 0;
  }

  /** Feed one token at the next position; returns the logits (vocab) for the token after it. */
  forward(token: number, onLayer?: LayerHook): Float32Array {
    const c = this.config;
    const w = this.w;
    const pos = this.nextPos;
    if (pos >= c.maxSeqLen) throw new Error(`reference: position ${pos} is past the model's context ${c.maxSeqLen}`);
    if (!Number.isInteger(token) || token < 0 || token >= c.vocabSize) throw new Error(`reference: token ${token} outside vocab ${c.vocabSize}`);
    const { x, xb, xb2, q, hb, hb2, att } = this;
    const hd = c.headDim;
    const kvDim = c.nKvHeads * hd;
    const qDim = c.nHeads * hd;
    const group = c.nHeads / c.nKvHeads;

    // RoPE angles for this position: theta^(-2i/headDim) * pos
    const cos = new Float64Array(hd / 2);
    const sin = new Float64Array(hd / 2);
    for (let i = 0; i < hd / 2; i++) {
      const angle = pos * Math.pow(c.ropeTheta, (-2 * i) / hd);
      cos[i] = Math.cos(angle);
      sin[i] = Math.sin(angle);
    }

    // token embedding
    for (let i = 0; i < c.dim; i++) x[i] = w.tokEmbd[token * c.dim + i] as number;

    for (let l = 0; l < c.nLayers; l++) {
      const lw = w.layers[l] as RefLayerWeights;

      // attention: pre-norm, q/k/v projections, RoPE on q and k, append k/v to the cache
      rmsNorm(xb, x, lw.attnNorm, c.normEps);
      const k = new Float64Array(kvDim);
      const v = new Float64Array(kvDim);
      this.project(q, xb, lw.wq, c.dim, qDim);
      this.project(k, xb, lw.wk, c.dim, kvDim);
      this.project(v, xb, lw.wv, c.dim, kvDim);
      rope(q, c.nHeads, c, cos, sin);
      rope(k, c.nKvHeads, c, cos, sin);
      const keys = this.keyCache[l] as Float64Array[];
      const values = this.valueCache[l] as Float64Array[];
      keys.push(k);
      values.push(v);

      // per head: causal softmax(q·k / sqrt(hd)) over positions 0..pos, weighted sum of v (GQA)
      const out = xb; // reuse: attention output (nHeads*headDim)
      const scale = 1 / Math.sqrt(hd);
      for (let h = 0; h < c.nHeads; h++) {
        const kvOff = Math.floor(h / group) * hd;
        let max = -Infinity;
        for (let t = 0; t <= pos; t++) {
          const kt = keys[t] as Float64Array;
          let s = 0;
          for (let i = 0; i < hd; i++) s += (q[h * hd + i] as number) * (kt[kvOff + i] as number);
          att[t] = s * scale;
          if ((att[t] as number) > max) max = att[t] as number;
        }
        let sum = 0;
        for (let t = 0; t <= pos; t++) {
          att[t] = Math.exp((att[t] as number) - max);
          sum += att[t] as number;
        }
        for (let i = 0; i < hd; i++) out[h * hd + i] = 0;
        for (let t = 0; t <= pos; t++) {
          const a = (att[t] as number) / sum;
          const vt = values[t] as Float64Array;
          for (let i = 0; i < hd; i++) out[h * hd + i] = (out[h * hd + i] as number) + a * (vt[kvOff + i] as number);
        }
      }
      // output projection and residual
      this.project(xb2, out.subarray(0, qDim), lw.wo, qDim, c.dim);
      for (let i = 0; i < c.dim; i++) x[i] = (x[i] as number) + (xb2[i] as number);

      // SwiGLU FFN: down(silu(gate(x)) * up(x)), pre-norm, residual
      rmsNorm(xb, x, lw.ffnNorm, c.normEps);
      this.project(hb, xb.subarray(0, c.dim), lw.wGate, c.dim, c.ffnDim);
      this.project(hb2, xb.subarray(0, c.dim), lw.wUp, c.dim, c.ffnDim);
      for (let i = 0; i < c.ffnDim; i++) {
        const g = hb[i] as number;
        hb[i] = (g / (1 + Math.exp(-g))) * (hb2[i] as number);
      }
      this.project(xb2, hb, lw.wDown, c.ffnDim, c.dim);
      for (let i = 0; i < c.dim; i++) x[i] = (x[i] as number) + (xb2[i] as number);

      onLayer?.(l, x);
    }

    this.nextPos = pos + 1;
    return this.head(x);
  }

  /** out (d) = W (d, n) · x (n), x first rounded to int8 blocks when modelling int8 activations */
  private project(out: Float64Array, x: Float64Array, m: RefMatrix, n: number, d: number): void {
    matmul(out, this.int8Activations && m.actBlock ? int8Blocks(x, n, m.actBlock) : x, m.w, n, d);
  }

  /** Final RMSNorm + LM head applied to a residual stream (dim): the full model's exit, or a logit lens. */
  head(hidden: Float64Array): Float32Array {
    const c = this.config;
    const normed = new Float64Array(c.dim);
    rmsNorm(normed, hidden, this.w.outputNorm, c.normEps);
    const logits = new Float64Array(c.vocabSize);
    this.project(logits, normed, this.w.head, c.dim, c.vocabSize);
    return Float32Array.from(logits);
  }
}

/** Logits after every position of `tokens` (teacher forcing): result[i] predicts tokens[i+1]. */
export function referenceLogits(src: LlamaSource, tokens: readonly number[], opts: ReferenceOptions = {}): Float32Array[] {
  const m = new LlamaReference(src, opts);
  return tokens.map((t) => m.forward(t));
}

/** Index of the largest value; the lowest index wins a tie. */
export function argmax(v: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < v.length; i++) if ((v[i] as number) > (v[best] as number)) best = i;
  return best;
}

/**
 * Greedy decoding: feed the prompt, then append argmax tokens until `maxNew` were generated or
 * `eos` was generated. Returns the generated ids only, including the final `eos` when it was hit
 * (the convention of the models' README goldens).
 */
export function referenceGreedy(src: LlamaSource, promptTokens: readonly number[], maxNew: number, eos?: number): number[] {
  if (promptTokens.length === 0) throw new Error('reference: empty prompt');
  const m = new LlamaReference(src);
  let logits: Float32Array = new Float32Array(0);
  for (const t of promptTokens) logits = m.forward(t);
  const out: number[] = [];
  while (out.length < maxNew) {
    const next = argmax(logits);
    out.push(next);
    if (next === eos || out.length >= maxNew) break;
    logits = m.forward(next);
  }
  return out;
}
