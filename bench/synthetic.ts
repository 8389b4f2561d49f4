/**
 * The exits bench's compute-dominated case: a Llama of realistic shape with random weights (seeded),
 * built in memory as a LlamaSource and written with the ordinary bundle writer. It replays an exit-
 * depth distribution measured on a real model (each token's depth is sampled from it and `decide`
 * exits there) and compares the realized speedup over the fused full-depth graph with the ideal
 * (L+H)/(Ē+H), where H is the exit head's cost in layers. Weights are random, so tokens mean
 * nothing; only the arithmetic is real.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { addSegmentGraphs } from '../agent/calibrate/segments.js';
import { measureCosts } from '../agent/calibrate/costs.js';
import { fusedCost, predictedCost } from '../agent/calibrate/exitTable.js';
import { f32ToF16 } from '../agent/convert/dequant.js';
import { writeLlamaBundle } from '../agent/convert/llamaBundle.js';
import type { LlamaSource, SentencePieceVocab, SourceTensor } from '../agent/convert/source.js';
import { readManifest, sha256, sha256File, writeManifest } from '../agent/engine/bundle.js';
import { Decoder } from '../agent/engine/decoder.js';
import { exitStateFrom, exitStep } from '../agent/engine/exits.js';
import { loadBundleTokenizer } from '../agent/engine/index.js';
import { type CostModel, type ExitPlan, segmentsFor } from '../agent/engine/ladder.js';
import { argmax, prng } from '../agent/engine/sampling.js';
import { markdownTable, median, round } from './stats.js';

export interface SyntheticShape {
  dim: number;
  nLayers: number;
  nHeads: number;
  ffnDim: number;
  vocabSize: number;
  maxSeqLen: number;
}

/** Llama-1B-like proportions (d=1024, 24 layers, 16 heads of 64, SwiGLU 2816, vocab 32k). */
export const SYNTHETIC_SHAPE: SyntheticShape = { dim: 1024, nLayers: 24, nHeads: 16, ffnDim: 2816, vocabSize: 32000, maxSeqLen: 128 };

/**
 * Random f16 values, uniform with variance 1/fanIn (so activations stay O(1) through the layers):
 * 4096 precomputed f16 codes indexed by a xorshift stream — fast enough for ~400 M weights.
 */
function randomF16(name: string, shape: number[], fanIn: number, next: () => number): SourceTensor {
  const a = Math.sqrt(3 / fanIn);
  const codes = Uint16Array.from({ length: 4096 }, (_, i) => f32ToF16(((i + 0.5) / 4096) * 2 * a - a));
  const n = shape.reduce((x, y) => x * y, 1);
  const out = new Uint16Array(n);
  let s = (next() * 2 ** 32) >>> 0 || 1;
  for (let i = 0; i < n; i += 2) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = codes[s & 4095]!;
    if (i + 1 < n) out[i + 1] = codes[(s >>> 16) & 4095]!;
  }
  return { name, dtype: 'f16', shape, data: new Uint8Array(out.buffer) };
}

function ones(name: string, n: number): SourceTensor {
  return { name, dtype: 'f32', shape: [n], data: new Uint8Array(new Float32Array(n).fill(1).buffer) };
}

/** A vocabulary of dummy pieces (<unk>, <s>, </s>, then ▁w3 …): enough for ids in and out. */
function dummyVocab(n: number): SentencePieceVocab {
  const pieces = Array.from({ length: n }, (_, i) => (i === 0 ? '<unk>' : i === 1 ? '<s>' : i === 2 ? '</s>' : `▁w${i}`));
  return { kind: 'sentencepiece', pieces, scores: pieces.map((_, i) => -i), types: pieces.map((_, i) => (i === 0 ? 2 : i < 3 ? 3 : 1)), bos: 1, eos: 2, unk: 0, addDummyPrefix: true };
}

