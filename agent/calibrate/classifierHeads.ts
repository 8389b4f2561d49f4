/**
 * Training the per-layer exit heads of a classifier by distillation (DeeBERT / FastBERT style):
 * each head learns to reproduce the full model's class distribution from one layer's features,
 * with the gold label mixed in when the data has one:
 *
 *   target = (1 − λ)·softmax(full logits) + λ·onehot(label)      loss = CE(target, head)  (= KL + const)
 *
 * Plain TypeScript: Adam on mini-batches, features standardized during training and the
 * standardization folded into the first layer afterwards, so the engine sees an ordinary head.
 */
import { prng } from '../engine/sampling.js';
import { headProbs, type ExitHead } from '../engine/classifierExit.js';

/** Weight of the gold label in the distillation target when the data has labels. */
export const DEFAULT_LABEL_WEIGHT = 0.1;

export interface HeadTrainOptions {
  /** tanh hidden units; 0 = linear head. Default 0 */
  hidden?: number;
  /** passes over the data; default 40 */
  epochs?: number;
  /** mini-batch size; default 64 */
  batch?: number;
  /** Adam step size; default 0.003 */
  lr?: number;
  /** L2 weight decay (decoupled); default 1e-4 */
  weightDecay?: number;
  /** weight λ of the gold label in the target; default 0.1 (0 = pure distillation) */
  labelWeight?: number;
  /** PRNG seed for init and shuffling; default 1 */
  seed?: number;
}

export interface HeadTrainResult {
  head: ExitHead;
  /** mean KL(full ‖ head) on the training data after training, nats */
  kl: number;
  /** agreement of the head's argmax with the full model's on the training data */
  agreement: number;
}

/** The seeded PRNG shared with sampling (mulberry32). */
export const rng = prng;

function gauss(r: () => number): number {
  return Math.sqrt(-2 * Math.log(r() + 1e-12)) * Math.cos(2 * Math.PI * r());
}

/** Adam state for one parameter array. */
class Param {
  readonly m: Float64Array;
  readonly v: Float64Array;
  readonly g: Float64Array;
  constructor(readonly w: Float64Array, readonly decay: boolean) {
    this.m = new Float64Array(w.length);
    this.v = new Float64Array(w.length);
    this.g = new Float64Array(w.length);
  }
  step(lr: number, t: number, wd: number): void {
    const b1 = 0.9, b2 = 0.999, eps = 1e-8;
    const c1 = 1 - b1 ** t, c2 = 1 - b2 ** t;
    for (let i = 0; i < this.w.length; i++) {
      const g = this.g[i]!;
      this.m[i] = b1 * this.m[i]! + (1 - b1) * g;
      this.v[i] = b2 * this.v[i]! + (1 - b2) * g * g;
      this.w[i] = this.w[i]! - lr * ((this.m[i]! / c1) / (Math.sqrt(this.v[i]! / c2) + eps) + (this.decay ? wd * this.w[i]! : 0));
      this.g[i] = 0;
    }
  }
}

/**
 * Train one head. x: (n, inDim) features; teacher: (n, C) full-model logits; labels: gold class per
 * row or -1 when unknown.
 */
