/**
 * An independent float64 reference forward pass for HF BERT / DistilBERT sequence classifiers,
 * written from the HF modeling code's equations (not from SEDAC's converter): it reads the
 * safetensors file itself and computes logits for given ids. Its own check is the README's golden
 * logits of moderation-bert-6L (test/classify/reference.test.ts).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

type Tensors = Map<string, { shape: number[]; data: Float64Array }>;

function halfToFloat(h: number): number {
  const e = (h >> 10) & 0x1f, m = h & 0x3ff, s = h & 0x8000 ? -1 : 1;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

export function readTensors(path: string): Tensors {
  const buf = readFileSync(path);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const out: Tensors = new Map();
  for (const [name, t] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const bytes = buf.subarray(8 + n + t.data_offsets[0], 8 + n + t.data_offsets[1]);
    const count = t.shape.reduce((a, b) => a * b, 1);
    const data = new Float64Array(count);
    for (let i = 0; i < count; i++) {
      if (t.dtype === 'F32') data[i] = bytes.readFloatLE(i * 4);
      else if (t.dtype === 'F16') data[i] = halfToFloat(bytes.readUInt16LE(i * 2));
      else if (t.dtype === 'BF16') data[i] = new Float32Array(new Uint32Array([bytes.readUInt16LE(i * 2) << 16]).buffer)[0]!;
    }
    out.set(name, { shape: t.shape, data });
  }
  return out;
}

/** erf by its Maclaurin series (|x| < 4; beyond, erf = ±1 within 2e-8). */
export function erf(x: number): number {
  if (Math.abs(x) >= 4) return Math.sign(x);
  let sum = 0, term = x;
  for (let n = 0; n < 200; n++) {
    const add = term / (2 * n + 1);
    sum += add;
    if (Math.abs(add) < 1e-17) break;
    term *= (-x * x) / (n + 1);
  }
  return (2 / Math.sqrt(Math.PI)) * sum;
}

type Mat = Float64Array[]; // rows

function linear(x: Mat, w: { shape: number[]; data: Float64Array }, b: { data: Float64Array }): Mat {
  const [out, inn] = w.shape as [number, number];
  return x.map((row) => {
    const y = new Float64Array(out);
    for (let o = 0; o < out; o++) {
      let s = b.data[o]!;
      for (let i = 0; i < inn; i++) s += w.data[o * inn + i]! * row[i]!;
      y[o] = s;
    }
    return y;
  });
}

function layerNorm(x: Mat, g: { data: Float64Array }, b: { data: Float64Array }, eps: number): Mat {
  return x.map((row) => {
    const mean = row.reduce((a, v) => a + v, 0) / row.length;
    const v = row.reduce((a, x) => a + (x - mean) ** 2, 0) / row.length;
    return row.map((x, i) => ((x - mean) / Math.sqrt(v + eps)) * g.data[i]! + b.data[i]!);
  });
}

const add = (a: Mat, b: Mat): Mat => a.map((r, i) => r.map((v, j) => v + b[i]![j]!));

export interface RefModel {
  kind: 'bert' | 'distilbert';
  dir: string;
}

