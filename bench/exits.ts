/**
 * `npm run bench -- exits`: early exit on every shared decoder model, then on a synthetic model of
 * realistic shape where arithmetic dominates.
 *
 * Per model: convert into a temp dir, calibrate (speed objective, default targets), add segment
 * graphs for static truncation at every depth and for per-layer exit points (oracle), each exit
 * point with the head calibration chose for it; then every configuration — fused full depth,
 * static truncation, oracle exits, every level — is replayed teacher-forced on the validation text
 * and timed free-running, interleaved prompt by prompt with the fused path. Writes exits.json,
 * exits.md and exits.svg (speedup against agreement) under bench/results/.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { measureCosts } from '../agent/calibrate/costs.js';
import { calibrateDecoder, readTexts, scoreExits, splitByText } from '../agent/calibrate/decoderCalibrate.js';
import { addSegmentGraphs } from '../agent/calibrate/segments.js';
import { collectDecoderData } from '../agent/calibrate/decoderData.js';
import { fullTargets } from '../agent/calibrate/evaluate.js';
import { fusedCost, predictedCost } from '../agent/calibrate/exitTable.js';
import { convertModel } from '../agent/convert/cache.js';
import { loadSource } from '../agent/convert/detect.js';
import type { AffineLens } from '../agent/convert/llamaGraphs.js';
import type { LlamaSource } from '../agent/convert/source.js';
import { readManifest, writeManifest } from '../agent/engine/bundle.js';
import type { Decoder } from '../agent/engine/decoder.js';
import { loadModel } from '../agent/engine/index.js';
import { type CostModel, type DecoderLadder, type ExitPlan, type ExitSignal, type KvMode, type LadderLevel, describePlan, segmentsFor } from '../agent/engine/ladder.js';
import { sharedPath } from '../test/helpers/shared.js';
import { type Config, MAX_GEN, type Replay, type Seq, alwaysExit, fullReplay, generateExits, generateLevel, meanOf, oracleDecide, replayPlan, timeConfigs } from './exitRuns.js';
import { benchModels, isSmall, modelFile } from './generate.js';
import { type Panel, type Point, scatterPlot } from './plot.js';
import { markdownTable, round } from './stats.js';
import { benchSynthetic } from './synthetic.js';

export const DATA: Record<string, { train: string; val: string; note?: string }> = {
  stories260K: {
    train: 'data/tinystories/TinyStories-valid.sample.txt',
    val: 'data/tinystories/TinyStories-valid.sample.txt',
    note: 'only the TinyStories validation sample exists in ../shared, so it is both the calibration and the measured text (calibration holds out every 5th text for its own check)',
  },
  'caption-lm-8L': { train: 'data/flickr8k_captions/train.jsonl', val: 'data/flickr8k_captions/val.jsonl' },
  'caption-lm-8L-ee': { train: 'data/flickr8k_captions/train.jsonl', val: 'data/flickr8k_captions/val.jsonl' },
  'caption-lm-8L-x4': { train: 'data/flickr8k_captions/train.jsonl', val: 'data/flickr8k_captions/val.jsonl', note: 'caption-lm-8L widened ×4 (d 512, 26.7M parameters) by ../shared/tools/widen_gguf.py: the trained model\'s outputs at realistic compute per layer' },
  'caption-lm-8L-ee-x4': { train: 'data/flickr8k_captions/train.jsonl', val: 'data/flickr8k_captions/val.jsonl', note: 'caption-lm-8L-ee widened ×4 (d 512, 26.7M parameters) by ../shared/tools/widen_gguf.py: the trained model\'s outputs at realistic compute per layer' },
  'caption-lm-8L-ee-x4-q8_0': { train: 'data/flickr8k_captions/train.jsonl', val: 'data/flickr8k_captions/val.jsonl', note: 'caption-lm-8L-ee widened ×4, Q8_0 weights' },
  'caption-lm-8L-ee-x8': { train: 'data/flickr8k_captions/train.jsonl', val: 'data/flickr8k_captions/val.jsonl', note: 'caption-lm-8L-ee widened ×8 (d 1024, 105M parameters) by ../shared/tools/widen_gguf.py' },
};

const ROUNDS = Math.max(5, Number(process.env.SEDAC_BENCH_RUNS ?? 7));
/** validation texts replayed teacher-forced */
const TF_TEXTS = 300;
/** free-running prompts (BOS + the first PROMPT_TOKENS tokens of a validation text) */
const PROMPTS = 40;
const PROMPT_TOKENS = 2;

