/**
 * GGUF reader for `general.architecture = llama` models: llama.* metadata → LlamaConfig,
 * tokenizer.ggml.* → SentencePieceVocab, llama.cpp tensor names → LlamaTensors. GGUF dims are
 * ne[0] (= `in`) first, so a matrix's LlamaSource shape is [ne1, ne0]. The container itself is
 * parsed in ggufFile.ts.
 */
import { basename, extname } from 'node:path';
import { SedacError } from '../errors.js';
import { widenBf16 } from './dequant.js';
import { parseGguf, type GgufFile, type GgufTensorInfo } from './ggufFile.js';
import {
  checkTensorShapes,
  missingTensor,
  readWhole,
  sameTensor,
  sha256Hex,
  validateConfig,
} from './readerCommon.js';
import type { LlamaConfig, LlamaLayerTensors, LlamaSource, SentencePieceVocab, SourceTensor } from './source.js';

export { ggmlTypeName, parseGguf, type GgufFile, type GgufTensorInfo, type GgufValue } from './ggufFile.js';

// ---------------------------------------------------------------------------------------------
// metadata accessors

function metaFail(what: string, key: string, message: string): SedacError {
  return new SedacError('E_MODEL_FORMAT', `${what}: metadata ${key} ${message}`, { key });
}

function metaInt(f: GgufFile, what: string, key: string, fallback?: number): number {
  const v = f.metadata.get(key);
  if (v === undefined) {
    if (fallback === undefined) throw metaFail(what, key, 'is missing');
    return fallback;
  }
  if (typeof v === 'bigint' && v >= 0n && v <= BigInt(Number.MAX_SAFE_INTEGER)) return Number(v);
  if (typeof v === 'number' && Number.isSafeInteger(v)) return v;
  if (Array.isArray(v)) {
    throw new SedacError('E_MODEL_UNSUPPORTED', `${what}: metadata ${key} varies per layer, which SEDAC does not run`, { key });
  }
  throw metaFail(what, key, `is ${String(v)}, not an integer`);
}

/**
 * The shortest decimal that is the same float32 (1e-5 rather than 9.999999747378752e-6): f32
 * metadata then reads as written, and the graph, which works in float32, sees the same value.
 */
function shortestF32(v: number): number {
  if (Math.fround(v) !== v) return v; // a float64 value: keep it
  for (let p = 1; p <= 9; p++) {
    const d = Number(v.toPrecision(p));
    if (Math.fround(d) === v) return d;
  }
  return v;
}

function metaFloat(f: GgufFile, what: string, key: string, fallback?: number): number {
  const v = f.metadata.get(key);
  if (v === undefined) {
    if (fallback === undefined) throw metaFail(what, key, 'is missing');
    return fallback;
  }
  if (typeof v === 'number') return shortestF32(v);
  throw metaFail(what, key, `is ${String(v)}, not a number`);
}

function metaString(f: GgufFile, key: string): string | undefined {
  const v = f.metadata.get(key);
  return typeof v === 'string' ? v : undefined;
}

// ---------------------------------------------------------------------------------------------
// LlamaSource

const LAYER_TENSORS: [keyof LlamaLayerTensors, string][] = [
  ['attnNorm', 'attn_norm'],
  ['wq', 'attn_q'],
  ['wk', 'attn_k'],
  ['wv', 'attn_v'],
  ['wo', 'attn_output'],
  ['ffnNorm', 'ffn_norm'],
  ['wGate', 'ffn_gate'],
  ['wUp', 'ffn_up'],
  ['wDown', 'ffn_down'],
];

