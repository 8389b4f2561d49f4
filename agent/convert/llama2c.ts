/**
 * llama2.c checkpoints (karpathy/llama2.c export.py) and their `tokenizer.bin`.
 *
 * - v0 (legacy): 7 int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len);
 *   a negative vocab_size means the classifier is not shared. fp32 weights in run.c order:
 *   tok_embeddings, attention_norm*, wq*, wk*, wv*, wo*, ffn_norm*, w1*, w2*, w3*, norm, then two
 *   freq_cis tables (seq_len × head_size/2 each, skipped), then wcls when unshared.
 * - v1: 256-byte header: u32 magic "ak42" (0x616b3432), i32 version, the 7 int32, u8
 *   shared_classifier; fp32 weights: attention_norm*, ffn_norm*, norm, tok_embeddings, wq*, wk*,
 *   wv*, wo*, w1*, w2*, w3*, output when unshared.
 * - v2: as v1 plus i32 group_size at byte 37; the norms in fp32 first (attention_norm*,
 *   ffn_norm*, norm), then each of tok_embeddings, wq*, wk*, wv*, wo*, w1*, w2*, w3*, [output] as
 *   int8 values immediately followed by its fp32 scales (one per group_size consecutive values).
 *
 * w1 is the SwiGLU gate, w3 the up projection, w2 the down projection. llama2.c hard-codes
 * RMSNorm epsilon 1e-5 and RoPE theta 10000 on adjacent pairs.
 */
import { basename, dirname, extname, join } from 'node:path';
import { SedacError } from '../errors.js';
import {
  ByteCursor,
  checkTensorShapes,
  combineSha256,
  readWhole,
  sha256Hex,
  validateConfig,
} from './readerCommon.js';
import type { LlamaConfig, LlamaLayerTensors, LlamaSource, SentencePieceVocab, SourceTensor } from './source.js';

export const AK42_MAGIC = 0x616b3432;
const V1_HEADER_BYTES = 256;

export interface Llama2cHeader {
  version: 0 | 1 | 2;
  dim: number;
  hiddenDim: number;
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  vocabSize: number;
  seqLen: number;
  sharedClassifier: boolean;
  /** v2 only */
  groupSize?: number;
  headerBytes: number;
}

/** Parse the header (the first 256 bytes are enough). */
export function parseLlama2cHeader(buf: Uint8Array, what: string): Llama2cHeader {
  const c = new ByteCursor(buf, what);
  const first = c.u32('magic');
  let version: 0 | 1 | 2 = 0;
  if (first === AK42_MAGIC) {
    const v = c.i32('version');
    if (v !== 1 && v !== 2) throw new SedacError('E_MODEL_UNSUPPORTED', `${what}: llama2.c checkpoint version ${v} is not supported (0, 1, 2 are)`);
    version = v;
  } else {
    c.pos = 0;
  }
  const ints = [0, 1, 2, 3, 4, 5, 6].map((i) => c.i32(`header int ${i}`));
  const [dim, hiddenDim, nLayers, nHeads, nKvHeads, rawVocab, seqLen] = ints as [number, number, number, number, number, number, number];
  let sharedClassifier = rawVocab > 0;
  let groupSize: number | undefined;
  if (version > 0) {
    if (rawVocab <= 0) throw c.fail(`vocab_size ${rawVocab}`);
    const flag = c.u8('shared_classifier');
    if (flag > 1) throw c.fail(`shared_classifier flag ${flag}`);
    sharedClassifier = flag === 1;
    if (version === 2) {
      groupSize = c.i32('group_size');
      if (groupSize <= 0) throw c.fail(`group_size ${groupSize}`);
    }
  }
  const header: Llama2cHeader = {
    version,
    dim,
    hiddenDim,
    nLayers,
    nHeads,
    nKvHeads,
    vocabSize: Math.abs(rawVocab),
    seqLen,
    sharedClassifier,
    headerBytes: version === 0 ? 28 : V1_HEADER_BYTES,
  };
  if (groupSize !== undefined) header.groupSize = groupSize;
  validateConfig(llama2cConfig(header, what), what);
  if (groupSize !== undefined) {
    for (const [name, shape] of weightPlan(header).mats) {
      if (count(shape) % groupSize !== 0) throw c.fail(`${name} has ${count(shape)} values, not a multiple of group_size ${groupSize}`);
    }
  }
  return header;
}