/** An in-memory Llama source of the given shape, weights from a seeded PRNG (f16 matrices, f32 norms). */
export function syntheticSource(shape: SyntheticShape, seed = 1): LlamaSource {
  const { dim, nLayers, nHeads, ffnDim, vocabSize } = shape;
  const next = prng(seed);
  const layers = Array.from({ length: nLayers }, (_, l) => ({
    attnNorm: ones(`l${l}.attn_norm`, dim),
    wq: randomF16(`l${l}.wq`, [dim, dim], dim, next),
    wk: randomF16(`l${l}.wk`, [dim, dim], dim, next),
    wv: randomF16(`l${l}.wv`, [dim, dim], dim, next),
    wo: randomF16(`l${l}.wo`, [dim, dim], dim, next),
    ffnNorm: ones(`l${l}.ffn_norm`, dim),
    wGate: randomF16(`l${l}.w_gate`, [ffnDim, dim], dim, next),
    wUp: randomF16(`l${l}.w_up`, [ffnDim, dim], dim, next),
    wDown: randomF16(`l${l}.w_down`, [dim, ffnDim], ffnDim, next),
  }));
  const tokEmbd = randomF16('tok_embd', [vocabSize, dim], 1, next);
  const output = randomF16('output', [vocabSize, dim], dim, next);
  const config = {
    dim,
    nLayers,
    nHeads,
    nKvHeads: nHeads,
    headDim: dim / nHeads,
    ffnDim,
    vocabSize,
    normEps: 1e-5,
    ropeTheta: 10000,
    maxSeqLen: shape.maxSeqLen,
    ropeLayout: 'adjacent' as const,
    tiedEmbeddings: false,
  };
  const name = `synthetic-d${dim}-L${nLayers}`;
  return { format: 'gguf', name, config, tensors: { tokEmbd, outputNorm: ones('output_norm', dim), output, layers }, tokenizer: dummyVocab(vocabSize), sha256: sha256(`${name}:${JSON.stringify(shape)}:${seed}`) };
}

/** A measured exit-depth distribution: hist[e] = tokens that ran e of hist.length - 1 layers. */
export interface DepthDistribution {
  name: string;
  hist: number[];
}

/** Rescale a distribution over Ls layers to L layers (depth e → round(e·L/Ls), at least 1). */
export function scaleHist(hist: number[], L: number): number[] {
  const Ls = hist.length - 1;
  const out = new Array<number>(L + 1).fill(0);
  hist.forEach((c, e) => {
    if (c > 0) out[Math.max(1, Math.round((e * L) / Ls))]! += c;
  });
  return out;
}

/** n depths whose empirical distribution follows `hist` (stratified quantiles), in a seeded random order. */
export function sampleDepths(hist: number[], n: number, seed: number): number[] {
  const total = hist.reduce((a, b) => a + b, 0);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const q = ((i + 0.5) / n) * total;
    let acc = 0;
    let e = 0;
    while (e < hist.length - 1 && acc + hist[e]! <= q) acc += hist[e++]!;
    out.push(e);
  }
  const r = prng(seed);
  for (let j = n - 1; j > 0; j--) {
    const k = Math.floor(r() * (j + 1));
    [out[j], out[k]] = [out[k]!, out[j]!];
  }
  return out;
}

/** Predicted µs per token (the calibration's cost model) when each token of `depths` exits at the first point of `exits` at or past its depth. */
export function exitSetCost(costs: CostModel, exits: number[], depths: number[], L: number): number {
  const hist = new Array<number>(L + 1).fill(0);
  for (const t of depths) hist[t]!++;
  return predictedCost(costs, exits, { n: depths.length, disagreements: 0, agreement: 1, exits: hist, meanLayers: 0 }, L);
}

/** The exit set (a subset of the depths that occur, below L) with the lowest predicted cost. */
export function bestExitSet(costs: CostModel, depths: number[], L: number): number[] {
  const support = [...new Set(depths.filter((e) => e < L))].sort((a, b) => a - b);
  if (support.length > 12) throw new Error(`too many distinct depths (${support.length}) to search exit sets exhaustively`);
  let best: number[] = [];
  let bestCost = exitSetCost(costs, [], depths, L);
  for (let mask = 1; mask < 1 << support.length; mask++) {
    const set = support.filter((_, i) => mask & (1 << i));
    const c = exitSetCost(costs, set, depths, L);
    if (c < bestCost - 1e-9) [best, bestCost] = [set, c];
  }
  return best;
}