/** comma-separated subset of the models (and `synthetic`) to run; default all */
const ONLY = process.env.SEDAC_BENCH_EXITS_ONLY?.split(',').map((s) => s.trim());
const wanted = (name: string): boolean => !ONLY || ONLY.includes(name);

const log = (msg: string): void => void process.stderr.write(`exits: ${msg}\n`);

type Row = Record<string, unknown>;

/**
 * The affine lenses calibration fitted — same data, split (texts 0–1 mod 5) and closed-form solver,
 * so the same matrices — for the exit points whose calibrated head is the affine lens. Each one is
 * checked against the agreement calibration recorded for it, so a change in calibration's fitting
 * cannot silently give the bench's extra exit points different heads.
 */
async function calibratedLenses(d: Decoder, ladder: DecoderLadder, texts: string[], src: LlamaSource): Promise<Map<number, AffineLens>> {
  if (!ladder.heads.some((h) => h.kind === 'affine_lens')) return new Map();
  const data = await collectDecoderData(d, texts);
  const [fit, cal] = splitByText(data);
  const { heads, lenses } = await scoreExits(src, data, fit, cal).finally(() => data.dispose());
  for (const h of ladder.heads) {
    const again = heads.find((x) => x.exit === h.exit);
    if (again?.kind !== h.kind || Math.abs(again.agreement.affine_lens - h.agreement.affine_lens) > 1e-9) {
      throw new Error(`refitted exit head at ${h.exit} (${again?.kind}, ${again?.agreement.affine_lens}) differs from calibration's (${h.kind}, ${h.agreement.affine_lens}): the bench's refit is out of step with calibrate`);
    }
  }
  return lenses;
}

/** Convert, calibrate, add the static and per-layer segment graphs; returns the bundle dir. */
async function prepare(name: string, gguf: string, trainFile: string, root: string): Promise<{ dir: string; ladder: DecoderLadder; calibrateS: number }> {
  const dir = join(root, name);
  log(`${name}: converting and calibrating on ${trainFile}`);
  await convertModel(gguf, dir, { quiet: true });
  const d = (await loadModel({ name, source: dir, quiet: true })) as Decoder;
  try {
    const t0 = performance.now();
    const ladder = await calibrateDecoder(d, dir, trainFile, { quiet: true });
    const calibrateS = (performance.now() - t0) / 1000;
    const src = await loadSource(gguf);
    const lenses = await calibratedLenses(d, ladder, readTexts(trainFile), src);
    const L = d.config.nLayers;
    const perLayer = Array.from({ length: L - 1 }, (_, i) => i + 1);
    const m = readManifest(dir, true);
    addSegmentGraphs(dir, m, src, [...perLayer.flatMap((e) => segmentsFor([e], L, ladder.kv, undefined, ladder.signal)), ...segmentsFor(perLayer, L, ladder.kv, undefined, ladder.signal), ...ladder.levels.flatMap((l) => l.plan?.segments ?? [])], lenses);
    writeManifest(dir, m);
    return { dir, ladder, calibrateS };
  } finally {
    await d.dispose();
  }
}

function plan(exits: number[], L: number, kv: KvMode, signal: ExitSignal | undefined): ExitPlan {
  return { exits, thresholds: exits.map(() => -1), segments: segmentsFor(exits, L, kv, undefined, signal) };
}

