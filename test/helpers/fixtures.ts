/**
 * Test fixtures for the model readers: shared model paths, temp dirs, a seeded PRNG, and small
 * writers (GGUF, safetensors, SentencePiece tokenizer.model, HF folders) used to make variants of
 * the shared models. The writers follow the published formats and are written independently of
 * the readers (they never call reader code).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, readdirSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ProtoWriter } from '../../agent/convert/protobuf.js';
import { SedacError } from '../../agent/errors.js';
import type { LlamaSource, SentencePieceVocab, SourceTensor } from '../../agent/convert/source.js';
import { sharedPath } from './shared.js';

export const MODELS = {
  stories: (): string => sharedPath('models/stories260K/stories260K.gguf'),
  captionF32: (ee = false): string => sharedPath(`models/caption-lm-8L${ee ? '-ee' : ''}/caption-lm-8L${ee ? '-ee' : ''}.gguf`),
  captionF16: (ee = false): string => sharedPath(`models/caption-lm-8L${ee ? '-ee' : ''}/caption-lm-8L${ee ? '-ee' : ''}.f16.gguf`),
  captionQ8: (ee = false): string => sharedPath(`models/caption-lm-8L${ee ? '-ee' : ''}/caption-lm-8L${ee ? '-ee' : ''}.q8_0.gguf`),
  captionHf: (ee = false): string => sharedPath(`models/caption-lm-8L${ee ? '-ee' : ''}/hf`),
  bertHf: (): string => sharedPath('models/moderation-bert-6L/hf'),
};

/** A fresh temp directory; call the returned cleanup in `after`. */
export function tempDir(prefix = 'sedac-convert-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export { prng } from '../../agent/engine/sampling.js';

/** The float32 values of an f32 SourceTensor (fails for any other dtype). */
export function f32Values(t: SourceTensor): Float32Array {
  if (t.dtype !== 'f32') throw new Error(`fixture needs an f32 tensor, ${t.name} is ${t.dtype}`);
  const out = new Float32Array(t.data.length / 4);
  new Uint8Array(out.buffer).set(t.data);
  return out;
}

export function f32Bytes(a: Float32Array): Uint8Array {
  return new Uint8Array(a.buffer.slice(a.byteOffset, a.byteOffset + a.byteLength));
}

export function concatBytes(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// GGUF writer

/** A metadata value with its GGUF type id (0 u8 … 12 f64; arrays: 9 with `elemType`). */
export type GgufMeta = { type: number; value: unknown; elemType?: number };

export interface GgufTensorSpec {
  name: string;
  /** ggml type id */
  type: number;
  /** ne[0] first */
  dims: number[];
  data: Uint8Array;
}

function ggufScalar(type: number, value: unknown): Uint8Array {
  const b = new Uint8Array(8);
  const dv = new DataView(b.buffer);
  switch (type) {
    case 0: dv.setUint8(0, value as number); return b.subarray(0, 1);
    case 1: dv.setInt8(0, value as number); return b.subarray(0, 1);
    case 2: dv.setUint16(0, value as number, true); return b.subarray(0, 2);
    case 3: dv.setInt16(0, value as number, true); return b.subarray(0, 2);
    case 4: dv.setUint32(0, value as number, true); return b.subarray(0, 4);
    case 5: dv.setInt32(0, value as number, true); return b.subarray(0, 4);
    case 6: dv.setFloat32(0, value as number, true); return b.subarray(0, 4);
    case 7: dv.setUint8(0, value ? 1 : 0); return b.subarray(0, 1);
    case 8: return ggufString(value as string);
    case 10: dv.setBigUint64(0, BigInt(value as number | bigint), true); return b;
    case 11: dv.setBigInt64(0, BigInt(value as number | bigint), true); return b;
    case 12: dv.setFloat64(0, value as number, true); return b;
    default: throw new Error(`fixture: GGUF scalar type ${type}`);
  }
}

function u64(n: number): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(n), true);
  return b;
}

function u32(n: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n, true);
  return b;
}

function ggufString(s: string): Uint8Array {
  const t = new TextEncoder().encode(s);
  return concatBytes([u64(t.length), t]);
}

function ggufValue(m: GgufMeta): Uint8Array {
  if (m.type !== 9) return ggufScalar(m.type, m.value);
  const items = m.value as unknown[];
  const et = m.elemType!;
  return concatBytes([
    u32(et),
    u64(items.length),
    ...items.map((v) => (et === 9 ? ggufValue(v as GgufMeta) : ggufScalar(et, v))),
  ]);
}

/** Bytes of a GGUF file (tensor data laid out in order, each padded to the alignment). */
export function ggufBytes(meta: [string, GgufMeta][], tensors: GgufTensorSpec[], opts: { version?: number; alignment?: number } = {}): Uint8Array {
  const align = opts.alignment ?? 32;
  const parts: Uint8Array[] = [new TextEncoder().encode('GGUF'), u32(opts.version ?? 3), u64(tensors.length), u64(meta.length)];
  for (const [k, m] of meta) parts.push(ggufString(k), u32(m.type), ggufValue(m));
  let off = 0;
  for (const t of tensors) {
    parts.push(ggufString(t.name), u32(t.dims.length), ...t.dims.map(u64), u32(t.type), u64(off));
    off += Math.ceil(t.data.length / align) * align;
  }
  const head = concatBytes(parts);
  const dataStart = Math.ceil(head.length / align) * align;
  const out = new Uint8Array(dataStart + off);
  out.set(head);
  let at = dataStart;
  for (const t of tensors) {
    out.set(t.data, at);
    at += Math.ceil(t.data.length / align) * align;
  }
  return out;
}

