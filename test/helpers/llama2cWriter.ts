/**
 * Writes llama2.c checkpoints (v0 legacy, v1 fp32, v2 int8 groups) and tokenizer.bin from an f32
 * LlamaSource, following karpathy/llama2.c export.py (legacy_export, version1_export,
 * version2_export with interleaved int8 values + fp32 scales per tensor) and tokenizer.py export.
 * No llama2.c checkpoint is shared, so the reader is tested on these.
 */
import { writeFileSync } from 'node:fs';
import type { LlamaSource, SentencePieceVocab } from '../../agent/convert/source.js';
import { concatBytes, f32Bytes, f32Values } from './fixtures.js';

export interface Llama2cWriteOptions {
  version: 0 | 1 | 2;
  /** write an unshared classifier with these values (vocab × dim) */
  untiedOutput?: Float32Array;
  /** v2: starting group size (export.py halves it until it divides dim); default 64 */
  groupSize?: number;
}

function ints(values: number[]): Uint8Array {
  const b = new Uint8Array(values.length * 4);
  const dv = new DataView(b.buffer);
  values.forEach((v, i) => dv.setInt32(i * 4, v, true));
  return b;
}

/** torch.round: round half to even */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** export.py quantize_q80: symmetric int8 per group of `gs` consecutive values, scale = max|w|/127. */
export function quantizeQ80(w: Float32Array, gs: number): { q: Int8Array; s: Float32Array } {
  const q = new Int8Array(w.length);
  const s = new Float32Array(w.length / gs);
  for (let g = 0; g < s.length; g++) {
    let max = 0;
    for (let j = 0; j < gs; j++) max = Math.max(max, Math.abs(w[g * gs + j]!));
    const scale = Math.fround(max / 127);
    s[g] = scale;
    for (let j = 0; j < gs; j++) q[g * gs + j] = scale === 0 ? 0 : roundHalfEven(Math.fround(w[g * gs + j]! / scale));
  }
  return { q, s };
}

/** llama2.c model.py precompute_freqs_cis: cos / sin tables (seq_len × head_dim/2). */
function freqTables(headDim: number, seqLen: number): Float32Array[] {
  const cos = new Float32Array(seqLen * (headDim / 2));
  const sin = new Float32Array(seqLen * (headDim / 2));
  for (let t = 0; t < seqLen; t++) {
    for (let i = 0; i < headDim / 2; i++) {
      const f = 1 / Math.pow(10000, (2 * i) / headDim);
      cos[t * (headDim / 2) + i] = Math.cos(t * f);
      sin[t * (headDim / 2) + i] = Math.sin(t * f);
    }
  }
  return [cos, sin];
}

/** Bytes of a llama2.c checkpoint of `src` (an f32 source with headDim = dim / nHeads). */
export function llama2cBytes(src: LlamaSource, opts: Llama2cWriteOptions): Uint8Array {
  const c = src.config;
  const t = src.tensors;
  const L = t.layers;
  const shared = opts.untiedOutput === undefined;
  const vals = (x: Parameters<typeof f32Values>[0]): Float32Array => f32Values(x);
  const header7 = [c.dim, c.ffnDim, c.nLayers, c.nHeads, c.nKvHeads, c.vocabSize, c.maxSeqLen];
  const out: Uint8Array[] = [];
  const fp = (a: Float32Array): void => {
    out.push(f32Bytes(a));
  };

  if (opts.version === 0) {
    if (!shared) header7[5] = -c.vocabSize;
    out.push(ints(header7));
    fp(vals(t.tokEmbd));
    for (const l of L) fp(vals(l.attnNorm));
    for (const l of L) fp(vals(l.wq));
    for (const l of L) fp(vals(l.wk));
    for (const l of L) fp(vals(l.wv));
    for (const l of L) fp(vals(l.wo));
    for (const l of L) fp(vals(l.ffnNorm));
    for (const l of L) fp(vals(l.wGate));
    for (const l of L) fp(vals(l.wDown));
    for (const l of L) fp(vals(l.wUp));
    fp(vals(t.outputNorm));
    for (const table of freqTables(c.dim / c.nHeads, c.maxSeqLen)) fp(table);
    if (!shared) fp(opts.untiedOutput!);
    return concatBytes(out);
  }

  const header = new Uint8Array(256);
  const hv = new DataView(header.buffer);
  hv.setUint32(0, 0x616b3432, true);
  hv.setInt32(4, opts.version, true);
  header.set(ints(header7), 8);
  header[36] = shared ? 1 : 0;
  let gs = opts.groupSize ?? 64;
  if (opts.version === 2) {
    while (c.dim % gs !== 0) gs = Math.floor(gs / 2);
    hv.setInt32(37, gs, true);
  }
  out.push(header);
  const mats = [
    vals(t.tokEmbd),
    ...L.map((l) => vals(l.wq)),
    ...L.map((l) => vals(l.wk)),
    ...L.map((l) => vals(l.wv)),
    ...L.map((l) => vals(l.wo)),
    ...L.map((l) => vals(l.wGate)),
    ...L.map((l) => vals(l.wDown)),
    ...L.map((l) => vals(l.wUp)),
    ...(shared ? [] : [opts.untiedOutput!]),
  ];
  for (const l of L) fp(vals(l.attnNorm));
  for (const l of L) fp(vals(l.ffnNorm));
  fp(vals(t.outputNorm));
  if (opts.version === 1) {
    for (const m of mats) fp(m);
  } else {
    for (const m of mats) {
      const { q, s } = quantizeQ80(m, gs);
      out.push(new Uint8Array(q.buffer));
      fp(s);
    }
  }
  return concatBytes(out);
}

export function writeLlama2c(path: string, src: LlamaSource, opts: Llama2cWriteOptions): void {
  writeFileSync(path, llama2cBytes(src, opts));
}

/** llama2.c tokenizer.py export: '▁' → ' ', BOS/EOS as "\n<s>\n" / "\n</s>\n", byte pieces kept. */
export function llama2cTokenizerBytes(v: SentencePieceVocab): Uint8Array {
  const enc = new TextEncoder();
  const tokens = v.pieces.map((p, i) => enc.encode(i === v.bos ? '\n<s>\n' : i === v.eos ? '\n</s>\n' : p.replaceAll('\u2581', ' ')));
  const maxLen = Math.max(...tokens.map((b) => b.length));
  const parts: Uint8Array[] = [ints([maxLen])];
  tokens.forEach((b, i) => {
    const head = new Uint8Array(8);
    const dv = new DataView(head.buffer);
    dv.setFloat32(0, v.scores[i]!, true);
    dv.setInt32(4, b.length, true);
    parts.push(head, b);
  });
  return concatBytes(parts);
}

export function writeLlama2cTokenizer(path: string, v: SentencePieceVocab): void {
  writeFileSync(path, llama2cTokenizerBytes(v));
}