/** Every configuration of one model, full depth first. */
function configsFor(d: Decoder, ladder: DecoderLadder): Config[] {
  const L = d.config.nLayers;
  const kv = ladder.kv;
  const configs: Config[] = [{ name: 'full (fused)', kind: 'full', exits: [], generate: (p) => generateLevel(d, p, undefined, MAX_GEN), replay: async (s) => fullReplay(s, L) }];
  for (let e = 1; e < L; e++) {
    const pl = plan([e], L, kv, ladder.signal);
    configs.push({ name: `static ${e}`, kind: 'static', exits: [e], generate: (p) => generateExits(d, p, pl, kv, MAX_GEN, [], alwaysExit), replay: (s) => replayPlan(d, pl, kv, s, alwaysExit) });
  }
  const every = plan(Array.from({ length: L - 1 }, (_, i) => i + 1), L, kv, ladder.signal);
  configs.push({ name: 'oracle', kind: 'oracle', exits: every.exits, generate: (p, ref) => generateExits(d, p, every, kv, MAX_GEN, ref, oracleDecide), replay: (s) => replayPlan(d, every, kv, s, oracleDecide) });
  for (const level of ladder.levels) {
    const exits = level.mode === 'full' ? [] : level.plan!.exits;
    configs.push({
      name: level.name,
      kind: 'level',
      exits,
      levels: [level.name],
      generate: (p) => generateLevel(d, p, level, MAX_GEN),
      // the exact level verifies every token at full depth: identical to it by construction
      replay: (s) => (level.mode === 'exits' ? replayPlan(d, level.plan!, kv, s) : Promise.resolve(fullReplay(s, L))),
    });
  }
  // plans calibration demoted to the full-depth graph (their exits measured slower): what they would do
  const served = new Set(ladder.levels.filter((l) => l.mode !== 'full' && l.plan).map((l) => planKey(l.plan!)));
  const demoted = new Map<string, LadderLevel[]>();
  // (not the lossless level's drafter: replayed as exits it would be static truncation, not what exact does)
  for (const l of ladder.levels) if (l.mode === 'full' && l.plan && l.target < 1 && !served.has(planKey(l.plan))) demoted.set(planKey(l.plan), [...(demoted.get(planKey(l.plan)) ?? []), l]);
  for (const levels of demoted.values()) {
    const asExits: LadderLevel = { ...levels[0]!, mode: 'exits' };
    const pl = asExits.plan!;
    configs.push({ name: `${levels.map((l) => l.name).join('/')} plan`, kind: 'plan', exits: pl.exits, levels: levels.map((l) => l.name), generate: (p) => generateLevel(d, p, asExits, MAX_GEN), replay: (s) => replayPlan(d, pl, kv, s) });
  }
  return configs;
}

function planKey(p: ExitPlan): string {
  return `${p.exits.join(',')}|${p.thresholds.join(',')}`;
}

