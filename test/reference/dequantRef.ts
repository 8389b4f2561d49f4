/**
 * Dequantization for the reference forward pass, written from the ggml block layouts and kept
 * separate from agent/convert/dequant.ts on purpose: the reference must not share code with the
 * converter it is used to check.
 *
 * Layouts (little-endian): f32 4 bytes/value; f16 IEEE half; q8_0 blocks of 32 values = fp16 scale d
 * + 32 int8 q, value = d*q; q4_0 blocks of 32 values = fp16 scale d + 16 bytes, byte j holds value j
 * in its low nibble and value j+16 in its high nibble, value = d*(nibble-8); q8_g (llama2.c v2) int8
 * values with one f32 scale per `groupSize` consecutive values.
 */
import type { SourceTensor } from '../../agent/convert/source.js';

/** IEEE 754 half → number (subnormals, infinities and NaN included). */
export function halfToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac === 0 ? sign * Infinity : NaN;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

function elementCount(t: SourceTensor): number {
  return t.shape.reduce((a, b) => a * b, 1);
}

/** All values of a source tensor as f32, row-major in the tensor's `shape`. */
export function dequantizeRef(t: SourceTensor): Float32Array {
  const n = elementCount(t);
  const out = new Float32Array(n);
  const view = new DataView(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  const need = (bytes: number): void => {
    if (t.data.byteLength < bytes) {
      throw new Error(`reference dequant: tensor ${t.name} (${t.dtype}, shape [${t.shape.join(', ')}]) has ${t.data.byteLength} bytes, needs ${bytes}`);
    }
  };
  switch (t.dtype) {
    case 'f32':
      need(n * 4);
      for (let i = 0; i < n; i++) out[i] = view.getFloat32(i * 4, true);
      return out;
    case 'f16':
      need(n * 2);
      for (let i = 0; i < n; i++) out[i] = halfToNumber(view.getUint16(i * 2, true));
      return out;
    case 'q8_0': {
      if (n % 32 !== 0) throw new Error(`reference dequant: q8_0 tensor ${t.name} has ${n} values, not a multiple of 32`);
      need((n / 32) * 34);
      for (let b = 0; b < n / 32; b++) {
        const base = b * 34;
        const d = halfToNumber(view.getUint16(base, true));
        for (let j = 0; j < 32; j++) out[b * 32 + j] = d * view.getInt8(base + 2 + j);
      }
      return out;
    }
    case 'q4_0': {
      if (n % 32 !== 0) throw new Error(`reference dequant: q4_0 tensor ${t.name} has ${n} values, not a multiple of 32`);
      need((n / 32) * 18);
      for (let b = 0; b < n / 32; b++) {
        const base = b * 18;
        const d = halfToNumber(view.getUint16(base, true));
        for (let j = 0; j < 16; j++) {
          const byte = view.getUint8(base + 2 + j);
          out[b * 32 + j] = d * ((byte & 0x0f) - 8);
          out[b * 32 + j + 16] = d * ((byte >> 4) - 8);
        }
      }
      return out;
    }
    case 'q8_g': {
      const g = t.groupSize;
      const scales = t.scales;
      if (!g || !scales) throw new Error(`reference dequant: q8_g tensor ${t.name} lacks scales or groupSize`);
      if (n % g !== 0 || scales.length < n / g) {
        throw new Error(`reference dequant: q8_g tensor ${t.name} has ${n} values, group ${g}, ${scales.length} scales`);
      }
      need(n);
      for (let i = 0; i < n; i++) out[i] = view.getInt8(i) * (scales[Math.floor(i / g)] as number);
      return out;
    }
  }
}
