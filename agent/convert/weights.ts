/**
 * Turning source tensors into ONNX initializers without inflating them: f32 stays f32, f16 stays
 * f16 (a Cast that ORT folds at load), ggml Q8_0 / Q4_0 and llama2.c Q8 groups become int8/uint4
 * blocks for com.microsoft MatMulNBits, which runs them with integer kernels on CPU.
 */
import { SedacError } from '../errors.js';
import { DType, GraphBuilder, rawOf } from './onnx.js';
import { f16ToF32, toFloat32 } from './dequant.js';
import type { SourceTensor } from './source.js';

const QK = 32;

/**
 * MatMulNBits accuracy_level 4: activations are quantized to int8 per block of the weight's block
 * size (symmetric, amax/127, as llama.cpp does for its Q8_0 dot products) and multiplied in int32 by
 * MLAS's prepacked CompInt8 kernels. Without it ORT 1.30 has no packed 8-bit kernel at all and
 * dequantizes the whole of B to f32 on every call (x4 Q8_0: ~850 us for a 512x1536 matrix at M=1
 * versus ~23 us with it). Where the CPU lacks the int8 kernels (arm64 without dot product, e.g.
 * Cortex-A72) ORT falls back to f32 activations by itself, so the attribute never breaks a graph.
 */
const INT8_ACTIVATIONS = 4;

function u16(t: SourceTensor): Uint16Array {
  return new Uint16Array(t.data.buffer, t.data.byteOffset, t.data.byteLength / 2);
}

function f32(t: SourceTensor): Float32Array {
  if (t.data.byteOffset % 4 === 0) return new Float32Array(t.data.buffer, t.data.byteOffset, t.data.byteLength / 4);
  return new Float32Array(new Uint8Array(t.data).buffer);
}

/** Symmetric int8 blocks along `in`: q (rows × in) and one scale per block, for any quantized dtype. */
export interface Int8Blocks {
  rows: number;
  cols: number;
  block: number;
  /** int8 values, row-major (rows, cols) */
  q: Int8Array;
  /** (rows, ceil(cols / block)) */
  scales: Float32Array;
}

