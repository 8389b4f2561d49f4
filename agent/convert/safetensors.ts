/**
 * safetensors reader: u64 little-endian header length N, N bytes of JSON
 * `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}`, then the data
 * buffer. Offsets are relative to the data buffer, which the tensors must cover exactly, without
 * holes or overlaps (as the format requires); that check catches truncation and most corruption.
 */
import { SedacError } from '../errors.js';
import { ByteCursor, decodeUtf8, isRecord } from './readerCommon.js';

/** The format's own limit on the JSON header (100 MB). */
export const MAX_HEADER_BYTES = 100_000_000;

const DTYPE_BYTES: Record<string, number> = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E5M2: 1,
  F8_E4M3: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  I64: 8,
  U64: 8,
  F64: 8,
};

export interface SafetensorsEntry {
  name: string;
  /** the safetensors dtype string (F32, F16, BF16, ...) */
  dtype: string;
  shape: number[];
  data: Uint8Array;
}

/** Parse a safetensors file held in memory; entries are views into `buf`. */
export function parseSafetensors(buf: Uint8Array, what: string): Map<string, SafetensorsEntry> {
  const c = new ByteCursor(buf, what);
  const n = c.u64('header length');
  if (n < 2 || n > MAX_HEADER_BYTES) throw c.fail(`header length ${n} is out of range`);
  const headerBytes = c.bytes(n, 'header');
  const fail = (message: string): SedacError => new SedacError('E_MODEL_FORMAT', `${what}: ${message}`);
  let header: unknown;
  try {
    header = JSON.parse(decodeUtf8(headerBytes, () => fail('header is not valid UTF-8')));
  } catch (err) {
    if (err instanceof SedacError) throw err;
    throw fail(`header is not valid JSON: ${(err as Error).message}`);
  }
  if (!isRecord(header)) throw fail('header is not a JSON object');

  const dataStart = 8 + n;
  const dataLen = buf.length - dataStart;
  const entries = new Map<string, SafetensorsEntry>();
  const spans: [number, number, string][] = [];
  for (const [name, v] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    if (!isRecord(v) || typeof v.dtype !== 'string' || !Array.isArray(v.shape) || !Array.isArray(v.data_offsets)) {
      throw fail(`entry ${name} lacks dtype, shape or data_offsets`);
    }
    const shape = v.shape as unknown[];
    if (!shape.every((d): d is number => Number.isSafeInteger(d) && (d as number) >= 0) || shape.length > 8) {
      throw fail(`entry ${name} has shape ${JSON.stringify(shape)}`);
    }
    const offsets = v.data_offsets as unknown[];
    const [begin, end] = offsets;
    if (offsets.length !== 2 || !Number.isSafeInteger(begin) || !Number.isSafeInteger(end)) {
      throw fail(`entry ${name} has data_offsets ${JSON.stringify(offsets)}`);
    }
    const b = begin as number;
    const e = end as number;
    if (b < 0 || b > e || e > dataLen) {
      throw fail(`truncated or bad offsets: ${name} spans ${b}..${e} of a ${dataLen}-byte data buffer`);
    }
    const size = DTYPE_BYTES[v.dtype];
    const numel = shape.reduce((a: number, d) => a * (d as number), 1);
    if (size !== undefined && e - b !== numel * size) {
      throw fail(`entry ${name}: ${e - b} bytes for ${v.dtype} [${shape.join(', ')}], expected ${numel * size}`);
    }
    spans.push([b, e, name]);
    entries.set(name, { name, dtype: v.dtype, shape: shape as number[], data: buf.subarray(dataStart + b, dataStart + e) });
  }
  // the data buffer must be covered exactly, in some order, without holes or overlaps
  spans.sort((x, y) => x[0] - y[0] || x[1] - y[1]);
  let at = 0;
  for (const [b, e, name] of spans) {
    if (b !== at) throw fail(`tensor ${name} starts at ${b}, expected ${at} (hole or overlap in the data buffer)`);
    at = e;
  }
  if (at !== dataLen) throw fail(`data buffer is ${dataLen} bytes but the tensors cover ${at}`);
  return entries;
}
