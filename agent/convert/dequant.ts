/**
 * Widening every SourceTensor dtype to float32, and the IEEE half-precision conversions it needs.
 * Byte layouts follow ggml (Q8_0, Q4_0: blocks of 32 along the row) and llama2.c export.py
 * version 2 (q8_g: int8 values, one f32 scale per group of consecutive values).
 * Tensor bytes are little-endian, as is every host SEDAC runs on (x86-64, ARM).
 */
import { SedacError } from '../errors.js';
import { tensorByteSize } from './readerCommon.js';
import type { SourceTensor } from './source.js';

const scratch = new DataView(new ArrayBuffer(4));

/** IEEE binary16 bits → number, by rebuilding the binary32 bit pattern (exact for every input). */
export function f16ToF32(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exp = (h >>> 10) & 0x1f;
  let mant = h & 0x3ff;
  let bits: number;
  if (exp === 0x1f) {
    bits = sign | 0x7f800000 | (mant << 13); // inf / NaN (payload kept)
  } else if (exp !== 0) {
    bits = sign | ((exp - 15 + 127) << 23) | (mant << 13);
  } else if (mant === 0) {
    bits = sign; // ±0
  } else {
    // subnormal: shift the mantissa up until its leading 1 is the implicit bit
    let e = -14;
    while ((mant & 0x400) === 0) {
      mant <<= 1;
      e--;
    }
    bits = sign | ((e + 127) << 23) | ((mant & 0x3ff) << 13);
  }
  scratch.setUint32(0, bits >>> 0);
  return scratch.getFloat32(0);
}

/** number → IEEE binary16 bits, rounding to nearest even (overflow → ±inf, NaN stays NaN). */
export function f32ToF16(f: number): number {
  scratch.setFloat32(0, f);
  const x = scratch.getUint32(0);
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign; // below half the smallest subnormal: ±0
    const m = mant | 0x800000;
    const shift = 14 - e;
    let half = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rem > halfway || (rem === halfway && (half & 1) === 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (half & 1) === 1)) half++; // a carry into the exponent is correct
  return sign | half;
}

/** bfloat16 → float32 bytes: the bf16 bits are the high half of the f32 bits, so this is exact. */
export function widenBf16(src: Uint8Array): Uint8Array {
  const n = src.length / 2;
  const out = new Uint8Array(n * 4);
  for (let i = 0; i < n; i++) {
    out[i * 4 + 2] = src[i * 2]!;
    out[i * 4 + 3] = src[i * 2 + 1]!;
  }
  return out;
}

let f16Table: Float32Array | undefined;

/** All 65,536 half values, built once (256 KiB) for bulk conversion. */
function halfTable(): Float32Array {
  if (!f16Table) {
    f16Table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) f16Table[h] = f16ToF32(h);
  }
  return f16Table;
}

function numel(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** The tensor's values as float32, row-major in its shape. */
export function toFloat32(t: SourceTensor): Float32Array {
  const n = numel(t.shape);
  const expected = tensorByteSize(t.dtype, t.shape);
  if (t.data.length !== expected) {
    throw new SedacError('E_MODEL_FORMAT', `tensor ${t.name}: ${t.data.length} bytes of ${t.dtype} data for shape [${t.shape.join(', ')}], expected ${expected}`);
  }
  const out = new Float32Array(n);
  const src = t.data;
  const dv = new DataView(src.buffer, src.byteOffset, src.byteLength);
  switch (t.dtype) {
    case 'f32':
      new Uint8Array(out.buffer).set(src);
      break;
    case 'f16': {
      const table = halfTable();
      for (let i = 0; i < n; i++) out[i] = table[dv.getUint16(i * 2, true)]!;
      break;
    }
    case 'q8_0': {
      // block: fp16 scale d, then 32 int8 quants; value = q * d
      const table = halfTable();
      const q = new Int8Array(src.buffer, src.byteOffset, src.byteLength);
      for (let b = 0, off = 0; b < n / 32; b++, off += 34) {
        const d = table[dv.getUint16(off, true)]!;
        const base = b * 32;
        for (let j = 0; j < 32; j++) out[base + j] = q[off + 2 + j]! * d;
      }
      break;
    }
    case 'q4_0': {
      // block: fp16 scale d, then 16 bytes; low nibbles are elements 0..15, high nibbles 16..31;
      // value = (nibble - 8) * d
      const table = halfTable();
      for (let b = 0, off = 0; b < n / 32; b++, off += 18) {
        const d = table[dv.getUint16(off, true)]!;
        const base = b * 32;
        for (let j = 0; j < 16; j++) {
          const byte = src[off + 2 + j]!;
          out[base + j] = ((byte & 0x0f) - 8) * d;
          out[base + 16 + j] = ((byte >>> 4) - 8) * d;
        }
      }
      break;
    }
    case 'q8_g': {
      // llama2.c v2: groups of groupSize consecutive values in row-major order, one f32 scale each
      const gs = t.groupSize ?? 0;
      const scales = t.scales;
      if (!scales || gs <= 0 || n % gs !== 0 || scales.length !== n / gs) {
        throw new SedacError('E_MODEL_FORMAT', `tensor ${t.name}: q8_g needs ${gs > 0 ? n / gs : '?'} scales for group size ${gs}, got ${scales?.length ?? 0}`);
      }
      const q = new Int8Array(src.buffer, src.byteOffset, src.byteLength);
      for (let g = 0, i = 0; g < scales.length; g++) {
        const s = scales[g]!;
        for (let end = i + gs; i < end; i++) out[i] = q[i]! * s;
      }
      break;
    }
  }
  return out;
}
