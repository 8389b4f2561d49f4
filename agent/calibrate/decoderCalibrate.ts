/**
 * `sedac calibrate` for decoders: fit exit heads, choose each level's exit points and thresholds
 * with a guarantee, check them on held-out text through the real engine, and write the ladder (and
 * the segment graphs it needs) into the bundle.
 *
 * Splits are by text (index mod 5): 0–1 fit the lenses and the threshold family, 2–3 test the
 * levels (Learn-then-Test), 4 is held out for the final check.
 */
import { readFileSync } from 'node:fs';
import { type AffineLens, IO, exitProbeGraph } from '../convert/llamaGraphs.js';
import { progressBar } from '../convert/progress.js';
import type { LlamaSource } from '../convert/source.js';
import { readManifest, sha256, writeManifest } from '../engine/bundle.js';
import type { Decoder } from '../engine/decoder.js';
import { loadModel } from '../engine/index.js';
import { DEFAULT_TARGETS, EXIT_SIGNALS, type DecoderLadder, type CostModel, type ExitHeadChoice, type ExitPlan, type ExitSignal, type KvMode, type LadderLevel, type LevelCandidate, marginScore, segmentsFor } from '../engine/ladder.js';
import { Session, f32, floats } from '../engine/ort.js';
import { SedacError } from '../errors.js';
import { collectDecoderData, type DecoderCalibrationData } from './decoderData.js';
import { measureCosts } from './costs.js';
import { checkHoldout, heldOutSequences, measuredSpeedup, usedTexts } from './holdout.js';
import { fitAffineLens } from './lens.js';
import { type Candidate, type Structure, type TokenTable, fitThresholdFamily, fusedCost, planCandidates, predictedCost, testPlan } from './exitTable.js';
import { type DraftChoice, drafterCandidates } from './speculation.js';
import { hostInfo, serveFastest } from './retime.js';
import { addSegmentGraphs, bundleSource, levelGraphs, pruneSegmentGraphs } from './segments.js';

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
  /**
   * the exit score thresholds apply to: `entropy`, `margin` (top-2 logit gap), or `auto` (default):
   * the one whose best plans are predicted cheaper on the fit split (cost relative to the fused
   * graph, averaged over the levels)
   */
  signal?: ExitSignal | 'auto';
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

/** The rows `idx` of a layer's states (n, dim). */
function rowsOf(h: Float32Array, dim: number, idx: Int32Array): Float32Array {
  const out = new Float32Array(idx.length * dim);
  idx.forEach((i, k) => out.set(h.subarray(i * dim, (i + 1) * dim), k * dim));
  return out;
}

/** Rows per probe call: the head's intermediates (logits, log-softmax, …) are rows × vocab floats each. */
const PROBE_ROWS = 2048;

/** An exit head on every row: its argmax and its score under each signal (in chunks of rows). */
async function probe(src: LlamaSource, h: Float32Array, dim: number, lens: AffineLens | undefined): Promise<{ score: Record<ExitSignal, Float32Array>; pred: Int32Array }> {
  const n = h.length / dim;
  const entropy = new Float32Array(n);
  const margin = new Float32Array(n);
  const pred = new Int32Array(n);
  const s = await Session.load(exitProbeGraph(src, lens).toBytes(), 'exit probe');
  try {
    for (let from = 0; from < n; from += PROBE_ROWS) {
      const rows = Math.min(PROBE_ROWS, n - from);
      const out = await s.run({ [IO.hidden]: f32(h.subarray(from * dim, (from + rows) * dim), [1, rows, dim]) });
      const top = floats(out[IO.exitTop2], IO.exitTop2);
      for (let i = 0; i < rows; i++) margin[from + i] = marginScore(top[2 * i]!, top[2 * i + 1]!);
      entropy.set(floats(out[IO.exitEntropy], IO.exitEntropy), from);
      pred.set(Int32Array.from(out.exit_token!.data as BigInt64Array, Number), from);
    }
    return { score: { entropy, margin }, pred };
  } finally {
    await s.release();
  }
}

