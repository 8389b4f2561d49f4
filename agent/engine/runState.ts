/**
 * Per-request state of a decoder: how many positions are cached, and the cache.
 *
 * The KV cache is one buffer per layer and K/V, (kv_heads, capacity, kv_head_dim), fed to the
 * graphs without a copy; each call returns only the rows it wrote (`new_kv`), which are copied in
 * here. Capacity doubles on demand up to the model's context.
 */
import { IO } from '../convert/llamaGraphs.js';
import { SedacError } from '../errors.js';
import { type Feeds, type OrtTensor, f32, floats } from './ort.js';

export interface KvDims {
  nLayers: number;
  nKvHeads: number;
  kvHeadDim: number;
  maxSeqLen: number;
}

export class KvCache {
  /** rows each buffer holds */
  capacity: number;
  keys: Float32Array[]; // (layer) → (kv_heads, capacity, kv_head_dim)
  values: Float32Array[]; // (layer) → (kv_heads, capacity, kv_head_dim)
  private views: [OrtTensor, OrtTensor][] = []; // (layer) → tensors over the buffers

  constructor(
    private readonly d: KvDims,
    initial = 64,
  ) {
    this.capacity = Math.min(d.maxSeqLen, initial);
    this.keys = [];
    this.values = [];
    this.allocate(this.capacity, 0);
  }

  private allocate(capacity: number, keepRows: number): void {
    const { nLayers, nKvHeads: H, kvHeadDim: hd } = this.d;
    const grow = (old: Float32Array | undefined) => {
      const buf = new Float32Array(H * capacity * hd);
      if (old && keepRows > 0) for (let h = 0; h < H; h++) buf.set(old.subarray(h * this.capacity * hd, (h * this.capacity + keepRows) * hd), h * capacity * hd);
      return buf;
    };
    this.keys = Array.from({ length: nLayers }, (_, l) => grow(this.keys[l]));
    this.values = Array.from({ length: nLayers }, (_, l) => grow(this.values[l]));
    this.capacity = capacity;
    this.views = this.keys.map((k, l) => [f32(k, [1, H, capacity, hd]), f32(this.values[l]!, [1, H, capacity, hd])]);
  }

  /** Make room for `total` positions (keeping the first `keep` rows). */
  ensure(total: number, keep: number): void {
    if (total <= this.capacity) return;
    if (total > this.d.maxSeqLen) throw new SedacError('E_INPUT', `${total} tokens exceed the model's context of ${this.d.maxSeqLen}`);
    this.allocate(Math.min(this.d.maxSeqLen, Math.max(total, this.capacity * 2)), keep);
  }

  /** past_key.l / past_value.l for layers [from, to). */
  feeds(from: number, to: number, into: Feeds): Feeds {
    for (let l = from; l < to; l++) {
      into[IO.pastKey(l)] = this.views[l]![0];
      into[IO.pastValue(l)] = this.views[l]![1];
    }
    return into;
  }

  /** Copy a call's `new_kv` (2·(to-from), kv_heads, n, kv_head_dim) into rows [at, at+n). */
  store(out: Feeds, from: number, to: number, at: number, n: number): void {
    const rows = floats(out[IO.newKv], 'new_kv');
    const { nKvHeads: H, kvHeadDim: hd } = this.d;
    const cap = this.capacity;
    for (let l = from; l < to; l++) {
      for (let kv = 0; kv < 2; kv++) {
        const dst = kv === 0 ? this.keys[l]! : this.values[l]!;
        const base = ((l - from) * 2 + kv) * H * n * hd;
        for (let h = 0; h < H; h++) dst.set(rows.subarray(base + h * n * hd, base + (h + 1) * n * hd), (h * cap + at) * hd);
      }
    }
  }

  /** The first n rows of layer l's K (or V), contiguous (kv_heads, n, kv_head_dim): for tests. */
  rows(l: number, which: 'k' | 'v', n: number): Float32Array {
    const { nKvHeads: H, kvHeadDim: hd } = this.d;
    const src = which === 'k' ? this.keys[l]! : this.values[l]!;
    const out = new Float32Array(H * n * hd);
    for (let h = 0; h < H; h++) out.set(src.subarray(h * this.capacity * hd, (h * this.capacity + n) * hd), h * n * hd);
    return out;
  }
}

export class RunState {
  /** tokens already in the KV cache */
  pos = 0;
  readonly kv: KvCache;

  /** A fresh state, or one sharing another's cache (speculative drafts, cost probes). */
  constructor(dims: KvDims, share?: RunState) {
    this.kv = share?.kv ?? new KvCache(dims);
    if (share) this.pos = share.pos;
  }
}
