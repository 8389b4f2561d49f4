/**
 * linear() on quantized weights, run by ORT, against an independent model of the arithmetic: Q8_0,
 * Q4_0 and llama2.c int8 groups become MatMulNBits with int8 activations (accuracy_level 4), which
 * must equal the input rounded to int8 per weight block (test/reference/llamaRef.ts int8Blocks) times
 * the weights as dequantRef.ts reads them, to 1e-5 of the output's scale. A CPU whose ORT lacks the
 * int8 kernels (arm64 without dot product) runs f32 activations and must equal the plain product.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DType, GraphBuilder } from '../../agent/convert/onnx.js';
import type { SourceTensor } from '../../agent/convert/source.js';
import { linear } from '../../agent/convert/weights.js';
import { f32, Session } from '../../agent/engine/ort.js';
import { dequantizeRef } from '../reference/dequantRef.js';
import { int8Blocks } from '../reference/llamaRef.js';

const K = 256;
const N = 48;
const TOL = 1e-5;

/** Deterministic pseudo-random numbers in [0, 1). */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
}

/** A half-precision scale in [2^-8, 2^-7): exponent 7, random mantissa. */
function halfScale(r: () => number): number {
  return (7 << 10) | Math.floor(r() * 1024);
}

/** ggml blocks of 32 along each row: fp16 scale, then 32 int8 (Q8_0) or 16 nibble-pair bytes (Q4_0). */
function ggmlTensor(dtype: 'q8_0' | 'q4_0', r: () => number): SourceTensor {
  const blockBytes = dtype === 'q8_0' ? 34 : 18;
  const data = new Uint8Array((N * K * blockBytes) / 32);
  const dv = new DataView(data.buffer);
  for (let off = 0; off < data.length; off += blockBytes) {
    dv.setUint16(off, halfScale(r), true);
    for (let j = 2; j < blockBytes; j++) data[off + j] = Math.floor(r() * 256);
  }
  return { name: `w.${dtype}`, dtype, shape: [N, K], data };
}

/** llama2.c v2 groups of 64: int8 values with one f32 scale per group. */
function q8Groups(r: () => number): SourceTensor {
  const data = Uint8Array.from({ length: N * K }, () => Math.floor(r() * 255) + 1); // int8 -127..127
  const scales = Float32Array.from({ length: (N * K) / 64 }, () => 0.004 + r() * 0.004);
  return { name: 'w.q8_g', dtype: 'q8_g', shape: [N, K], data, scales, groupSize: 64 };
}

/** x (M, K) · Wᵀ in float64, x rounded to int8 blocks first when `block` > 0. */
function expected(x: Float32Array, M: number, w: Float32Array, block: number): Float64Array {
  const out = new Float64Array(M * N);
  for (let m = 0; m < M; m++) {
    const row = Float64Array.from(x.subarray(m * K, (m + 1) * K));
    const xr = block ? int8Blocks(row, K, block) : row;
    for (let n = 0; n < N; n++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += xr[k]! * w[n * K + k]!;
      out[m * N + n] = s;
    }
  }
  return out;
}

/** max |a - b| relative to max |b|. */
function relErr(a: Float32Array, b: Float64Array): number {
  let err = 0;
  let scale = 0;
  for (let i = 0; i < b.length; i++) {
    err = Math.max(err, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(b[i]!));
  }
  return err / scale;
}

async function runLinear(w: SourceTensor, x: Float32Array, M: number): Promise<Float32Array> {
  const g = new GraphBuilder('linear');
  const input = g.input('x', DType.FLOAT, [1, M, K]);
  g.alias(linear(g, input, w, 'w'), 'y');
  g.output('y', DType.FLOAT, [1, M, N]);
  const s = await Session.load(g.toBytes(), 'linear');
  try {
    return (await s.run({ x: f32(x, [1, M, K]) })).y!.data as Float32Array;
  } finally {
    await s.release();
  }
}

describe('linear() on quantized weights = int8-block activations × dequantized weights', () => {
  const cases: [string, (r: () => number) => SourceTensor, number][] = [
    ['Q8_0', (r) => ggmlTensor('q8_0', r), 32],
    ['Q4_0', (r) => ggmlTensor('q4_0', r), 32],
    ['llama2.c int8 groups of 64', q8Groups, 64],
  ];
  for (const [name, make, block] of cases) {
    for (const M of [1, 5]) {
      it(`${name}, ${M} row${M > 1 ? 's' : ''}`, async (t) => {
        const r = rng(block * 31 + M);
        const w = make(r);
        // activations with a few large entries, as after RMSNorm, so that blocks get different scales
        const x = Float32Array.from({ length: M * K }, (_, i) => (r() * 2 - 1) * (i % 29 === 0 ? 12 : 1));
        const y = await runLinear(w, x, M);
        const wf = dequantizeRef(w);
        const int8 = relErr(y, expected(x, M, wf, block));
        const plain = relErr(y, expected(x, M, wf, 0));
        t.diagnostic(`relative error: ${int8.toExponential(2)} against int8 activations, ${plain.toExponential(2)} against f32 ones`);
        assert.ok(int8 < TOL || plain < TOL, `neither model fits: ${int8.toExponential(3)} (int8), ${plain.toExponential(3)} (f32)`);
        if (process.arch === 'x64') assert.ok(int8 < TOL, 'x86-64 ORT has int8 MatMulNBits kernels: activations must be int8');
      });
    }
  }
});