function ggufConfig(f: GgufFile, what: string, vocabSize: number): LlamaConfig {
  const arch = 'llama';
  const dim = metaInt(f, what, `${arch}.embedding_length`);
  const nHeads = metaInt(f, what, `${arch}.attention.head_count`);
  const nKvHeads = metaInt(f, what, `${arch}.attention.head_count_kv`, nHeads);
  const keyLength = metaInt(f, what, `${arch}.attention.key_length`, nHeads > 0 ? Math.floor(dim / nHeads) : 0);
  const valueLength = metaInt(f, what, `${arch}.attention.value_length`, keyLength);
  if (valueLength !== keyLength) {
    throw new SedacError('E_MODEL_UNSUPPORTED', `${what}: key length ${keyLength} differs from value length ${valueLength}`);
  }
  const ropeDims = metaInt(f, what, `${arch}.rope.dimension_count`, keyLength);
  if (ropeDims !== keyLength) {
    throw new SedacError('E_MODEL_UNSUPPORTED', `${what}: partial RoPE (${ropeDims} of ${keyLength} head dims) is not supported`);
  }
  if (metaInt(f, what, `${arch}.expert_count`, 0) > 0) {
    throw new SedacError('E_MODEL_UNSUPPORTED', `${what}: mixture-of-experts Llama models are not supported`);
  }
  const scaling = metaString(f, `${arch}.rope.scaling.type`);
  const factor = metaFloat(f, what, `${arch}.rope.scaling.factor`, 1);
  if (factor !== 1 || (scaling !== undefined && scaling !== 'none' && scaling !== 'linear')) {
    throw new SedacError('E_MODEL_UNSUPPORTED', `${what}: RoPE scaling ${scaling ?? ''} (factor ${factor}) is not supported`);
  }
  const declaredVocab = metaInt(f, what, `${arch}.vocab_size`, vocabSize);
  if (declaredVocab !== vocabSize) {
    throw new SedacError('E_MODEL_SHAPE', `${what}: ${arch}.vocab_size ${declaredVocab} disagrees with ${vocabSize} tokenizer tokens`);
  }
  return {
    dim,
    nLayers: metaInt(f, what, `${arch}.block_count`),
    nHeads,
    nKvHeads,
    headDim: keyLength,
    ffnDim: metaInt(f, what, `${arch}.feed_forward_length`),
    vocabSize,
    normEps: metaFloat(f, what, `${arch}.attention.layer_norm_rms_epsilon`),
    ropeTheta: metaFloat(f, what, `${arch}.rope.freq_base`, 10000),
    maxSeqLen: metaInt(f, what, `${arch}.context_length`),
    ropeLayout: 'adjacent',
    tiedEmbeddings: true, // settled once the tensors are read
  };
}

function tokFail(what: string, message: string): SedacError {
  return new SedacError('E_MODEL_TOKENIZER', `${what}: ${message}`);
}

/** The SentencePiece vocabulary carried in `tokenizer.ggml.*`. */
export function ggufVocab(f: GgufFile, what: string): SentencePieceVocab {
  const model = metaString(f, 'tokenizer.ggml.model');
  if (model === undefined) throw tokFail(what, 'no tokenizer (tokenizer.ggml.model missing)');
  if (model !== 'llama') {
    throw tokFail(what, `tokenizer.ggml.model '${model}' is not supported (SEDAC reads SentencePiece 'llama' vocabularies)`);
  }
  const tokens = f.metadata.get('tokenizer.ggml.tokens');
  if (!Array.isArray(tokens) || tokens.length === 0 || !tokens.every((t) => typeof t === 'string')) {
    throw tokFail(what, 'tokenizer.ggml.tokens is missing or not an array of strings');
  }
  const n = tokens.length;
  const numbers = (key: string, fallback: number): number[] => {
    const v = f.metadata.get(key);
    if (v === undefined) return new Array<number>(n).fill(fallback);
    if (!Array.isArray(v) || v.length !== n || !v.every((x) => typeof x === 'number')) {
      throw tokFail(what, `${key} must be an array of ${n} numbers`);
    }
    return v as number[];
  };
  const scores = numbers('tokenizer.ggml.scores', 0);
  const types = numbers('tokenizer.ggml.token_type', 1);
  const id = (key: string, fallback: number): number => {
    const v = f.metadata.get(key);
    if (v === undefined) return fallback;
    if (v === 0xffffffff || v === -1) return -1;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v >= n) throw tokFail(what, `${key} = ${String(v)} is not a token id`);
    return v;
  };
  const addPrefix = f.metadata.get('tokenizer.ggml.add_space_prefix');
  const collapse = f.metadata.get('tokenizer.ggml.remove_extra_whitespaces');
  return {
    kind: 'sentencepiece',
    pieces: tokens as string[],
    scores,
    types,
    bos: id('tokenizer.ggml.bos_token_id', 1),
    eos: id('tokenizer.ggml.eos_token_id', 2),
    unk: id('tokenizer.ggml.unknown_token_id', 0),
    addDummyPrefix: typeof addPrefix === 'boolean' ? addPrefix : true,
    ...(collapse === true ? { removeExtraWhitespaces: true } : {}),
    algorithm: 'bpe',
  };
}

