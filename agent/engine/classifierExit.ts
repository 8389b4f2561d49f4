/**
 * Exit heads and the ladder of a classifier bundle, as the engine uses them.
 *
 * At exit point k — after k encoder layers, k = 0 (the embeddings) … L-1 — a small head turns the
 * hidden state into a class distribution. Its input is the [CLS] row and the masked mean of all token rows, (2·d);
 * it is linear, or one tanh hidden layer then linear. It runs in JavaScript on the hidden state the
 * layer session already returned: no extra session call (~10 µs each), and ~1–15 µs of arithmetic.
 * The exit signal is the normalized entropy H(p) / ln C of the head's distribution.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SedacError } from '../errors.js';
import { verifyFile, type FileEntry } from './bundle.js';

export interface ExitHead {
  /** input features (2·d) */
  inDim: number;
  /** tanh hidden units; 0 for a linear head */
  hidden: number;
  classes: number;
  /** (hidden, inDim) when hidden > 0 */
  w1: Float32Array;
  b1: Float32Array;
  /** (classes, hidden || inDim) */
  w2: Float32Array;
  b2: Float32Array;
}

/** What manifest.extras.exit_heads records. */
export interface ExitHeadsEntry extends FileEntry {
  features: 'cls_mean';
  in_dim: number;
  hidden: number;
  classes: number;
  /** one head per exit point k = 0 … nLayers-1 (after k encoder layers) */
  layers: number;
  /** how they were trained: texts, epochs, final KL on the training texts per layer */
  training: Record<string, unknown>;
}

export interface LadderLevel {
  name: string;
  /** required agreement with the full model's label (1 for exact) */
  target: number;
  /** exit at point k (after k layers) when head k's normalized entropy ≤ thresholds[k]; -1 never. null = full depth */
  thresholds: number[] | null;
  /** measured on the calibration part */
  calibration?: { n: number; agreement: number; mean_layers: number; upper_disagreement: number };
  /** measured on the held-out part */
  holdout?: { n: number; agreement: number; mean_layers: number; lower_agreement: number; ok: boolean };
}

export interface Ladder {
  signal: 'normalized_entropy';
  /** confidence of the guarantee, e.g. 0.95 */
  confidence: number;
  levels: LadderLevel[];
  data: { file: string; sha256: string; heads: number; family: number; calibration: number; holdout: number };
}

/** Parameter count of one head, in floats. */
export function headSize(inDim: number, hidden: number, classes: number): number {
  return hidden > 0 ? hidden * inDim + hidden + classes * hidden + classes : classes * inDim + classes;
}

/** Heads → one little-endian float32 blob, layer after layer: w1 b1 w2 b2. */
export function packHeads(heads: ExitHead[]): Uint8Array {
  const parts = heads.flatMap((h) => (h.hidden > 0 ? [h.w1, h.b1, h.w2, h.b2] : [h.w2, h.b2]));
  const total = parts.reduce((n, p) => n + p.length, 0);
  const out = new Float32Array(total);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return new Uint8Array(out.buffer);
}

export function unpackHeads(bytes: Uint8Array, e: Pick<ExitHeadsEntry, 'in_dim' | 'hidden' | 'classes' | 'layers'>): ExitHead[] {
  const per = headSize(e.in_dim, e.hidden, e.classes);
  if (bytes.byteLength !== per * e.layers * 4) throw new SedacError('E_MODEL_FORMAT', `exit heads: ${bytes.byteLength} bytes, expected ${per * e.layers * 4}`);
  const all = new Float32Array(bytes.slice().buffer);
  const heads: ExitHead[] = [];
  let off = 0;
  const take = (n: number): Float32Array => all.subarray(off, (off += n));
  for (let l = 0; l < e.layers; l++) {
    const w1 = e.hidden > 0 ? take(e.hidden * e.in_dim) : new Float32Array(0);
    const b1 = e.hidden > 0 ? take(e.hidden) : new Float32Array(0);
    const w2 = take(e.classes * (e.hidden || e.in_dim));
    const b2 = take(e.classes);
    heads.push({ inDim: e.in_dim, hidden: e.hidden, classes: e.classes, w1, b1, w2, b2 });
  }
  return heads;
}

/** Read and verify the exit heads a manifest lists. */
export function loadHeads(dir: string, e: ExitHeadsEntry): ExitHead[] {
  verifyFile(dir, e);
  return unpackHeads(readFileSync(join(dir, e.file)), e);
}

/**
 * Features of one sequence of a (batch, seq, d) hidden state: [CLS row ; mean of rows with mask 1].
 * `out` has length 2·d.
 */
export function cutFeatures(hidden: Float32Array, b: number, seq: number, d: number, mask: Int32Array, out: Float32Array): Float32Array {
  if (acc.length < d) acc = new Float64Array(d);
  acc.fill(0, 0, d);
  const base = b * seq * d;
  let n = 0;
  for (let t = 0; t < seq; t++) {
    if (mask[b * seq + t] !== 1) continue;
    n++;
    const row = base + t * d;
    for (let j = 0; j < d; j++) acc[j] = acc[j]! + hidden[row + j]!;
  }
  const inv = 1 / Math.max(n, 1);
  for (let j = 0; j < d; j++) {
    out[j] = hidden[base + j]!;
    out[d + j] = acc[j]! * inv;
  }
  return out;
}

/** cutFeatures' accumulator (float64, reused: the engine is single-threaded) */
let acc = new Float64Array(0);

/** Head forward: features → probabilities (written to `probs`, length classes). */
export function headProbs(h: ExitHead, x: Float32Array, probs: Float64Array, scratch?: Float64Array): Float64Array {
  let inp: ArrayLike<number> = x;
  let n = h.inDim;
  if (h.hidden > 0) {
    const z = scratch && scratch.length >= h.hidden ? scratch : new Float64Array(h.hidden);
    for (let i = 0; i < h.hidden; i++) {
      let s = h.b1[i]!;
      const row = i * n;
      for (let j = 0; j < n; j++) s += h.w1[row + j]! * x[j]!;
      z[i] = Math.tanh(s);
    }
    inp = z;
    n = h.hidden;
  }
  for (let c = 0; c < h.classes; c++) {
    let s = h.b2[c]!;
    const row = c * n;
    for (let j = 0; j < n; j++) s += h.w2[row + j]! * inp[j]!;
    probs[c] = s;
  }
  return softmaxInPlace(probs);
}

export function softmaxInPlace(z: Float64Array | number[]): Float64Array {
  const p = z instanceof Float64Array ? z : Float64Array.from(z);
  let m = -Infinity;
  for (let i = 0; i < p.length; i++) m = Math.max(m, p[i]!);
  let s = 0;
  for (let i = 0; i < p.length; i++) s += p[i] = Math.exp(p[i]! - m);
  for (let i = 0; i < p.length; i++) p[i] = p[i]! / s;
  return p;
}

/** H(p) / ln C, in [0, 1]. */
export function normalizedEntropy(p: ArrayLike<number>): number {
  let h = 0;
  for (let i = 0; i < p.length; i++) {
    const x = p[i]!;
    if (x > 0) h -= x * Math.log(x);
  }
  return p.length > 1 ? h / Math.log(p.length) : 0;
}

export function argmax(p: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < p.length; i++) if (p[i]! > p[best]!) best = i;
  return best;
}
