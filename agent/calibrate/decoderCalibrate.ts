/**
 * `sedac calibrate` for decoders: fit exit heads, choose each level's exit points and thresholds
 * with a guarantee, check them on held-out text through the real engine, and write the ladder (and
 * the segment graphs it needs) into the bundle.
 *
 * Splits are by text (index mod 5): 0–1 fit the lenses and the threshold family, 2–3 test the
 * levels (Learn-then-Test), 4 is held out for the final check.
 */
import { readFileSync } from 'node:fs';
import { loadSource } from '../convert/detect.js';
import { type AffineLens, exitProbeGraph, segmentGraph } from '../convert/llamaGraphs.js';
import { progressBar } from '../convert/progress.js';
import type { LlamaSource } from '../convert/source.js';
import { type Manifest, readManifest, sha256, writeBundleFile, writeManifest } from '../engine/bundle.js';
import type { Decoder } from '../engine/decoder.js';
import { DEFAULT_TARGETS, type DecoderLadder, type ExitHeadChoice, type KvMode, type LadderLevel, segmentRole, segmentsFor } from '../engine/ladder.js';
import { Session, f32, floats } from '../engine/ort.js';
import { SedacError } from '../errors.js';
import { collectDecoderData, type DecoderCalibrationData } from './decoderData.js';
import { measureCosts } from './costs.js';
import { checkHoldout } from './holdout.js';
import { fitAffineLens } from './lens.js';
import { type TokenTable, choosePlan, fitThresholdFamily, fusedCost, predictedCost } from './exitTable.js';

export interface DecoderCalibrateOptions {
  /** level name → target agreement; default DEFAULT_TARGETS */
  levels?: Record<string, number>;
  /** confidence of the agreement guarantee; default 0.95 */
  confidence?: number;
  /** positions of calibration data used; default 40,000 */
  maxTokens?: number;
  /** held-out texts replayed through the engine; default 300 */
  holdoutTexts?: number;
  kv?: 'recompute' | 'propagate';
  /**
   * what exit points are chosen for: `speed` (default) minimizes the measured cost per token, so a
   * level whose exits would not pay runs the fused full-depth graph; `layers` minimizes mean layers
   * (for devices where arithmetic, not dispatch, dominates)
   */
  objective?: 'speed' | 'layers';
  quiet?: boolean;
}

/** Texts from plain text (one per line) or JSONL with a `text` field. */
export function readTexts(file: string): string[] {
  let raw: string;
  try {
    raw = readFileSync(file, 'utf8');
  } catch {
    throw new SedacError('E_MODEL_NOT_FOUND', `data file not found: ${file}`);
  }
  return raw
    .split('\n')
    .filter((l) => l.trim())
    .map((line, i) => {
      if (!line.trimStart().startsWith('{')) return line;
      try {
        const o = JSON.parse(line) as { text?: unknown };
        if (typeof o.text === 'string') return o.text;
      } catch {
        // fall through
      }
      throw new SedacError('E_BAD_REQUEST', `${file}:${i + 1}: a JSON line without a "text" string`);
    });
}

/** The source the bundle was converted from, checked against its recorded sha256. */
async function bundleSource(m: Manifest): Promise<LlamaSource> {
  const src = await loadSource(m.source.path).catch((err: unknown) => {
    throw new SedacError('E_MODEL_NOT_FOUND', `calibration rebuilds graphs from the model source ${m.source.path}, which cannot be read: ${(err as Error).message}`);
  });
  if (src.sha256 !== m.source.sha256) throw new SedacError('E_MODEL_INTEGRITY', `${m.source.path} changed since the bundle was converted; reconvert first`);
  return src;
}

function rowsOf(data: DecoderCalibrationData, layer: number, idx: Int32Array): Float32Array {
  const { dim } = data;
  const out = new Float32Array(idx.length * dim);
  const h = data.hidden[layer]!;
  idx.forEach((i, k) => out.set(h.subarray(i * dim, (i + 1) * dim), k * dim));
  return out;
}