export function trainHead(x: Float32Array, inDim: number, teacher: Float32Array, labels: Int32Array | undefined, opts: HeadTrainOptions = {}): HeadTrainResult {
  const C = teacher.length / (x.length / inDim);
  const n = x.length / inDim;
  const H = opts.hidden ?? 0;
  const epochs = opts.epochs ?? 40;
  const B = opts.batch ?? 64;
  const lr0 = opts.lr ?? 0.003;
  const wd = opts.weightDecay ?? 1e-4;
  const lam = opts.labelWeight ?? DEFAULT_LABEL_WEIGHT;
  const r = rng(opts.seed ?? 1);

  // standardize features: z = (x − μ) / σ
  const mu = new Float64Array(inDim), sd = new Float64Array(inDim);
  for (let i = 0; i < n; i++) for (let j = 0; j < inDim; j++) mu[j] = mu[j]! + x[i * inDim + j]! / n;
  for (let i = 0; i < n; i++) for (let j = 0; j < inDim; j++) sd[j] = sd[j]! + (x[i * inDim + j]! - mu[j]!) ** 2 / n;
  for (let j = 0; j < inDim; j++) sd[j] = Math.sqrt(sd[j]!) + 1e-6;
  const z = new Float64Array(n * inDim);
  for (let i = 0; i < n; i++) for (let j = 0; j < inDim; j++) z[i * inDim + j] = (x[i * inDim + j]! - mu[j]!) / sd[j]!;

  // targets: mixture of the teacher's distribution and the gold label
  const target = new Float64Array(n * C);
  for (let i = 0; i < n; i++) {
    const row = softmax(teacher.subarray(i * C, (i + 1) * C));
    const y = labels?.[i] ?? -1;
    const l = y >= 0 && y < C ? lam : 0;
    for (let c = 0; c < C; c++) target[i * C + c] = (1 - l) * row[c]! + (c === y ? l : 0);
  }

  const top = H > 0 ? H : inDim;
  const w1 = new Param(Float64Array.from({ length: H * inDim }, () => gauss(r) / Math.sqrt(inDim)), true);
  const b1 = new Param(new Float64Array(H), false);
  const w2 = new Param(Float64Array.from({ length: C * top }, () => (H > 0 ? gauss(r) / Math.sqrt(top) : 0)), true);
  const b2 = new Param(new Float64Array(C), false);
  const params = H > 0 ? [w1, b1, w2, b2] : [w2, b2];

  const act = new Float64Array(H);
  const p = new Float64Array(C);
  const order = Array.from({ length: n }, (_, i) => i);
  const steps = epochs * Math.ceil(n / B);
  let t = 0;
  for (let ep = 0; ep < epochs; ep++) {
    for (let i = n - 1; i > 0; i--) {
      const j = Math.floor(r() * (i + 1));
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    for (let s = 0; s < n; s += B) {
      const rows = order.slice(s, s + B);
      for (const i of rows) {
        const xi = z.subarray(i * inDim, (i + 1) * inDim);
        const inp = H > 0 ? hiddenForward(w1.w, b1.w, xi, inDim, H, act) : xi;
        logits(w2.w, b2.w, inp, top, C, p);
        softmaxInPlace(p);
        for (let c = 0; c < C; c++) {
          const dz = (p[c]! - target[i * C + c]!) / rows.length;
          b2.g[c] = b2.g[c]! + dz;
          for (let k = 0; k < top; k++) w2.g[c * top + k] = w2.g[c * top + k]! + dz * inp[k]!;
        }
        if (H > 0) {
          for (let k = 0; k < H; k++) {
            let da = 0;
            for (let c = 0; c < C; c++) da += ((p[c]! - target[i * C + c]!) / rows.length) * w2.w[c * top + k]!;
            const dpre = da * (1 - act[k]! * act[k]!);
            b1.g[k] = b1.g[k]! + dpre;
            for (let j = 0; j < inDim; j++) w1.g[k * inDim + j] = w1.g[k * inDim + j]! + dpre * xi[j]!;
          }
        }
      }
      t++;
      const lr = lr0 * 0.5 * (1 + Math.cos((Math.PI * t) / steps)); // cosine decay
      for (const q of params) q.step(lr, t, wd);
    }
  }

  // fold the standardization into the first layer: W·((x − μ)/σ) + b = (W/σ)·x + (b − W·(μ/σ))
  const fold = (w: Float64Array, b: Float64Array, rowsN: number): [Float32Array, Float32Array] => {
    const wf = new Float32Array(rowsN * inDim), bf = new Float32Array(rowsN);
    for (let o = 0; o < rowsN; o++) {
      let shift = b[o]!;
      for (let j = 0; j < inDim; j++) {
        wf[o * inDim + j] = w[o * inDim + j]! / sd[j]!;
        shift -= (w[o * inDim + j]! * mu[j]!) / sd[j]!;
      }
      bf[o] = shift;
    }
    return [wf, bf];
  };
  let head: ExitHead;
  if (H > 0) {
    const [fw1, fb1] = fold(w1.w, b1.w, H);
    head = { inDim, hidden: H, classes: C, w1: fw1, b1: fb1, w2: Float32Array.from(w2.w), b2: Float32Array.from(b2.w) };
  } else {
    const [fw2, fb2] = fold(w2.w, b2.w, C);
    head = { inDim, hidden: 0, classes: C, w1: new Float32Array(0), b1: new Float32Array(0), w2: fw2, b2: fb2 };
  }
  const { kl, agreement } = evaluateHead(head, x, teacher);
  return { head, kl, agreement };
}

function hiddenForward(w: Float64Array, b: Float64Array, x: Float64Array, inDim: number, H: number, out: Float64Array): Float64Array {
  for (let k = 0; k < H; k++) {
    let s = b[k]!;
    for (let j = 0; j < inDim; j++) s += w[k * inDim + j]! * x[j]!;
    out[k] = Math.tanh(s);
  }
  return out;
}

function logits(w: Float64Array, b: Float64Array, x: Float64Array, inDim: number, C: number, out: Float64Array): void {
  for (let c = 0; c < C; c++) {
    let s = b[c]!;
    for (let j = 0; j < inDim; j++) s += w[c * inDim + j]! * x[j]!;
    out[c] = s;
  }
}

function softmaxInPlace(p: Float64Array): void {
  let m = -Infinity;
  for (const v of p) m = Math.max(m, v);
  let s = 0;
  for (let i = 0; i < p.length; i++) s += p[i] = Math.exp(p[i]! - m);
  for (let i = 0; i < p.length; i++) p[i] = p[i]! / s;
}

export function softmax(z: ArrayLike<number>): Float64Array {
  const p = Float64Array.from(z as ArrayLike<number>);
  softmaxInPlace(p);
  return p;
}

/** Mean KL(full ‖ head) and argmax agreement of a trained head on (x, teacher). */
export function evaluateHead(head: ExitHead, x: Float32Array, teacher: Float32Array): { kl: number; agreement: number } {
  const C = head.classes;
  const n = x.length / head.inDim;
  const p = new Float64Array(C);
  const hid = new Float64Array(head.hidden);
  let kl = 0, agree = 0;
  for (let i = 0; i < n; i++) {
    headProbs(head, x.subarray(i * head.inDim, (i + 1) * head.inDim), p, hid);
    const q = softmax(teacher.subarray(i * C, (i + 1) * C));
    for (let c = 0; c < C; c++) if (q[c]! > 0) kl += (q[c]! * Math.log(q[c]! / Math.max(p[c]!, 1e-300))) / n;
    if (argmaxOf(p) === argmaxOf(q)) agree++;
  }
  return { kl, agreement: agree / n };
}

function argmaxOf(p: ArrayLike<number>): number {
  let b = 0;
  for (let i = 1; i < p.length; i++) if (p[i]! > p[b]!) b = i;
  return b;
}