/** Measure one prepared model: teacher-forced replay of every configuration, then interleaved timing. */
async function measureModel(name: string, dir: string, ladder: DecoderLadder, gguf: string, valFile: string): Promise<{ rows: Row[]; costs: CostModel; tfTexts: number; prompts: number; d: { L: number; dim: number; vocab: number } }> {
  const d = (await loadModel({ name, source: dir, quiet: true })) as Decoder;
  try {
    const L = d.config.nLayers;
    const costs = await measureCosts(d, await loadSource(gguf), ladder.signal);
    const seqs: Seq[] = await fullTargets(d, readTexts(valFile), TF_TEXTS);
    const configs = configsFor(d, ladder);
    log(`${name}: teacher-forced replay of ${configs.length} configurations on ${seqs.length} texts`);
    const replays: Replay[] = [];
    for (const c of configs) replays.push(await c.replay(seqs));
    const prompts = seqs.filter((s) => s.ids.length > 1 + PROMPT_TOKENS).slice(0, PROMPTS).map((s) => s.ids.slice(0, 1 + PROMPT_TOKENS));
    log(`${name}: timing ${configs.length} configurations × ${prompts.length} prompts × ${ROUNDS} rounds`);
    const timings = await timeConfigs(d, configs, prompts, ROUNDS);

    const H = costs.head_us / costs.layer_us;
    const full = timings[0]!;
    const rows = configs.map((c, i) => {
      const t = timings[i]!;
      const rp = replays[i]!;
      const owners = ladder.levels.filter((l) => c.levels?.includes(l.name));
      const level = c.kind === 'level' ? owners[0] : undefined;
      // depths of the decode steps (the first token of each prompt comes from the fused prefill)
      const hist = new Array<number>(L + 1).fill(0);
      for (const g of t.outs) for (const e of g.layers.slice(1)) hist[e]!++;
      const steps = hist.reduce((a, b) => a + b, 0);
      const genLayers = meanOf(hist, L);
      const speculative = level?.mode === 'speculative';
      const ideal = speculative ? null : (L + H) / (genLayers + H);
      const model = speculative ? null : fusedCost(costs, L) / predictedCost(costs, c.exits, { n: steps, disagreements: 0, agreement: 1, exits: hist, meanLayers: genLayers }, L);
      const same = t.outs.filter((g, k) => g.tokens.length === full.outs[k]!.tokens.length && g.tokens.every((x, j) => x === full.outs[k]!.tokens[j])).length;
      return {
        model: name,
        config: c.name,
        kind: c.kind,
        exit_points: c.exits,
        ...(owners.length ? { levels: c.levels, target: Math.min(...owners.map((l) => l.target)), calibration_measured_speedup: owners.map((l) => l.measured_speedup ?? null) } : {}),
        ...(level ? { mode: level.mode, holdout_agreement: level.holdout?.agreement ?? null, predicted_speedup: level.predicted_speedup ?? null } : {}),
        ...(c.kind === 'plan' ? { mode: 'exits (plan demoted to full depth by calibration)' } : {}),
        tf_tokens: rp.tokens,
        agreement: rp.agreement,
        mean_layers: rp.meanLayers,
        tf_depth_hist: rp.hist,
        gen_tokens: t.outs.reduce((a, g) => a + g.tokens.length, 0),
        gen_mean_layers: genLayers,
        tokens_per_s: round(t.tokensPerS, 0),
        full_tokens_per_s: round(full.tokensPerS, 0),
        speedup: round(t.speedup, 3),
        ideal_speedup: ideal === null ? null : round(ideal, 3),
        model_speedup: model === null ? null : round(model, 3),
        realized_over_ideal: ideal === null ? null : round(t.speedup / ideal, 3),
        first32_exact_match: same / Math.max(1, prompts.length),
        cpu_ms_per_token: round(t.cpuMsPerToken, 4),
        rounds_tokens_per_s: t.perRound.map((x) => round(x, 0)),
        ...costs,
        head_layers: round(H, 3),
      };
    });
    return { rows: withStaticCheck(rows), costs, tfTexts: seqs.length, prompts: prompts.length, d: { L, dim: d.config.dim, vocab: d.config.vocabSize } };
  } finally {
    await d.dispose();
  }
}

/**
 * For each level: the best agreement any static truncation (or full depth) reaches at least as fast
 * (measured speedup), and whether the level is at least as good as that.
 */
function withStaticCheck(rows: (Row & { kind: string; agreement: number; speedup: number })[]): Row[] {
  const statics = rows.filter((r) => r.kind === 'static' || r.kind === 'full');
  return rows.map((r) => {
    if (r.kind !== 'level' && r.kind !== 'plan') return r;
    const faster = statics.filter((s) => s.speedup >= r.speedup);
    const best = faster.length ? Math.max(...faster.map((s) => s.agreement)) : null;
    return { ...r, static_best_agreement_at_speed: best, beats_static: best === null || r.agreement >= best };
  });
}

const pct = (x: unknown): string => (typeof x === 'number' ? `${(x * 100).toFixed(2)} %` : '—');
const num = (x: unknown, digits = 2): string => (typeof x === 'number' ? x.toFixed(digits) : '—');