async function probe(src: LlamaSource, h: Float32Array, dim: number, lens: AffineLens | undefined): Promise<{ entropy: Float32Array; pred: Int32Array }> {
  const s = await Session.load(exitProbeGraph(src, lens).toBytes(), 'exit probe');
  try {
    const out = await s.run({ hidden: f32(h, [1, h.length / dim, dim]) });
    return { entropy: floats(out.exit_entropy, 'exit_entropy').slice(), pred: Int32Array.from(out.exit_token!.data as BigInt64Array, Number) };
  } finally {
    await s.release();
  }
}

/**
 * Write the segment graphs named by `roles` (seg.<from>-<to>.exit|final) that the bundle lacks; an
 * exit head uses the lens given for its exit point, else the plain logit lens. Updates `m.graphs`.
 */
export function addSegmentGraphs(dir: string, m: Manifest, src: LlamaSource, roles: string[], lenses: Map<number, AffineLens> = new Map()): void {
  const L = src.config.nLayers;
  for (const role of new Set(roles)) {
    if (m.graphs[role]) continue;
    const match = /^seg\.(\d+)-(\d+)\.(exit|final)(\.calm)?$/.exec(role);
    const from = Number(match?.[1]);
    const to = Number(match?.[2]);
    const calm = match?.[4] !== undefined;
    if (!match || segmentRole(from, to, L, calm ? 'propagate' : 'recompute') !== role) throw new SedacError('E_INTERNAL', `bad segment role ${role}`);
    const g = segmentGraph(src, from, to, to === L ? { kind: 'final', rows: 'last' } : { kind: 'exit', lens: lenses.get(to), name: `exit${to}` }, role, calm);
    m.graphs[role] = { ...writeBundleFile(dir, `${role}.onnx`, g.toBytes()), ...g.signature() };
  }
}

/** Add segment graphs for the given exit points to a bundle on disk (tests, benches). */
export async function addSegmentsToBundle(dir: string, exitSets: number[][], kv: KvMode = 'recompute'): Promise<void> {
  const m = readManifest(dir, true);
  const src = await bundleSource(m);
  addSegmentGraphs(dir, m, src, exitSets.flatMap((e) => segmentsFor(e, src.config.nLayers, kv)));
  writeManifest(dir, m);
}

