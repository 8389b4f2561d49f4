/**
 * The affine lens: a per-layer map h_l ↦ A·h_l + b fitted by closed-form ridge regression onto the
 * final hidden state, so an early exit reads the layer "in the final layer's language" (tuned lens).
 * The Gram matrices run on onnxruntime (one MatMul each); the small (d+1)² solve is Cholesky in JS.
 */
import { DType, GraphBuilder } from '../convert/onnx.js';
import type { AffineLens } from '../convert/llamaGraphs.js';
import { Session, f32, floats } from '../engine/ort.js';
import { SedacError } from '../errors.js';

async function gram(x1: Float32Array, y: Float32Array, n: number, d: number): Promise<{ g: Float32Array; c: Float32Array }> {
  const b = new GraphBuilder('gram');
  b.input('x', DType.FLOAT, [n, d + 1]);
  b.input('y', DType.FLOAT, [n, d]);
  const xt = b.op('Transpose', ['x'], { perm: [1, 0] });
  b.op('MatMul', [xt, 'x'], {}, '', 'g');
  b.op('MatMul', [xt, 'y'], {}, '', 'c');
  b.output('g', DType.FLOAT, [d + 1, d + 1]);
  b.output('c', DType.FLOAT, [d + 1, d]);
  const s = await Session.load(b.toBytes(), 'gram', { threads: 1 });
  try {
    const out = await s.run({ x: f32(x1, [n, d + 1]), y: f32(y, [n, d]) });
    return { g: floats(out.g, 'gram'), c: floats(out.c, 'cross') };
  } finally {
    await s.release();
  }
}

/** Solve (G + λI)·W = C for symmetric positive definite G (m×m), C (m×k), in float64. */
export function choleskySolve(g: Float64Array, c: Float64Array, m: number, k: number): Float64Array {
  const L = new Float64Array(m * m);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j <= i; j++) {
      let s = g[i * m + j]!;
      for (let p = 0; p < j; p++) s -= L[i * m + p]! * L[j * m + p]!;
      if (i === j) {
        if (!(s > 0)) throw new SedacError('E_INTERNAL', 'ridge system is not positive definite');
        L[i * m + i] = Math.sqrt(s);
      } else L[i * m + j] = s / L[j * m + j]!;
    }
  }
  const w = new Float64Array(m * k);
  for (let col = 0; col < k; col++) {
    const z = new Float64Array(m);
    for (let i = 0; i < m; i++) {
      let s = c[i * k + col]!;
      for (let p = 0; p < i; p++) s -= L[i * m + p]! * z[p]!;
      z[i] = s / L[i * m + i]!;
    }
    for (let i = m - 1; i >= 0; i--) {
      let s = z[i]!;
      for (let p = i + 1; p < m; p++) s -= L[p * m + i]! * w[p * k + col]!;
      w[i * k + col] = s / L[i * m + i]!;
    }
  }
  return w;
}

/**
 * Ridge regression y ≈ A·x + b over n rows of dimension d. `lambda` is relative to the mean
 * diagonal of XᵀX (scale-free); the bias is not penalized.
 */
export async function fitAffineLens(x: Float32Array, y: Float32Array, n: number, d: number, lambda = 1e-3): Promise<AffineLens> {
  const m = d + 1;
  const x1 = new Float32Array(n * m);
  for (let i = 0; i < n; i++) {
    x1.set(x.subarray(i * d, (i + 1) * d), i * m);
    x1[i * m + d] = 1;
  }
  const { g, c } = await gram(x1, y, n, d);
  const G = Float64Array.from(g);
  let trace = 0;
  for (let i = 0; i < d; i++) trace += G[i * m + i]!;
  const reg = (lambda * trace) / d + 1e-9;
  for (let i = 0; i < d; i++) G[i * m + i]! += reg;
  const w = choleskySolve(G, Float64Array.from(c), m, d); // (d+1, d): rows = inputs (+ bias row)
  const weight = new Float32Array(d * d); // [out, in]
  const bias = new Float32Array(d);
  for (let o = 0; o < d; o++) {
    for (let i = 0; i < d; i++) weight[o * d + i] = w[i * d + o]!;
    bias[o] = w[d * d + o]!;
  }
  return { weight, bias };
}