/** One GGUF tensor as a SourceTensor (BF16 is widened to F32, which is exact). */
function sourceTensor(buf: Uint8Array, t: GgufTensorInfo, what: string): SourceTensor {
  const shape = [...t.dims].reverse();
  const data = buf.subarray(t.offset, t.offset + t.nbytes);
  switch (t.type) {
    case 0:
      return { name: t.name, dtype: 'f32', shape, data };
    case 1:
      return { name: t.name, dtype: 'f16', shape, data };
    case 2:
      return { name: t.name, dtype: 'q4_0', shape, data };
    case 8:
      return { name: t.name, dtype: 'q8_0', shape, data };
    case 30:
      return { name: t.name, dtype: 'f32', shape, data: widenBf16(data) };
    default:
      throw new SedacError('E_MODEL_UNSUPPORTED', `${what}: tensor ${t.name} has type ${t.typeName}; SEDAC reads F32, F16, BF16, Q8_0 and Q4_0`, {
        tensor: t.name,
        type: t.typeName,
      });
  }
}

/** Build a LlamaSource from a parsed GGUF file and its bytes. */
export function ggufToSource(f: GgufFile, buf: Uint8Array, what: string, sha256: string): LlamaSource {
  const arch = metaString(f, 'general.architecture');
  if (arch !== 'llama') {
    throw new SedacError('E_MODEL_UNSUPPORTED', `${what}: architecture '${arch ?? '(missing)'}' is not supported (only 'llama')`, { architecture: arch });
  }
  const tokenizer = ggufVocab(f, what);
  const config = ggufConfig(f, what, tokenizer.pieces.length);
  validateConfig(config, what);

  const byName = new Map(f.tensors.map((t) => [t.name, t]));
  const used = new Set<string>();
  const take = (name: string): SourceTensor => {
    const t = byName.get(name);
    if (!t) throw missingTensor(name, what);
    used.add(name);
    return sourceTensor(buf, t, what);
  };
  const tokEmbd = take('token_embd.weight');
  const outputNorm = take('output_norm.weight');
  let output = byName.has('output.weight') ? take('output.weight') : undefined;
  const layers: LlamaLayerTensors[] = [];
  for (let i = 0; i < config.nLayers; i++) {
    const layer: Partial<LlamaLayerTensors> = {};
    for (const [key, suffix] of LAYER_TENSORS) layer[key] = take(`blk.${i}.${suffix}.weight`);
    layers.push(layer as LlamaLayerTensors);
  }
  const extra = f.tensors.filter((t) => !used.has(t.name)).map((t) => t.name);
  if (extra.length > 0) {
    const why = extra.includes('rope_freqs.weight') ? ' (rope_freqs: Llama 3.1-style RoPE scaling)' : '';
    throw new SedacError('E_MODEL_UNSUPPORTED', `${what}: tensors a plain Llama does not have: ${extra.slice(0, 5).join(', ')}${extra.length > 5 ? ', …' : ''}${why}`, {
      tensors: extra,
    });
  }
  // A stored LM head that is a byte-for-byte copy of the embedding is a tied head.
  if (output && sameTensor(output, tokEmbd)) output = undefined;
  config.tiedEmbeddings = output === undefined;
  const tensors = { tokEmbd, outputNorm, layers, ...(output ? { output } : {}) };
  checkTensorShapes(config, tensors);
  // general.name is often just the architecture ('llama'); the file name says more then
  const generalName = metaString(f, 'general.name');
  const name = generalName && generalName !== arch ? generalName : basename(what, extname(what));
  return { format: 'gguf', name, config, tensors, tokenizer, sha256 };
}

/** Read a llama GGUF file into a LlamaSource. */
export async function readGguf(path: string): Promise<LlamaSource> {
  const buf = await readWhole(path);
  const what = basename(path);
  const file = parseGguf(buf, what);
  return ggufToSource(file, buf, what, sha256Hex(buf));
}