export async function calibrateDecoder(d: Decoder, dir: string, dataFile: string, opts: DecoderCalibrateOptions = {}): Promise<DecoderLadder> {
  const m = readManifest(dir, true);
  const src = await bundleSource(m);
  const { nLayers: L, dim } = d.config;
  const confidence = opts.confidence ?? 0.95;
  const targets = opts.levels ?? DEFAULT_TARGETS;
  const texts = readTexts(dataFile);
  const quiet = opts.quiet ?? false;

  // 1. teacher-forced full-depth pass: every layer's state, the full model's answer
  const bar = progressBar('calibrate: full-depth pass', texts.length, process.stderr, quiet);
  const data = await collectDecoderData(d, texts, { maxTokens: opts.maxTokens, onText: () => bar.tick('') });
  bar.done(`${data.n} tokens from ${data.texts} texts`);
  const split = Array.from({ length: 3 }, (_, s) => Int32Array.from(data.target.keys()).filter((i) => [0, 0, 1, 1, 2][data.textOf[i]! % 5] === s));
  const [fitIdx, calIdx, holdIdx] = split as [Int32Array, Int32Array, Int32Array];
  if (calIdx.length < 200 || fitIdx.length < 200) throw new SedacError('E_INPUT', `calibration needs more text: ${data.n} tokens in ${data.texts} texts`);

  // 2. exit heads: logit lens or fitted affine lens per exit point, whichever agrees more on the fit split
  const heads: ExitHeadChoice[] = [];
  const lenses = new Map<number, AffineLens>();
  const fit: TokenTable = { entropy: [], pred: [], full: Int32Array.from(fitIdx, (i) => data.target[i]!) };
  const cal: TokenTable = { entropy: [], pred: [], full: Int32Array.from(calIdx, (i) => data.target[i]!) };
  const hb = progressBar('calibrate: exit heads', L - 1, process.stderr, quiet);
  for (let e = 1; e < L; e++) {
    const lens = await fitAffineLens(rowsOf(data, e - 1, fitIdx), rowsOf(data, L - 1, fitIdx), fitIdx.length, dim);
    const agree = (p: Int32Array) => p.reduce((a, t, k) => a + (t === fit.full[k] ? 1 : 0), 0) / p.length;
    const plain = await probe(src, rowsOf(data, e - 1, fitIdx), dim, undefined);
    const tuned = await probe(src, rowsOf(data, e - 1, fitIdx), dim, lens);
    const useLens = agree(tuned.pred) > agree(plain.pred);
    heads.push({ exit: e, kind: useLens ? 'affine_lens' : 'logit_lens', agreement: { logit_lens: agree(plain.pred), affine_lens: agree(tuned.pred) } });
    if (useLens) lenses.set(e, lens);
    const chosen = useLens ? tuned : plain;
    fit.entropy.push(chosen.entropy);
    fit.pred.push(chosen.pred);
    const c = await probe(src, rowsOf(data, e - 1, calIdx), dim, useLens ? lens : undefined);
    cal.entropy.push(c.entropy);
    cal.pred.push(c.pred);
    hb.tick(`after ${e} layers: ${heads.at(-1)!.kind}`);
  }
  hb.done();

  // 3. what calls, layers and heads cost on this machine, then each level's plan
  const costs = await measureCosts(d, src);
  const family = fitThresholdFamily(fit, L, Math.max(20, Math.ceil(0.002 * fit.full.length)));
  const levels: LadderLevel[] = [];
  const objective = opts.objective === 'layers' ? { call_us: 0, layer_us: 1, head_us: 0 } : costs;
  for (const [name, target] of Object.entries(targets)) {
    if (target >= 1) continue; // the exact level is built below from the others
    const plan = choosePlan(family, cal, L, target, confidence, objective);
    const gain = fusedCost(objective, L) / plan.predictedUs;
    const speedup = fusedCost(costs, L) / predictedCost(costs, plan.exits, plan.fit.calibration, L);
    const sim = plan.fit.calibration;
    const base = { name, target, calibration: { tokens: sim.n, agreement: sim.agreement, mean_layers: sim.meanLayers, upper_disagreement: sim.upper } };
    if (plan.exits.length === 0 || gain <= 1) levels.push({ ...base, mode: 'full', predicted_speedup: 1 });
    else levels.push({ ...base, mode: 'exits', plan: { exits: plan.exits, thresholds: plan.exits.map((e) => plan.fit.thresholds[e - 1]!), segments: segmentsFor(plan.exits, L, opts.kv ?? 'recompute') }, predicted_speedup: speedup });
  }
  if ('exact' in targets) {
    // lossless self-speculation pays only in speed, never in layers (verification runs them all):
    // drafts from the most aggressive plan that still agrees ≥ 97 % (or the best there is); the
    // held-out check measures it and falls back to full depth when it is slower
    const drafts = levels.filter((l) => l.plan);
    const draft = drafts.filter((l) => l.target >= 0.97).at(-1) ?? drafts[0];
    const speculative = opts.objective !== 'layers' && draft?.plan;
    levels.unshift(speculative ? { name: 'exact', target: 1, mode: 'speculative', plan: draft.plan, max_draft: 4 } : { name: 'exact', target: 1, mode: 'full' });
  }
  levels.sort((a, b) => b.target - a.target);

  // 4. the segment graphs the plans need, written into the bundle
  addSegmentGraphs(dir, m, src, levels.flatMap((l) => l.plan?.segments ?? []), lenses);
  const ladder: DecoderLadder = {
    version: 1,
    kv: opts.kv ?? 'recompute',
    objective: opts.objective ?? 'speed',
    confidence,
    heads,
    costs,
    levels,
    data: { file: dataFile, sha256: sha256(readFileSync(dataFile)), tokens: data.n, texts: data.texts },
    created_at: new Date().toISOString(),
  };
  m.extras = { ...(m.extras ?? {}), ladder };
  writeManifest(dir, m);

  // 5. held-out check through the real engine (teacher forcing with real exits and lazy K/V)
  await checkHoldout(dir, ladder, texts, data, holdIdx, opts.holdoutTexts ?? 300, quiet);
  writeManifest(dir, m);
  return ladder;
}
