/**
 * The GGUF container (v2, v3): header, metadata key/values and tensor infos, with every count,
 * length and tensor extent checked against the file before it is used.
 *
 * Layout: magic "GGUF", u32 version, u64 tensor count, u64 metadata count, metadata key/values,
 * tensor infos (name, n_dims, ne[0..n) with ne[0] the fastest-varying (= `in`) dimension, ggml
 * type, offset), padding to `general.alignment` (default 32), tensor data. As llama.cpp requires,
 * tensor data must be laid out in order, each tensor starting where the previous one ended
 * (rounded up to the alignment); checking that catches most corrupt offsets and sizes.
 */
import { SedacError } from '../errors.js';
import { ByteCursor } from './readerCommon.js';

export type GgufValue = number | bigint | boolean | string | GgufValue[];

export interface GgufTensorInfo {
  name: string;
  /** ne[0] first (the fastest-varying, i.e. `in`, dimension) */
  dims: number[];
  /** ggml type id */
  type: number;
  typeName: string;
  /** absolute byte offset of the tensor data in the file */
  offset: number;
  nbytes: number;
}

export interface GgufFile {
  version: number;
  alignment: number;
  metadata: Map<string, GgufValue>;
  tensors: GgufTensorInfo[];
  /** where the tensor infos start (after the metadata) */
  infoOffset: number;
  /** where the (aligned) tensor data section starts */
  dataOffset: number;
}

/** ggml types whose storage size is known: [name, values per block, bytes per block]. */
const GGML_TYPES: Record<number, [string, number, number]> = {
  0: ['F32', 1, 4],
  1: ['F16', 1, 2],
  2: ['Q4_0', 32, 18],
  3: ['Q4_1', 32, 20],
  6: ['Q5_0', 32, 22],
  7: ['Q5_1', 32, 24],
  8: ['Q8_0', 32, 34],
  9: ['Q8_1', 32, 36],
  10: ['Q2_K', 256, 84],
  11: ['Q3_K', 256, 110],
  12: ['Q4_K', 256, 144],
  13: ['Q5_K', 256, 176],
  14: ['Q6_K', 256, 210],
  15: ['Q8_K', 256, 292],
  24: ['I8', 1, 1],
  25: ['I16', 1, 2],
  26: ['I32', 1, 4],
  27: ['I64', 1, 8],
  28: ['F64', 1, 8],
  30: ['BF16', 1, 2],
};

/** Names of ggml types SEDAC cannot size or run, for error messages only. */
const OTHER_TYPE_NAMES: Record<number, string> = {
  16: 'IQ2_XXS', 17: 'IQ2_XS', 18: 'IQ3_XXS', 19: 'IQ1_S', 20: 'IQ4_NL', 21: 'IQ3_S', 22: 'IQ2_S',
  23: 'IQ4_XS', 29: 'IQ1_M', 34: 'TQ1_0', 35: 'TQ2_0',
};

export function ggmlTypeName(type: number): string {
  return GGML_TYPES[type]?.[0] ?? OTHER_TYPE_NAMES[type] ?? `type ${type}`;
}

// metadata value types
const T_STRING = 8;
const T_ARRAY = 9;
/** minimum encoded size of one value of each metadata type (bounds array counts before allocating) */
const MIN_SIZE = [1, 1, 2, 2, 4, 4, 4, 1, 8, 12, 8, 8, 8];
const MAX_ARRAY_DEPTH = 4;

function readValue(c: ByteCursor, type: number, key: string, depth: number): GgufValue {
  switch (type) {
    case 0:
      return c.u8(key);
    case 1:
      return (c.u8(key) << 24) >> 24;
    case 2: {
      const b = c.bytes(2, key);
      return b[0]! | (b[1]! << 8);
    }
    case 3: {
      const b = c.bytes(2, key);
      return ((b[0]! | (b[1]! << 8)) << 16) >> 16;
    }
    case 4:
      return c.u32(key);
    case 5:
      return c.i32(key);
    case 6:
      return c.f32(key);
    case 7: {
      const v = c.u8(key);
      if (v > 1) throw c.fail(`${key}: bool value ${v}`);
      return v === 1;
    }
    case T_STRING:
      return c.utf8(c.u64(`${key} length`), key);
    case T_ARRAY: {
      if (depth >= MAX_ARRAY_DEPTH) throw c.fail(`${key}: arrays nested deeper than ${MAX_ARRAY_DEPTH}`);
      const et = c.u32(`${key} element type`);
      const min = MIN_SIZE[et];
      if (min === undefined) throw c.fail(`${key}: unknown array element type ${et}`);
      const n = c.u64(`${key} count`);
      c.need(n * min, `${key} (${n} elements)`);
      const out: GgufValue[] = new Array<GgufValue>(n);
      for (let i = 0; i < n; i++) out[i] = readValue(c, et, key, depth + 1);
      return out;
    }
    case 10:
      return c.u64big(key);
    case 11: {
      const v = c.u64big(key);
      return BigInt.asIntN(64, v);
    }
    case 12: {
      const b = c.bytes(8, key);
      return new DataView(b.buffer, b.byteOffset, 8).getFloat64(0, true);
    }
    default:
      throw c.fail(`${key}: unknown metadata value type ${type}`);
  }
}