/** Exit heads a token of depth t runs: every exit point up to the first at or past t. */
function checksFor(exits: number[], t: number): number {
  const stop = exits.find((e) => e >= t) ?? Infinity;
  return exits.filter((e) => e <= stop).length;
}

/** A bundle opened without re-hashing its (large) graph files: the bench wrote them moments ago. */
async function openBundle(dir: string): Promise<Decoder> {
  const m = readManifest(dir, false);
  return Decoder.load(dir, m, sha256File(join(dir, 'manifest.json')), loadBundleTokenizer(dir, m.tokenizer.file));
}

const PROMPT = [1, 3, 4, 5];

/** Decode `n` tokens after a fused prefill; returns the decode wall time (ms) and layers run. */
async function decode(d: Decoder, n: number, plan: ExitPlan | undefined, depths: number[]): Promise<{ ms: number; layers: number }> {
  const V = d.config.vocabSize;
  const run = d.newState();
  let tok = argmax(await d.forward(PROMPT, run), (PROMPT.length - 1) * V, V);
  const st = exitStateFrom(d, run);
  let layers = 0;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    if (!plan) {
      tok = argmax(await d.forward([tok], run), 0, V);
      layers += d.config.nLayers;
      continue;
    }
    // the replayed decision: exit at the first exit point at or past this token's sampled depth
    const step = await exitStep(d, st, tok, plan, 'recompute', (done) => done >= depths[i]!);
    tok = argmax(step.logits, 0, V);
    layers += step.depth;
  }
  return { ms: performance.now() - t0, layers: layers / n };
}

interface Measured {
  fusedMs: number;
  exitMs: number;
  speedup: number;
  layersRun: number;
}

/** Fused full depth and the replayed exits, alternating in random order, `rounds` times; medians. */
async function measureVariant(d: Decoder, exits: number[], depths: number[], rounds: number): Promise<Measured> {
  const L = d.config.nLayers;
  const plan: ExitPlan = { exits, thresholds: exits.map(() => -1), segments: segmentsFor(exits, L) };
  await decode(d, 2, undefined, depths);
  await decode(d, depths.length, plan, depths);
  const fused: number[] = [];
  const ex: number[] = [];
  let layersRun = L;
  const r = prng(5);
  for (let k = 0; k < rounds; k++) {
    const first = r() < 0.5;
    if (first) fused.push((await decode(d, depths.length, undefined, depths)).ms);
    const e = await decode(d, depths.length, plan, depths);
    ex.push(e.ms);
    layersRun = e.layers;
    if (!first) fused.push((await decode(d, depths.length, undefined, depths)).ms);
  }
  const n = depths.length;
  return { fusedMs: median(fused) / n, exitMs: median(ex) / n, speedup: median(fused.map((f, k) => f / ex[k]!)), layersRun };
}

export interface SyntheticOptions {
  shape?: SyntheticShape;
  /** timed runs per variant (each fused + exits); default 5 */
  rounds?: number;
  /** decode steps per run; default 32 */
  tokens?: number;
  log?: (msg: string) => void;
}

/**
 * Convert the synthetic model, measure its cost model, and for each distribution replay its depths
 * with exit points at every depth that occurs and at the cheapest subset by the cost model.
 */