function modelTable(rows: Row[]): string {
  return markdownTable(
    rows.map((r) => ({
      config: r.kind === 'level' ? `**${String(r.config)}** (${Number(r.target) >= 1 ? 'lossless' : pct(r.target)}${r.mode === 'full' ? ', full depth' : ''})` : r.kind === 'plan' ? `${String(r.config)} (demoted)` : r.config,
      'exit points': (r.exit_points as number[]).length > 4 ? `1…${(r.exit_points as number[]).at(-1)}` : (r.exit_points as number[]).join(',') || '—',
      'agreement (TF)': pct(r.agreement),
      'layers (TF)': num(r.mean_layers),
      'layers (gen)': num(r.gen_mean_layers),
      'tok/s': r.tokens_per_s,
      speedup: num(r.speedup, 3),
      'ideal (L+H)/(Ē+H)': num(r.ideal_speedup, 3),
      'cost model': num(r.model_speedup, 3),
      'realized / ideal': num(r.realized_over_ideal, 2),
      'first-32 exact': pct(r.first32_exact_match),
      'CPU ms/tok': num(r.cpu_ms_per_token, 3),
      'best static ≥ speed': r.kind === 'level' || r.kind === 'plan' ? `${pct(r.static_best_agreement_at_speed)}${r.beats_static ? '' : ' (static better)'}` : '',
    })),
  );
}

function ladderTable(ladder: DecoderLadder): string {
  return markdownTable(
    ladder.levels.map((l) => ({
      level: l.name,
      target: l.target >= 1 ? 'identical' : pct(l.target),
      mode: l.mode,
      'exit points': describePlan(l),
      thresholds: l.plan?.thresholds.map((t) => t.toFixed(3)).join(', ') ?? '—',
      'agreement (calibration)': pct(l.calibration?.agreement),
      'agreement (held-out)': pct(l.holdout?.agreement),
      'predicted speedup': num(l.predicted_speedup, 2),
      'measured speedup': num(l.measured_speedup, 2),
      note: l.note ?? '',
    })),
  );
}

function panelFor(name: string, rows: Row[]): Panel {
  const points: Point[] = rows.map((r) => ({
    name: `${String(r.config)}: agreement ${pct(r.agreement)}, speedup ${num(r.speedup, 3)}`,
    label: r.kind === 'static' ? `d${(r.exit_points as number[])[0]}` : r.kind === 'full' ? 'full' : r.kind === 'plan' ? `${String(r.config).replace(' plan', '')}*` : String(r.config),
    kind: String(r.kind),
    x: Number(r.agreement),
    y: Number(r.speedup),
  }));
  return { title: name, xLabel: 'teacher-forced agreement with full depth (val)', points, xDigits: 3, yDigits: 2, yRef: 1, xMax1: true };
}