export function toInt8Blocks(t: SourceTensor): Int8Blocks {
  const [rows, cols] = t.shape as [number, number];
  if (t.dtype === 'q8_g') {
    const block = t.groupSize ?? 0;
    if (!t.scales || block <= 0) throw new SedacError('E_MODEL_SHAPE', `${t.name}: q8 groups without scales`);
    if (cols % block !== 0) throw new SedacError('E_MODEL_SHAPE', `${t.name}: q8 groups of ${block} straddle rows of ${cols}`);
    return { rows, cols, block, q: new Int8Array(t.data.buffer, t.data.byteOffset, rows * cols), scales: t.scales };
  }
  if (cols % QK !== 0) throw new SedacError('E_MODEL_SHAPE', `${t.name}: ${t.dtype} row length ${cols} is not a multiple of ${QK}`);
  const nb = cols / QK;
  const q = new Int8Array(rows * cols);
  const scales = new Float32Array(rows * nb);
  const dv = new DataView(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  const blockBytes = t.dtype === 'q8_0' ? 2 + QK : t.dtype === 'q4_0' ? 2 + QK / 2 : 0;
  if (!blockBytes) throw new SedacError('E_MODEL_UNSUPPORTED', `${t.name}: ${t.dtype} is not a block-quantized type`);
  if (t.data.byteLength < rows * nb * blockBytes) throw new SedacError('E_MODEL_SHAPE', `${t.name}: data too short for ${rows}x${cols} ${t.dtype}`);
  for (let b = 0; b < rows * nb; b++) {
    const off = b * blockBytes;
    scales[b] = f16ToF32(dv.getUint16(off, true));
    const base = b * QK;
    if (t.dtype === 'q8_0') {
      for (let j = 0; j < QK; j++) q[base + j] = dv.getInt8(off + 2 + j);
    } else {
      // ggml Q4_0: byte j holds element j (low nibble) and element j+16 (high nibble), value q-8
      for (let j = 0; j < QK / 2; j++) {
        const byte = dv.getUint8(off + 2 + j);
        q[base + j] = (byte & 0x0f) - 8;
        q[base + j + QK / 2] = (byte >> 4) - 8;
      }
    }
  }
  return { rows, cols, block: QK, q, scales };
}

/** y = x · Wᵀ for a weight W of shape (out, in), in whatever form the source stored it. */
export function linear(g: GraphBuilder, x: string, w: SourceTensor, name: string): string {
  const [out, inn] = w.shape as [number, number];
  if (w.dtype === 'q8_g' && inn % (w.groupSize ?? 1) !== 0) {
    // llama2.c v2 groups run over the flattened tensor and can straddle rows, which no ORT kernel
    // expresses: such a tensor (e.g. a w2 with 172 columns and groups of 64) runs as f32, exactly.
    const f = toFloat32(w);
    return linear(g, x, { name: w.name, dtype: 'f32', shape: w.shape, data: new Uint8Array(f.buffer) }, name);
  }
  switch (w.dtype) {
    case 'f32': {
      const src = f32(w);
      const t = new Float32Array(inn * out); // (in, out)
      for (let o = 0; o < out; o++) for (let i = 0; i < inn; i++) t[i * out + o] = src[o * inn + i]!;
      return g.op('MatMul', [x, g.f32(name, [inn, out], t)]);
    }
    case 'f16': {
      const src = u16(w);
      const t = new Uint16Array(inn * out);
      for (let o = 0; o < out; o++) for (let i = 0; i < inn; i++) t[i * out + o] = src[o * inn + i]!;
      const wf = g.op('Cast', [g.initializer(name, DType.FLOAT16, [inn, out], rawOf(t))], { to: DType.FLOAT });
      return g.op('MatMul', [x, wf]);
    }
    case 'q8_0':
    case 'q8_g':
    case 'q4_0': {
      const b = toInt8Blocks(w);
      const bits = w.dtype === 'q4_0' ? 4 : 8;
      return matMulNBits(g, x, b, bits, name);
    }
  }
}

/** y = x · Wᵀ with W as uint8 blocks (out, in / block, block · bits / 8), zero point 128 / 8 implied. */
function matMulNBits(g: GraphBuilder, x: string, b: Int8Blocks, bits: 4 | 8, name: string): string {
  const nb = Math.ceil(b.cols / b.block);
  const blob = (b.block * bits) / 8;
  const packed = new Uint8Array(b.rows * nb * blob);
  const zero = bits === 8 ? 128 : 8;
  for (let r = 0; r < b.rows; r++) {
    for (let k = 0; k < b.cols; k++) {
      const v = b.q[r * b.cols + k]! + zero;
      const blk = Math.floor(k / b.block);
      const within = k % b.block;
      const base = (r * nb + blk) * blob;
      if (bits === 8) packed[base + within] = v;
      else packed[base + (within >> 1)]! |= (within & 1 ? v << 4 : v) & 0xff;
    }
  }
  const B = g.initializer(`${name}.q`, DType.UINT8, [b.rows, nb, blob], packed);
  const S = g.f32(`${name}.scales`, [b.rows * nb], b.scales);
  return g.op('MatMulNBits', [x, B, S], { K: b.cols, N: b.rows, bits, block_size: b.block, accuracy_level: INT8_ACTIVATIONS }, 'com.microsoft');
}

/** A 1-D f32 vector (norm weights) from any float source. */
export function vectorF32(t: SourceTensor): Float32Array {
  if (t.dtype === 'f32') return f32(t).slice();
  if (t.dtype === 'f16') return Float32Array.from(u16(t), f16ToF32);
  throw new SedacError('E_MODEL_UNSUPPORTED', `${t.name}: vector stored as ${t.dtype}`);
}

/** Embedding lookup: `ids` (int64 [1, S]) → hidden (f32 [1, S, dim]); quantized tables stay int8. */
export function embedding(g: GraphBuilder, ids: string, t: SourceTensor, name: string): string {
  const [vocab, dim] = t.shape as [number, number];
  if (t.dtype === 'f32') return g.op('Gather', [g.f32(name, [vocab, dim], f32(t)), ids]);
  if (t.dtype === 'f16') {
    const table = g.initializer(name, DType.FLOAT16, [vocab, dim], t.data);
    return g.op('Cast', [g.op('Gather', [table, ids])], { to: DType.FLOAT });
  }
  const b = toInt8Blocks(t);
  const nb = dim / b.block;
  const q = g.initializer(`${name}.q`, DType.INT8, [vocab, nb, b.block], rawOf(b.q));
  const s = g.f32(`${name}.scales`, [vocab, nb, 1], b.scales);
  const rows = g.op('Cast', [g.op('Gather', [q, ids])], { to: DType.FLOAT }); // (1, S, nb, block)
  const scaled = g.op('Mul', [rows, g.op('Gather', [s, ids])]);
  return g.op('Reshape', [scaled, g.i64(`${name}.shape`, [1, -1, dim])]);
}