/** Candidate plans timed per level, and candidate drafters for `exact`. */
const MEASURED = 3;
/** Prompts (BOS + 2 tokens of fit-split texts) the candidates are timed on. */
const PROMPTS = 24;

function structureExits(s: Structure): number[] {
  return s.cap === undefined ? s.points : [...s.points, s.cap];
}

/** An exit plan from a structure and per-point thresholds (the cap's is 1: no score exceeds it). */
function planOf(s: Structure, thresholds: number[], L: number, kv: KvMode, signal: ExitSignal): ExitPlan {
  const exits = structureExits(s);
  return { exits, thresholds: exits.map((e) => (e === s.cap ? 1 : thresholds[e - 1]!)), ...(s.cap === undefined ? {} : { cap: s.cap }), segments: segmentsFor(exits, L, kv, s.cap, signal) };
}

function exitsLevel(name: string, target: number, plan: ExitPlan): LadderLevel {
  return { name, target, mode: 'exits', plan };
}

/** The exact level drafting with the first `depth` layers. */
function exactLevel(dr: DraftChoice, L: number, kv: KvMode, costs: CostModel, signal: ExitSignal): LadderLevel {
  const k = dr.depth;
  return {
    name: 'exact',
    target: 1,
    mode: 'speculative',
    plan: { exits: [k], thresholds: [1], cap: k, segments: segmentsFor([k], L, kv, k, signal) },
    max_draft: dr.maxDraft,
    ...(Number.isFinite(dr.stop) ? { draft_stop: dr.stop } : {}),
    predicted_speedup: costs.verify_us![0]! / dr.usPerToken,
  };
}

function planKey(l: LadderLevel): string {
  const p = l.plan!;
  return `${l.mode}:${p.exits.join(',')}${p.cap === undefined ? '' : ` cap ${p.cap}`}${l.max_draft === undefined ? '' : ` draft ${l.max_draft} stop ${l.draft_stop?.toFixed(3) ?? '-'}`}`;
}

export interface ScoredExits {
  heads: ExitHeadChoice[];
  /** the affine lenses of the exit points that use one */
  lenses: Map<number, AffineLens>;
  /** per signal, the exit table of the fit split and of the calibration split */
  fitBy: Record<ExitSignal, TokenTable>;
  calBy: Record<ExitSignal, TokenTable>;
}

/**
 * The exit head of every exit point — the logit lens or a fitted affine lens, whichever agrees more
 * with the full model on the fit split — applied to both splits and scored under every signal.
 */
export async function scoreExits(src: LlamaSource, data: DecoderCalibrationData, fitIdx: Int32Array, calIdx: Int32Array, quiet = true): Promise<ScoredExits> {
  const { nLayers: L, dim } = data;
  const heads: ExitHeadChoice[] = [];
  const lenses = new Map<number, AffineLens>();
  const tables = (idx: Int32Array): Record<ExitSignal, TokenTable> => {
    const full = Int32Array.from(idx, (i) => data.target[i]!);
    const pred: Int32Array[] = [];
    return { entropy: { score: [], pred, full }, margin: { score: [], pred, full } };
  };
  const fitBy = tables(fitIdx);
  const calBy = tables(calIdx);
  const hb = progressBar('calibrate: exit heads', L - 1, process.stderr, quiet);
  // one layer's states in memory at a time (plus the final layer's fit rows)
  const yFit = rowsOf(data.layer(L - 1), dim, fitIdx);
  for (let e = 1; e < L; e++) {
    let h: Float32Array | undefined = data.layer(e - 1);
    const xFit = rowsOf(h, dim, fitIdx);
    const xCal = rowsOf(h, dim, calIdx);
    h = undefined;
    const lens = await fitAffineLens(xFit, yFit, fitIdx.length, dim);
    const agree = (p: Int32Array) => p.reduce((a, t, k) => a + (t === fitBy.entropy.full[k] ? 1 : 0), 0) / p.length;
    const plain = await probe(src, xFit, dim, undefined);
    const tuned = await probe(src, xFit, dim, lens);
    const useLens = agree(tuned.pred) > agree(plain.pred);
    heads.push({ exit: e, kind: useLens ? 'affine_lens' : 'logit_lens', agreement: { logit_lens: agree(plain.pred), affine_lens: agree(tuned.pred) } });
    if (useLens) lenses.set(e, lens);
    const chosen = useLens ? tuned : plain;
    const c = await probe(src, xCal, dim, useLens ? lens : undefined);
    fitBy.entropy.pred.push(chosen.pred);
    calBy.entropy.pred.push(c.pred);
    for (const sig of EXIT_SIGNALS) {
      fitBy[sig].score.push(chosen.score[sig]);
      calBy[sig].score.push(c.score[sig]);
    }
    hb.tick(`after ${e} layers: ${heads.at(-1)!.kind}`);
  }
  hb.done();
  return { heads, lenses, fitBy, calBy };
}