function llama2cConfig(h: Llama2cHeader, what: string): LlamaConfig {
  if (h.nHeads <= 0 || h.dim % h.nHeads !== 0) throw new SedacError('E_MODEL_FORMAT', `${what}: dim ${h.dim} is not a multiple of n_heads ${h.nHeads}`);
  return {
    dim: h.dim,
    nLayers: h.nLayers,
    nHeads: h.nHeads,
    nKvHeads: h.nKvHeads,
    headDim: h.dim / h.nHeads,
    ffnDim: h.hiddenDim,
    vocabSize: h.vocabSize,
    normEps: 1e-5,
    ropeTheta: 10000,
    maxSeqLen: h.seqLen,
    ropeLayout: 'adjacent',
    tiedEmbeddings: h.sharedClassifier,
  };
}

/** [name, shape] of every weight in file order, per version. */
function weightPlan(h: Llama2cHeader): { norms: [string, number[]][]; mats: [string, number[]][] } {
  const { dim, hiddenDim: hid, nLayers: L, vocabSize: V } = h;
  const hs = dim / h.nHeads;
  const q = h.nHeads * hs;
  const kv = h.nKvHeads * hs;
  const per = (name: string, shape: number[]): [string, number[]][] =>
    Array.from({ length: L }, (_, i) => [`layers.${i}.${name}`, shape] as [string, number[]]);
  const mats: [string, number[]][] = [
    ...per('attention.wq', [q, dim]),
    ...per('attention.wk', [kv, dim]),
    ...per('attention.wv', [kv, dim]),
    ...per('attention.wo', [dim, q]),
  ];
  const ffn: [string, number[]][] = [...per('feed_forward.w1', [hid, dim]), ...per('feed_forward.w2', [dim, hid]), ...per('feed_forward.w3', [hid, dim])];
  const tok: [string, number[]] = ['tok_embeddings', [V, dim]];
  const out: [string, number[]][] = h.sharedClassifier ? [] : [['output', [V, dim]]];
  if (h.version === 0) {
    // v0 interleaves norms with matrices; freq_cis tables sit between `norm` and `output`
    return {
      norms: [],
      mats: [tok, ...per('attention_norm', [dim]), ...mats, ...per('ffn_norm', [dim]), ...ffn, ['norm', [dim]], ['freq_cis', [2, h.seqLen, hs / 2]], ...out],
    };
  }
  return { norms: [...per('attention_norm', [dim]), ...per('ffn_norm', [dim]), ['norm', [dim]]], mats: [tok, ...mats, ...ffn, ...out] };
}

const count = (shape: number[]): number => shape.reduce((a, b) => a * b, 1);

/** The exact file size a checkpoint with this header has. */
export function llama2cFileSize(h: Llama2cHeader): number {
  const plan = weightPlan(h);
  let size = h.headerBytes + 4 * plan.norms.reduce((a, [, s]) => a + count(s), 0);
  for (const [, s] of plan.mats) size += h.version === 2 ? count(s) + (4 * count(s)) / h.groupSize! : 4 * count(s);
  return size;
}

/** True when the first bytes and the size look like a llama2.c checkpoint (for format detection). */
export function looksLikeLlama2c(head: Uint8Array, fileSize: number): boolean {
  if (head.length >= 4 && new DataView(head.buffer, head.byteOffset, 4).getUint32(0, true) === AK42_MAGIC) return true;
  try {
    return llama2cFileSize(parseLlama2cHeader(head, 'checkpoint')) === fileSize;
  } catch {
    return false;
  }
}

function copyF32(b: Uint8Array): Float32Array {
  const out = new Float32Array(b.length / 4);
  new Uint8Array(out.buffer).set(b);
  return out;
}