/** Logits for one sequence (ids, type ids, all tokens attended unless `mask` says 0). */
export function refLogits(dir: string, ids: number[], typeIds?: number[], mask?: number[]): number[] {
  const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
  const T = readTensors(join(dir, 'model.safetensors'));
  const distil = cfg.model_type === 'distilbert';
  const pre = distil ? 'distilbert.' : 'bert.';
  const get = (n: string) => {
    const t = T.get(pre + n) ?? T.get(n) ?? T.get(pre + n.replace(/weight$/, 'gamma').replace(/bias$/, 'beta'));
    if (!t) throw new Error(`reference: tensor ${n} missing`);
    return t;
  };
  const d = Number(distil ? cfg.dim : cfg.hidden_size);
  const nHeads = Number(distil ? cfg.n_heads : cfg.num_attention_heads);
  const nLayers = Number(distil ? cfg.n_layers : cfg.num_hidden_layers);
  const eps = distil ? 1e-12 : Number(cfg.layer_norm_eps ?? 1e-12);
  const act = String((distil ? cfg.activation : cfg.hidden_act) ?? 'gelu');
  const S = ids.length;
  const m = mask ?? ids.map(() => 1);
  // embeddings
  const word = get('embeddings.word_embeddings.weight'), pos = get('embeddings.position_embeddings.weight');
  const typ = distil ? undefined : get('embeddings.token_type_embeddings.weight');
  let h: Mat = ids.map((id, t) => {
    const r = new Float64Array(d);
    for (let j = 0; j < d; j++) r[j] = word.data[id * d + j]! + pos.data[t * d + j]! + (typ ? typ.data[(typeIds?.[t] ?? 0) * d + j]! : 0);
    return r;
  });
  h = layerNorm(h, get('embeddings.LayerNorm.weight'), get('embeddings.LayerNorm.bias'), eps);
  const hd = d / nHeads;
  for (let l = 0; l < nLayers; l++) {
    const p = distil ? `transformer.layer.${l}.` : `encoder.layer.${l}.`;
    const n = (bert: string, db: string) => p + (distil ? db : bert);
    const q = linear(h, get(n('attention.self.query.weight', 'attention.q_lin.weight')), get(n('attention.self.query.bias', 'attention.q_lin.bias')));
    const k = linear(h, get(n('attention.self.key.weight', 'attention.k_lin.weight')), get(n('attention.self.key.bias', 'attention.k_lin.bias')));
    const v = linear(h, get(n('attention.self.value.weight', 'attention.v_lin.weight')), get(n('attention.self.value.bias', 'attention.v_lin.bias')));
    const ctx: Mat = h.map(() => new Float64Array(d));
    for (let head = 0; head < nHeads; head++) {
      for (let i = 0; i < S; i++) {
        const sc = new Float64Array(S);
        for (let j = 0; j < S; j++) {
          let s = 0;
          for (let c = 0; c < hd; c++) s += q[i]![head * hd + c]! * k[j]![head * hd + c]!;
          sc[j] = m[j] ? s / Math.sqrt(hd) : -Infinity;
        }
        const mx = Math.max(...sc);
        const e = sc.map((x) => Math.exp(x - mx));
        const z = e.reduce((a, b) => a + b, 0);
        for (let j = 0; j < S; j++) for (let c = 0; c < hd; c++) ctx[i]![head * hd + c]! += (e[j]! / z) * v[j]![head * hd + c]!;
      }
    }
    const ao = linear(ctx, get(n('attention.output.dense.weight', 'attention.out_lin.weight')), get(n('attention.output.dense.bias', 'attention.out_lin.bias')));
    const h1 = layerNorm(add(ao, h), get(n('attention.output.LayerNorm.weight', 'sa_layer_norm.weight')), get(n('attention.output.LayerNorm.bias', 'sa_layer_norm.bias')), eps);
    const up = linear(h1, get(n('intermediate.dense.weight', 'ffn.lin1.weight')), get(n('intermediate.dense.bias', 'ffn.lin1.bias'))).map((r) =>
      r.map((x) => (act === 'relu' ? Math.max(0, x) : 0.5 * x * (1 + erf(x / Math.SQRT2)))),
    );
    const dn = linear(up, get(n('output.dense.weight', 'ffn.lin2.weight')), get(n('output.dense.bias', 'ffn.lin2.bias')));
    h = layerNorm(add(dn, h1), get(n('output.LayerNorm.weight', 'output_layer_norm.weight')), get(n('output.LayerNorm.bias', 'output_layer_norm.bias')), eps);
  }
  const cls = [h[0]!];
  const pooled = distil
    ? linear(cls, get('pre_classifier.weight'), get('pre_classifier.bias')).map((r) => r.map((x) => Math.max(0, x)))
    : linear(cls, get('pooler.dense.weight'), get('pooler.dense.bias')).map((r) => r.map(Math.tanh));
  return Array.from(linear(pooled, T.get('classifier.weight')!, T.get('classifier.bias')!)[0]!);
}