const GGUF_LAYER_NAMES: [keyof LlamaSource['tensors']['layers'][number], string][] = [
  ['attnNorm', 'attn_norm'], ['wq', 'attn_q'], ['wk', 'attn_k'], ['wv', 'attn_v'], ['wo', 'attn_output'],
  ['ffnNorm', 'ffn_norm'], ['wGate', 'ffn_gate'], ['wUp', 'ffn_up'], ['wDown', 'ffn_down'],
];

/** Metadata of a llama GGUF describing `src` (config + SentencePiece vocabulary). */
export function llamaGgufMeta(src: LlamaSource): [string, GgufMeta][] {
  const c = src.config;
  const v = src.tokenizer as SentencePieceVocab;
  return [
    ['general.architecture', { type: 8, value: 'llama' }],
    ['general.name', { type: 8, value: src.name }],
    ['llama.context_length', { type: 4, value: c.maxSeqLen }],
    ['llama.embedding_length', { type: 4, value: c.dim }],
    ['llama.block_count', { type: 4, value: c.nLayers }],
    ['llama.feed_forward_length', { type: 4, value: c.ffnDim }],
    ['llama.attention.head_count', { type: 4, value: c.nHeads }],
    ['llama.attention.head_count_kv', { type: 4, value: c.nKvHeads }],
    ['llama.rope.dimension_count', { type: 4, value: c.headDim }],
    ['llama.attention.layer_norm_rms_epsilon', { type: 6, value: c.normEps }],
    ['llama.rope.freq_base', { type: 6, value: c.ropeTheta }],
    ['tokenizer.ggml.model', { type: 8, value: 'llama' }],
    ['tokenizer.ggml.tokens', { type: 9, elemType: 8, value: v.pieces }],
    ['tokenizer.ggml.scores', { type: 9, elemType: 6, value: v.scores }],
    ['tokenizer.ggml.token_type', { type: 9, elemType: 5, value: v.types }],
    ['tokenizer.ggml.bos_token_id', { type: 4, value: v.bos }],
    ['tokenizer.ggml.eos_token_id', { type: 4, value: v.eos }],
    ['tokenizer.ggml.unknown_token_id', { type: 4, value: v.unk }],
  ];
}

/** GGUF tensor specs for every tensor of an f32 LlamaSource, in llama.cpp's names. */
export function llamaGgufTensors(src: LlamaSource): GgufTensorSpec[] {
  const spec = (name: string, t: SourceTensor): GgufTensorSpec => ({ name, type: 0, dims: [...t.shape].reverse(), data: f32Bytes(f32Values(t)) });
  const out = [spec('token_embd.weight', src.tensors.tokEmbd), spec('output_norm.weight', src.tensors.outputNorm)];
  if (src.tensors.output) out.push(spec('output.weight', src.tensors.output));
  src.tensors.layers.forEach((l, i) => {
    for (const [k, n] of GGUF_LAYER_NAMES) out.push(spec(`blk.${i}.${n}.weight`, l[k]));
  });
  return out;
}

// ---------------------------------------------------------------------------------------------
// safetensors, SentencePiece and HF folders

export interface StTensor {
  name: string;
  dtype: string;
  shape: number[];
  data: Uint8Array;
}

/** Bytes of a safetensors file (header padded with spaces to 8 bytes, as the Python writer does). */
export function safetensorsBytes(tensors: StTensor[], metadata: Record<string, string> = { format: 'pt' }): Uint8Array {
  const header: Record<string, unknown> = { __metadata__: metadata };
  let off = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [off, off + t.data.length] };
    off += t.data.length;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((8 + json.length) % 8)) % 8);
  const hb = new TextEncoder().encode(json);
  return concatBytes([u64(hb.length), hb, ...tensors.map((t) => t.data)]);
}

/** A SentencePiece ModelProto for `v` (pieces, trainer_spec ids, normalizer add_dummy_prefix). */
export function spModelBytes(v: SentencePieceVocab): Uint8Array {
  const w = new ProtoWriter();
  v.pieces.forEach((p, i) => w.message(1, (m) => m.string(1, p).float(2, v.scores[i]!).int(3, v.types[i]!)));
  w.message(2, (t) => t.int(3, 2).int(25, v.splitDigits ? 1 : 0).int(35, 1).int(40, v.unk).int(41, v.bos).int(42, v.eos));
  w.message(3, (n) => n.string(1, 'identity').int(3, v.addDummyPrefix ? 1 : 0).int(4, 0));
  return w.finish();
}

/** HF's q/k row permutation (convert_llama_weights_to_hf.permute): Meta row h*hd+2i+j → h*hd+j*hd/2+i. */
export function permuteToHf(w: Float32Array, nHeads: number, rows: number, cols: number): Float32Array {
  const hd = rows / nHeads;
  const out = new Float32Array(w.length);
  for (let h = 0; h < nHeads; h++) {
    for (let i = 0; i < hd / 2; i++) {
      for (let j = 0; j < 2; j++) {
        const from = (h * hd + 2 * i + j) * cols;
        const to = (h * hd + j * (hd / 2) + i) * cols;
        out.set(w.subarray(from, from + cols), to);
      }
    }
  }
  return out;
}

/** Make `dst` a copy of folder `src` whose files are symlinks, except the names in `skip`. */
export function linkFolder(src: string, dst: string, skip: string[] = []): void {
  for (const name of readdirSync(src)) if (!skip.includes(name)) symlinkSync(join(src, name), join(dst, name));
}

export function writeJson(path: string, v: unknown): void {
  writeFileSync(path, JSON.stringify(v, null, 2));
}

/** Assert that `p` rejects with a SedacError of `code` whose message mentions `mention`. */
export async function rejectsWith(p: Promise<unknown>, code: string, mention: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof SedacError, `expected SedacError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    assert.match(e.message, mention);
    return true;
  });
}