/** Parse a GGUF file's header, metadata and tensor infos, checking every tensor lies in the file. */
export function parseGguf(buf: Uint8Array, what = 'GGUF'): GgufFile {
  const c = new ByteCursor(buf, what);
  const magic = c.bytes(4, 'magic');
  if (String.fromCharCode(...magic) !== 'GGUF') throw c.fail('not a GGUF file (bad magic)');
  const version = c.u32('version');
  if (version === 1) throw new SedacError('E_MODEL_UNSUPPORTED', `${what}: GGUF version 1 is not supported (v2 and v3 are)`);
  if (version !== 2 && version !== 3) throw c.fail(`unknown GGUF version ${version}`);
  const nTensors = c.u64('tensor count');
  const nKv = c.u64('metadata count');
  c.need(nKv * 13, `${nKv} metadata entries`);

  const metadata = new Map<string, GgufValue>();
  for (let i = 0; i < nKv; i++) {
    const keyLen = c.u64('key length');
    if (keyLen === 0 || keyLen > 65535) throw c.fail(`metadata key length ${keyLen}`);
    const key = c.utf8(keyLen, 'metadata key');
    if (metadata.has(key)) throw c.fail(`duplicate metadata key ${key}`);
    metadata.set(key, readValue(c, c.u32(`${key} type`), key, 0));
  }

  const alignValue = metadata.get('general.alignment') ?? 32;
  if (typeof alignValue !== 'number' || alignValue <= 0 || (alignValue & (alignValue - 1)) !== 0) {
    throw c.fail(`general.alignment ${String(alignValue)} is not a power of two`);
  }
  const alignment = alignValue;

  const infoOffset = c.pos;
  c.need(nTensors * 24, `${nTensors} tensor infos`);
  const raw: { name: string; dims: number[]; type: number; rel: number }[] = [];
  const names = new Set<string>();
  for (let i = 0; i < nTensors; i++) {
    const name = c.utf8(c.u64('tensor name length'), 'tensor name');
    if (names.has(name)) throw c.fail(`duplicate tensor ${name}`);
    names.add(name);
    const nDims = c.u32(`${name} n_dims`);
    if (nDims < 1 || nDims > 4) throw c.fail(`tensor ${name} has ${nDims} dimensions`);
    const dims: number[] = [];
    for (let d = 0; d < nDims; d++) {
      const ne = c.u64(`${name} ne[${d}]`);
      if (ne === 0 || ne > 2 ** 32) throw c.fail(`tensor ${name} ne[${d}] = ${ne}`);
      dims.push(ne);
    }
    const type = c.u32(`${name} type`);
    const rel = c.u64(`${name} offset`);
    raw.push({ name, dims, type, rel });
  }
  const dataOffset = Math.ceil(c.pos / alignment) * alignment;

  const tensors: GgufTensorInfo[] = [];
  let expectedRel = 0;
  for (const t of raw) {
    const info = GGML_TYPES[t.type];
    if (!info) {
      throw new SedacError('E_MODEL_UNSUPPORTED', `${what}: tensor ${t.name} has ggml type ${ggmlTypeName(t.type)}, which SEDAC cannot read`, {
        tensor: t.name,
        type: ggmlTypeName(t.type),
      });
    }
    const [typeName, block, typeSize] = info;
    const n = t.dims.reduce((a, b) => a * b, 1);
    if (t.dims[0]! % block !== 0) throw c.fail(`tensor ${t.name}: ne[0] = ${t.dims[0]} is not a multiple of the ${typeName} block size ${block}`);
    const nbytes = (n / block) * typeSize;
    if (t.rel !== expectedRel) throw c.fail(`tensor ${t.name} has data offset ${t.rel}, expected ${expectedRel}`);
    const offset = dataOffset + t.rel;
    if (offset + nbytes > buf.length) {
      throw c.fail(`truncated: tensor ${t.name} needs bytes ${offset}..${offset + nbytes}, file has ${buf.length}`);
    }
    expectedRel += Math.ceil(nbytes / alignment) * alignment;
    tensors.push({ name: t.name, dims: t.dims, type: t.type, typeName, offset, nbytes });
  }
  // writers pad after the last tensor at most up to the alignment; more means the header lies
  // about the tensors (e.g. a dtype flipped to a smaller one)
  const paddedEnd = dataOffset + expectedRel;
  if (buf.length > Math.max(paddedEnd, dataOffset)) {
    throw c.fail(`${buf.length - paddedEnd} unexpected bytes after the tensor data (which ends at ${paddedEnd})`);
  }
  return { version, alignment, metadata, tensors, infoOffset, dataOffset };
}