export async function benchSynthetic(dists: DepthDistribution[], opts: SyntheticOptions = {}): Promise<{ rows: Record<string, unknown>[]; table: string }> {
  const shape = opts.shape ?? SYNTHETIC_SHAPE;
  const L = shape.nLayers;
  const n = opts.tokens ?? 32;
  const rounds = opts.rounds ?? 5;
  const log = opts.log ?? (() => undefined);
  const root = mkdtempSync(join(tmpdir(), 'sedac-bench-synthetic-'));
  const dir = join(root, 'bundle');
  try {
    log(`synthetic: building d=${shape.dim}, ${L} layers, FFN ${shape.ffnDim}, vocab ${shape.vocabSize} (f16 random weights)`);
    const t0 = performance.now();
    let src: LlamaSource | undefined = syntheticSource(shape, 1);
    writeLlamaBundle(src, dir, { sourcePath: join(root, 'synthetic'), quiet: true });
    const convertS = (performance.now() - t0) / 1000;

    log('synthetic: measuring the cost model');
    let d = await openBundle(dir);
    const costs = await measureCosts(d, src, 'entropy', 5, 4);
    await d.dispose();
    const H = costs.head_us / costs.layer_us;

    const variants = dists.flatMap((dist) => {
      const depths = sampleDepths(scaleHist(dist.hist, L), n, 11);
      const support = [...new Set(depths.filter((e) => e < L))].sort((a, b) => a - b);
      const best = bestExitSet(costs, depths, L);
      const sets = [{ set: 'every depth that occurs', exits: support }];
      if (best.join() !== support.join()) sets.push({ set: 'cheapest by cost model', exits: best });
      return sets.map((s) => ({ dist: dist.name, depths, ...s }));
    });
    const m = readManifest(dir, false);
    log(`synthetic: writing segment graphs for exit sets ${variants.map((v) => `[${v.exits.join(',')}]`).join(' ')}`);
    addSegmentGraphs(dir, m, src, variants.flatMap((v) => segmentsFor(v.exits, L)));
    writeManifest(dir, m);
    src = undefined;

    const rows: Record<string, unknown>[] = [];
    for (const v of variants) {
      log(`synthetic: ${v.dist}, exits [${v.exits.join(',')}]`);
      d = await openBundle(dir);
      const r = await measureVariant(d, v.exits, v.depths, rounds);
      await d.dispose();
      const meanDepth = v.depths.reduce((a, b) => a + b, 0) / v.depths.length;
      const ideal = (L + H) / (meanDepth + H);
      const model = fusedCost(costs, L) / exitSetCost(costs, v.exits, v.depths, L);
      rows.push({
        distribution: v.dist,
        exit_set: v.set,
        exit_points: v.exits,
        mean_depth: round(meanDepth, 2),
        layers_run: round(r.layersRun, 2),
        checks_per_token: round(v.depths.reduce((a, t) => a + checksFor(v.exits, t), 0) / v.depths.length, 2),
        head_layers: round(H, 2),
        ideal_speedup: round(ideal, 3),
        model_speedup: round(model, 3),
        realized_speedup: round(r.speedup, 3),
        realized_over_ideal: round(r.speedup / ideal, 3),
        realized_over_model: round(r.speedup / model, 3),
        fused_ms_per_token: round(r.fusedMs, 1),
        exits_ms_per_token: round(r.exitMs, 1),
      });
    }
    const head = `Synthetic model: d=${shape.dim}, ${L} layers, ${shape.nHeads} heads, FFN ${shape.ffnDim}, vocab ${shape.vocabSize}, random f16 weights (f32 in ORT), 1 intra-op thread; built and converted in ${round(convertS, 1)} s. Cost model (measureCosts): call ${costs.call_us} µs, layer ${costs.layer_us} µs, exit head ${costs.head_us} µs (full-vocabulary LM head + entropy) = H ${round(H, 2)} layers. Ē = mean of the replayed depths (a measured depth e of Ls layers becomes round(e·${L}/Ls)); cost model = the calibration's cost model for these depths and exit points, every exit head a token passes included; ideal assumes one head per token and no rounding to exit points. ${n} decode steps per run after a 4-token prefill, median of ${rounds} runs, each alternating with the fused full-depth graph; K/V of skipped layers: recompute (pending rows ride along with the next deep token).`;
    const table = markdownTable(
      rows.map((x) => ({
        distribution: x.distribution,
        'exit points': `[${(x.exit_points as number[]).join(',')}] (${x.exit_set})`,
        'Ē': x.mean_depth,
        'layers run': x.layers_run,
        'checks/token': x.checks_per_token,
        'ideal (L+H)/(Ē+H)': x.ideal_speedup,
        'cost model': x.model_speedup,
        realized: x.realized_speedup,
        'realized / ideal': x.realized_over_ideal,
        'realized / cost model': x.realized_over_model,
        'fused ms/tok': x.fused_ms_per_token,
        'exits ms/tok': x.exits_ms_per_token,
      })),
    );
    return { rows: rows.map((x) => ({ ...x, shape, costs, convert_s: round(convertS, 1) })), table: `${head}\n\n${table}` };
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}