/** Read a llama2.c checkpoint (v0, v1 or v2) and its tokenizer.bin (default: beside it). */
export async function readLlama2c(checkpointPath: string, tokenizerPath?: string): Promise<LlamaSource> {
  const buf = await readWhole(checkpointPath);
  const what = basename(checkpointPath);
  const h = parseLlama2cHeader(buf, what);
  const expected = llama2cFileSize(h);
  if (expected !== buf.length) {
    throw new SedacError('E_MODEL_FORMAT', `${what}: a llama2.c v${h.version} checkpoint with this header is ${expected} bytes, the file has ${buf.length}`, {
      expected,
      got: buf.length,
    });
  }
  const config = llama2cConfig(h, what);
  const c = new ByteCursor(buf, what, h.headerBytes);
  const byName = new Map<string, SourceTensor>();
  const plan = weightPlan(h);
  for (const [name, shape] of plan.norms) byName.set(name, { name, dtype: 'f32', shape, data: c.bytes(4 * count(shape), name) });
  for (const [name, shape] of plan.mats) {
    const n = count(shape);
    if (h.version === 2) {
      const data = c.bytes(n, name);
      const scales = copyF32(c.bytes((4 * n) / h.groupSize!, `${name} scales`));
      byName.set(name, { name, dtype: 'q8_g', shape, data, scales, groupSize: h.groupSize! });
    } else {
      byName.set(name, { name, dtype: 'f32', shape, data: c.bytes(4 * n, name) });
    }
  }
  const get = (name: string): SourceTensor => byName.get(name)!;
  const layers: LlamaLayerTensors[] = Array.from({ length: h.nLayers }, (_, i) => ({
    attnNorm: get(`layers.${i}.attention_norm`),
    wq: get(`layers.${i}.attention.wq`),
    wk: get(`layers.${i}.attention.wk`),
    wv: get(`layers.${i}.attention.wv`),
    wo: get(`layers.${i}.attention.wo`),
    ffnNorm: get(`layers.${i}.ffn_norm`),
    wGate: get(`layers.${i}.feed_forward.w1`),
    wUp: get(`layers.${i}.feed_forward.w3`),
    wDown: get(`layers.${i}.feed_forward.w2`),
  }));
  const output = byName.get('output');
  const tensors = { tokEmbd: get('tok_embeddings'), outputNorm: get('norm'), layers, ...(output ? { output } : {}) };
  checkTensorShapes(config, tensors);

  const tokPath = tokenizerPath ?? join(dirname(checkpointPath), 'tokenizer.bin');
  const tokBuf = await readWhole(tokPath, 'E_MODEL_TOKENIZER');
  const tokenizer = parseLlama2cTokenizer(tokBuf, config.vocabSize, basename(tokPath));
  const sha256 = combineSha256([
    { path: checkpointPath, sha256: sha256Hex(buf) },
    { path: tokPath, sha256: sha256Hex(tokBuf) },
  ]);
  return { format: 'llama2c', name: basename(checkpointPath, extname(checkpointPath)), config, tensors, tokenizer, sha256 };
}

const BYTE_PIECE = /^<0x[0-9A-Fa-f]{2}>$/;

/**
 * llama2.c `tokenizer.bin`: i32 max_token_length, then per token f32 score, i32 length, bytes.
 * llama2.c's export writes SentencePiece pieces with '▁' turned into ' ' and BOS/EOS as
 * "\n<s>\n" / "\n</s>\n"; this undoes both so the vocabulary reads like the SentencePiece model.
 */
export function parseLlama2cTokenizer(buf: Uint8Array, vocabSize: number, what: string): SentencePieceVocab {
  const c = new ByteCursor(buf, what, 0, 'E_MODEL_TOKENIZER');
  const maxLen = c.i32('max_token_length');
  if (maxLen <= 0 || maxLen > 65536) throw c.fail(`max_token_length ${maxLen}`);
  c.need(vocabSize * 8, `${vocabSize} tokens`);
  const pieces: string[] = [];
  const scores: number[] = [];
  const types: number[] = [];
  for (let i = 0; i < vocabSize; i++) {
    const score = c.f32(`token ${i} score`);
    const len = c.i32(`token ${i} length`);
    if (len < 0 || len > maxLen) throw c.fail(`token ${i} length ${len} (max_token_length ${maxLen})`);
    let piece = c.utf8(len, `token ${i}`);
    let type = 1;
    if (i === 0) type = 2;
    else if (i === 1 || i === 2) {
      type = 3;
      piece = piece.trim();
    } else if (BYTE_PIECE.test(piece)) type = 6;
    else piece = piece.replaceAll(' ', '\u2581');
    pieces.push(piece);
    scores.push(score);
    types.push(type);
  }
  if (c.remaining !== 0) throw c.fail(`${c.remaining} bytes after ${vocabSize} tokens: the tokenizer does not match the model's vocabulary`);
  return { kind: 'sentencepiece', pieces, scores, types, bos: 1, eos: 2, unk: 0, addDummyPrefix: true, algorithm: 'bpe' };
}