export async function benchExits(): Promise<{ rows: Row[]; table: string; extra: Record<string, string> }> {
  const root = mkdtempSync(join(tmpdir(), 'sedac-bench-exits-'));
  const rows: Row[] = [];
  const sections: string[] = [];
  const panels: Panel[] = [];
  let eeHist: { name: string; hist: number[] }[] = [];
  try {
    // the small guards and the x4 caption models (x8 and Q8_0: SEDAC_BENCH_MODELS)
    for (const spec of benchModels((m) => isSmall(m) || (m.wide?.k === 4 && m.wide.type === 'f32')).filter((m) => wanted(m.name))) {
      const data = DATA[spec.name]!;
      const gguf = await modelFile(spec);
      const trainFile = sharedPath(data.train);
      const valFile = sharedPath(data.val);
      const { dir, ladder, calibrateS } = await prepare(spec.name, gguf, trainFile, root);
      const r = await measureModel(spec.name, dir, ladder, gguf, valFile);
      rows.push(...r.rows);
      panels.push(panelFor(spec.name, r.rows));
      const c = r.costs;
      sections.push(
        [
          `### ${spec.name} (${r.d.L} layers, d=${r.d.dim}, vocab ${r.d.vocab})`,
          '',
          `Calibrated (speed objective, default targets) on \`${data.train}\` (${ladder.data.tokens} tokens, ${ladder.data.texts} texts) in ${calibrateS.toFixed(1)} s; measured on \`${data.val}\`: teacher-forced on ${r.tfTexts} texts, free-running on ${r.prompts} prompts (BOS + ${PROMPT_TOKENS} tokens) × up to ${MAX_GEN} tokens, ${ROUNDS} rounds.${data.note ? ` Note: ${data.note}.` : ''}`,
          `Costs (measureCosts): call ${c.call_us} µs, layer ${c.layer_us} µs, exit head ${c.head_us} µs (H = ${(c.head_us / c.layer_us).toFixed(2)} layers). K/V of skipped layers: ${ladder.kv}. Exit score: ${ladder.signal ?? 'entropy'}. Exit heads: ${ladder.heads.map((h) => `${h.exit}:${h.kind === 'affine_lens' ? 'affine' : 'logit'}`).join(' ')}.`,
          '',
          modelTable(r.rows),
          `Ladder written by calibration:\n\n${ladderTable(ladder)}`,
        ].join('\n'),
      );
      if (spec.name === 'caption-lm-8L-ee') {
        // the balanced (else eco) level's exit plan, as served or as demoted, and the oracle
        const pick = ['balanced', 'eco'].flatMap((n) => r.rows.filter((x) => (x.kind === 'level' && x.mode === 'exits') || x.kind === 'plan').filter((x) => (x.levels as string[]).includes(n)))[0];
        const oracle = r.rows.find((x) => x.kind === 'oracle');
        eeHist = [pick, oracle].filter((x) => x !== undefined).map((x) => ({ name: `caption-lm-8L-ee ${String(x.config)} (TF on val)`, hist: x.tf_depth_hist as number[] }));
      }
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
  // the synthetic model replays caption-lm-8L-ee's exit depths, so it needs that model's rows
  const syn = wanted('synthetic') && eeHist.length ? await benchSynthetic(eeHist, { rounds: ROUNDS, log: (m) => log(m) }) : { rows: [], table: '(not run: it replays caption-lm-8L-ee\'s exit depths, which were not measured in this run)\n' };
  rows.push(...syn.rows.map((x) => ({ model: 'synthetic', ...x })));
  const table = [
    'Tok/s = decode tokens/s: tokens after the first over the time after it (the prompt\'s fused prefill gives the first token for every configuration and is not timed; for `exact`, its first draft-and-verify round is not timed either), median over rounds; speedup = median over rounds of the per-round ratio to the fused full-depth graph. Every configuration runs on every prompt in a shuffled order within each round. Agreement (TF) = teacher-forced top-1 agreement with the full model on the validation text, through the real exit engine; layers (TF) count the first position (run by the fused graph) at full depth, as calibration\'s held-out check does. Layers (gen) = mean layers of the free-running decode steps; ideal = (L+H)/(Ē+H) with Ē = layers (gen) and H = exit head cost in layers; cost model = the calibration\'s cost model (session calls, layers, every exit head passed) for the depths generated. Static d = always exit after d layers; oracle = exit points after every layer, exit at the first whose argmax is the full model\'s token (free-running: its tokens from a full-depth run first). First-32 exact = fraction of prompts whose first 32 generated tokens (to EOS) equal full depth\'s. CPU ms/tok = process CPU time (process.cpuUsage) per decoded token over the same spans, all rounds.',
    '',
    '![speedup against agreement](exits.svg)',
    '',
    ...sections,
    '### Synthetic compute-dominated model',
    '',
    syn.table,
  ].join('\n');
  const svg = scatterPlot(panels, {
    colors: { full: '#222', static: '#1f77b4', oracle: '#2ca02c', level: '#d62728', plan: '#ff7f0e' },
    lineKinds: ['static'],
    bigKinds: ['level', 'oracle'],
    legend: [
      'speedup in decode tokens/s over the fused full-depth graph (y) against teacher-forced agreement with it (x); dashed: speedup 1',
      'blue: static truncation after d layers · green: oracle exits · red: calibrated levels as served · orange (*): a level\'s exit plan that calibration demoted to full depth · black: full depth',
    ],
  });
  return { rows, table, extra: { 'exits.svg': svg } };
}