/** The fit (texts 0–1 mod 5), calibration (2–3) and held-out (4) positions of the data. */
export function splitByText(data: DecoderCalibrationData): [fit: Int32Array, cal: Int32Array, hold: Int32Array] {
  const split = Array.from({ length: 3 }, (_, s) => Int32Array.from(data.target.keys()).filter((i) => [0, 0, 1, 1, 2][data.textOf[i]! % 5] === s));
  return split as [Int32Array, Int32Array, Int32Array];
}

export async function calibrateDecoder(d: Decoder, dir: string, dataFile: string, opts: DecoderCalibrateOptions = {}): Promise<DecoderLadder> {
  const m = readManifest(dir, true);
  const src = await bundleSource(m);
  const { nLayers: L } = d.config;
  const confidence = opts.confidence ?? 0.95;
  const targets = opts.levels ?? DEFAULT_TARGETS;
  const texts = readTexts(dataFile);
  const quiet = opts.quiet ?? false;
  // a previous calibration's ladder, segments and their weight file go first (its lenses may differ)
  if (m.extras?.ladder !== undefined) delete m.extras.ladder;
  pruneSegmentGraphs(dir, m, new Set());
  writeManifest(dir, m);

  // 1. teacher-forced full-depth pass: every layer's state, the full model's answer
  const bar = progressBar('calibrate: full-depth pass', texts.length, process.stderr, quiet);
  const data = await collectDecoderData(d, texts, { maxTokens: opts.maxTokens, onText: () => bar.tick('') });
  try {
    bar.done(`${data.n} tokens from ${data.texts} texts`);
    const [fitIdx, calIdx, holdIdx] = splitByText(data);
    if (calIdx.length < 200 || fitIdx.length < 200) throw new SedacError('E_INPUT', `calibration needs more text: ${data.n} tokens in ${data.texts} texts`);

    // 2. exit heads: logit lens or fitted affine lens per exit point, whichever agrees more on the fit
    // split; every exit scored both ways (entropy, margin)
    const { heads, lenses, fitBy, calBy } = await scoreExits(src, data, fitIdx, calIdx, quiet);

    // 3. per signal: what calls, layers and heads cost on this machine, the threshold family, and each
    // level's candidate plans on the fit split (cheapest predicted first); the signal whose best plans
    // are predicted cheaper relative to the fused graph, averaged over the levels, is the ladder's
    const kv = opts.kv ?? 'recompute';
    const bySpeed = opts.objective !== 'layers';
    const named = Object.entries(targets).filter(([, target]) => target < 1);
    const minExits = Math.max(20, Math.ceil(0.002 * fitIdx.length));
    const options = [];
    for (const sig of opts.signal === undefined || opts.signal === 'auto' ? EXIT_SIGNALS : [opts.signal]) {
      const costs = await measureCosts(d, src, sig);
      const objective = bySpeed ? costs : { call_us: 0, layer_us: 1, head_us: 0 };
      const family = fitThresholdFamily(fitBy[sig], L, minExits);
      const plans = new Map(named.map(([name, target]) => [name, planCandidates(family, fitBy[sig], L, target, confidence, objective)]));
      const fused = fusedCost(objective, L);
      const relative = named.reduce((a, [name]) => a + Math.min(1, (plans.get(name)![0]?.us ?? fused) / fused), 0) / Math.max(1, named.length);
      options.push({ signal: sig, costs, objective, family, plans, relative });
    }
    const { signal, costs, objective, family, plans } = options.reduce((a, b) => (b.relative < a.relative ? b : a));
    // the caller's decoder is done: its graphs go before the timing and held-out engines load theirs
    d.trim();
    const cal = calBy[signal];
    const shortlist = (all: Candidate[]) => {
      // the cheapest predicted, and the cheapest capped one (the cost model sees no per-call engine
      // overhead, so it favours plans with more segments)
      const top = all.slice(0, bySpeed ? MEASURED : 1);
      const capped = all.find((c) => c.s.cap !== undefined);
      return bySpeed && capped && !top.includes(capped) ? [...top, capped] : top;
    };
    const candidates = new Map(named.map(([name]) => [name, shortlist(plans.get(name)!)]));
    const drafters = 'exact' in targets && bySpeed ? drafterCandidates(cal, Int32Array.from(calIdx, (i) => data.textOf[i]!), L, costs).slice(0, MEASURED) : [];

    // 4. optimizing for speed, the candidates are timed through the real engine (the cost model
    // ranks them, a measurement decides): free-running greedy generation on fit-split prompts,
    // interleaved with the fused full-depth graph
    // each candidate as the level it would be, and its measured speedup (by plan: levels share plans)
    const trialOf = new Map<Candidate | DraftChoice, LadderLevel>([
      ...[...candidates.values()].flat().map((c) => [c, exitsLevel('trial', 0, planOf(c.s, c.thresholds, L, kv, signal))] as const),
      ...drafters.map((dr) => [dr, exactLevel(dr, L, kv, costs, signal)] as const),
    ]);
    const speedOf = new Map<string, number>();
    const speed = (c: Candidate | DraftChoice) => speedOf.get(planKey(trialOf.get(c)!)) ?? 0;
    let timingPrompts: number[][] = [];
    if (bySpeed && trialOf.size > 0) {
      addSegmentGraphs(dir, m, src, [...trialOf.values()].flatMap((l) => levelGraphs(l, L)), lenses);
      writeManifest(dir, m);
      const probe = (await loadModel({ name: 'calibrate', source: dir })) as Decoder;
      try {
        const used = usedTexts(probe, texts, data);
        timingPrompts = heldOutSequences(data, (t) => used[t]!, fitIdx, PROMPTS).filter((q) => q.ids.length > 3).map((q) => q.ids.slice(0, 3));
        const tb = progressBar('calibrate: timing candidate plans', trialOf.size, process.stderr, quiet);
        for (const level of trialOf.values()) {
          const key = planKey(level);
          if (!speedOf.has(key)) speedOf.set(key, await measuredSpeedup(probe, level, timingPrompts));
          tb.tick(`${key}: ${speedOf.get(key)}×`);
        }
        tb.done();
      } finally {
        await probe.dispose();
      }
    }

    // 5. per level: every shortlisted candidate tested by Learn-then-Test on the calibration split
    // at δ/K (K = the shortlist), so every one that passes keeps the guarantee at once; the fastest
    // measured (or, for layers, the cheapest predicted) is served, the others are kept in the ladder
    // for a device to re-time (`sedac calibrate --retime`)
    const levels: LadderLevel[] = [];
    for (const [name, target] of named) {
      const cands = candidates.get(name)!;
      const each = 1 - (1 - confidence) / Math.max(1, cands.length);
      const passed: (LevelCandidate & { predictedUs: number })[] = [];
      for (const c of cands) {
        const p = testPlan(family, cal, L, c.s, target, each, objective);
        if (p.exits.length === 0) continue;
        const sim = p.fit.calibration;
        passed.push({
          plan: planOf({ points: p.exits.filter((e) => e !== p.cap), cap: p.cap }, p.fit.thresholds, L, kv, signal),
          calibration: { tokens: sim.n, agreement: sim.agreement, mean_layers: sim.meanLayers, upper_disagreement: sim.upper },
          predicted_speedup: fusedCost(costs, L) / predictedCost(costs, p.exits, sim, L),
          ...(bySpeed ? { measured_speedup: speed(c) } : {}),
          predictedUs: p.predictedUs,
        });
      }
      const full = testPlan(family, cal, L, undefined, target, confidence, objective).fit.calibration;
      const fullStats = { tokens: full.n, agreement: full.agreement, mean_layers: full.meanLayers, upper_disagreement: full.upper };
      const kept = passed.map(({ predictedUs: _, ...c }) => c);
      const level = serveFastest({ name, target, mode: 'full', calibration: fullStats, predicted_speedup: 1, candidates: kept }, bySpeed);
      if (!bySpeed && level.mode === 'exits' && fusedCost(objective, L) <= passed[0]!.predictedUs) {
        level.mode = 'full';
        level.note = 'its plan is predicted no cheaper than full depth: runs the full-depth graph';
      }
      if (level.mode === 'full' && passed.length === 0) level.note = cands.length ? `no candidate (${cands.map((c) => structureExits(c.s).join(',') + (c.s.cap === undefined ? '' : ' (cap)')).join('; ')}) held the target on the calibration split: runs the full-depth graph` : 'no plan meets the target: runs the full-depth graph';
      levels.push(level);
    }
    if ('exact' in targets) {
      // lossless self-speculation pays only in speed, never in layers (verification runs them all)
      const kept = drafters.map((dr) => {
        const t = trialOf.get(dr)!;
        return { plan: t.plan!, max_draft: t.max_draft, ...(t.draft_stop === undefined ? {} : { draft_stop: t.draft_stop }), predicted_speedup: t.predicted_speedup, measured_speedup: speed(dr) };
      });
      levels.unshift(serveFastest({ name: 'exact', target: 1, mode: 'full', ...(kept.length ? { candidates: kept } : {}) }, true));
    }
    levels.sort((a, b) => b.target - a.target);

    // 6. the segment graphs the levels need, written into the bundle
    addSegmentGraphs(dir, m, src, levels.flatMap((l) => levelGraphs(l, L)), lenses);
    const ladder: DecoderLadder = {
      version: 3,
      kv,
      signal,
      signals: Object.fromEntries(options.map((o) => [o.signal, Math.round(o.relative * 1000) / 1000])),
      objective: opts.objective ?? 'speed',
      confidence,
      heads,
      costs,
      levels,
      data: { file: dataFile, sha256: sha256(readFileSync(dataFile)), tokens: data.n, texts: data.texts },
      created_at: new Date().toISOString(),
      calibrated_on: hostInfo(),
      ...(bySpeed ? { timed_on: hostInfo(), timing_prompts: timingPrompts } : {}),
    };
    m.extras = { ...(m.extras ?? {}), ladder };
    writeManifest(dir, m);

    // 7. held-out check through the real engine (teacher forcing with real exits and lazy K/V)
    await checkHoldout(dir, ladder, texts, data, holdIdx, opts.holdoutTexts ?? 300, quiet);
    // graphs of candidates not chosen, and of plans that run full depth, are not kept
    pruneSegmentGraphs(dir, m, new Set(levels.flatMap((l) => levelGraphs(l, L))));
    writeManifest(dir, m);
    return ladder;
  } finally {
    data.dispose();
  }
}
