/**
 * `npm run bench -- classify`: the moderation classifier on the Davidson validation split.
 *
 * Converts ../shared/models/moderation-bert-6L, calibrates it on the train split, then runs every
 * validation text through every configuration — full depth (fused graph and per-layer graphs),
 * static truncation at each depth, every calibrated level — interleaved text by text in one process
 * (the machine is shared and noisy), timing tokenization + forward. Writes classify.{json,md,svg}.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { calibrateClassifier } from '../agent/calibrate/classifierCalibrate.js';
import { rng } from '../agent/calibrate/classifierHeads.js';
import { agreement, classMetrics, percentile } from '../agent/calibrate/classifierMetrics.js';
import { convertBert } from '../agent/convert/bert.js';
import { Classifier, type Encoded, type Outcome } from '../agent/engine/classifier.js';
import { argmax, cutFeatures, headProbs, normalizedEntropy } from '../agent/engine/classifierExit.js';
import { sharedPath } from '../test/helpers/shared.js';
import { classifyPlot, type PlotPoint } from './plot.js';
import { markdownTable, round } from './stats.js';

const HARMFUL = ['hate', 'offensive'];

interface Config {
  name: string;
  kind: 'full' | 'split' | 'static' | 'level';
  run: (e: Encoded) => Promise<Outcome>;
}

export async function benchClassify(): Promise<{ rows: Record<string, unknown>[]; table: string; extra?: Record<string, string> }> {
  const hf = sharedPath('models/moderation-bert-6L/hf');
  const trainFile = sharedPath('data/davidson_hate_offensive/train.jsonl');
  const valFile = sharedPath('data/davidson_hate_offensive/val.jsonl');
  const dir = join(mkdtempSync(join(tmpdir(), 'sedac-bench-classify-')), 'bundle');
  try {
    await convertBert(hf, dir, { quiet: true });
    const cal = await calibrateClassifier(dir, trainFile, { quiet: true });
    const model = await Classifier.open(dir);
    try {
      return await measure(model, valFile, cal.ms);
    } finally {
      await model.dispose();
    }
  } finally {
    rmSync(join(dir, '..'), { recursive: true, force: true });
  }
}

async function measure(model: Classifier, valFile: string, calibrateMs: number): Promise<{ rows: Record<string, unknown>[]; table: string; extra: Record<string, string> }> {
  const L = model.nLayers;
  const rows = readFileSync(valFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { text: string; label: number });
  const configs: Config[] = [
    { name: 'full (fused graph)', kind: 'full', run: (e) => model.runFull(e) },
    { name: 'full (per-layer graphs)', kind: 'split', run: (e) => model.runExits(e, new Array<number>(L).fill(-1)) },
  ];
  for (let k = 0; k < L; k++) {
    const th = new Array<number>(L).fill(-1);
    th[k] = 1;
    configs.push({ name: `static depth ${k}`, kind: 'static', run: (e) => model.runExits(e, th) });
  }
  for (const lv of model.ladder?.levels ?? []) {
    if (lv.thresholds) configs.push({ name: `level ${lv.name}`, kind: 'level', run: (e) => model.runExits(e, lv.thresholds!) });
  }

  // warm-up, then every text through every configuration, in a shuffled order per text
  const r = rng(7);
  const timeOne = async (c: Config, text: string): Promise<{ ms: number; out: Outcome }> => {
    const t0 = performance.now();
    const out = await c.run(model.encode(text));
    return { ms: performance.now() - t0, out };
  };
  for (const row of rows.slice(0, 100)) for (const c of configs) await timeOne(c, row.text);
  const ms = configs.map(() => [] as number[]);
  const pred = configs.map(() => new Int32Array(rows.length));
  const layers = configs.map(() => [] as number[]);
  const order = configs.map((_, i) => i);
  for (let i = 0; i < rows.length; i++) {
    for (let j = order.length - 1; j > 0; j--) {
      const s = Math.floor(r() * (j + 1));
      [order[j], order[s]] = [order[s]!, order[j]!];
    }
    for (const ci of order) {
      const { ms: t, out } = await timeOne(configs[ci]!, rows[i]!.text);
      ms[ci]!.push(t);
      pred[ci]![i] = argmax(out.probs);
      layers[ci]!.push(out.layers);
    }
  }

  const gold = Int32Array.from(rows.map((x) => x.label));
  const full = pred[0]!;
  const fullP50 = percentile(ms[0]!, 0.5);
  const fullMean = mean(ms[0]!);
  const result = configs.map((c, ci) => {
    const m = classMetrics(gold, pred[ci]!, model.labels, HARMFUL);
    return {
      config: c.name,
      kind: c.kind,
      accuracy: m.accuracy,
      macro_f1: m.macro_f1,
      per_class_f1: m.per_class_f1,
      recall_hate: m.per_class_recall.hate,
      recall_offensive: m.per_class_recall.offensive,
      harmful_recall: m.harmful_recall,
      agreement_with_full: agreement(pred[ci]!, full),
      mean_layers: mean(layers[ci]!),
      p50_ms: percentile(ms[ci]!, 0.5),
      p95_ms: percentile(ms[ci]!, 0.95),
      mean_ms: mean(ms[ci]!),
      speedup_p50: fullP50 / percentile(ms[ci]!, 0.5),
      speedup_mean: fullMean / mean(ms[ci]!),
    };
  });
  // does each level beat static truncation at the same cost? The static curve (depth 0 … L-1, full) is
  // interpolated at the level's mean layers: layers are the deterministic cost (the exit check is
  // ~1 % of a layer); the ms columns show the measured latency next to it.
  const curve = [...result.filter((x) => x.kind === 'static'), result[0]!].sort((a, b) => a.mean_layers - b.mean_layers);
  const statics = curve.filter((x) => x.kind === 'static');
  const interp = (x: number, key: 'agreement_with_full' | 'macro_f1'): number => {
    if (x <= curve[0]!.mean_layers) return curve[0]![key];
    for (let i = 1; i < curve.length; i++) {
      const a = curve[i - 1]!, b = curve[i]!;
      if (x <= b.mean_layers) return a[key] + ((b[key] - a[key]) * (x - a.mean_layers)) / (b.mean_layers - a.mean_layers);
    }
    return curve[curve.length - 1]![key];
  };
  const rowsOut = result.map((x) => {
    if (x.kind !== 'level') return x;
    const sa = interp(x.mean_layers, 'agreement_with_full'), sf = interp(x.mean_layers, 'macro_f1');
    return { ...x, static_agreement_same_layers: sa, static_macro_f1_same_layers: sf, beats_static: x.agreement_with_full >= sa && x.macro_f1 >= sf };
  });
  const costs = overheads(model, rows.map((x) => x.text), statics);

  const table = markdownTable(
    rowsOut.map((x) => ({
      config: x.config,
      acc: round(x.accuracy, 4),
      macro_f1: round(x.macro_f1, 4),
      'F1 hate/off/neither': Object.values(x.per_class_f1).map((v) => round(v, 3)).join(' / '),
      'recall hate/off': `${round(x.recall_hate ?? NaN, 3)} / ${round(x.recall_offensive ?? NaN, 3)}`,
      harmful_recall: round(x.harmful_recall ?? NaN, 4),
      agree_full: round(x.agreement_with_full, 4),
      layers: round(x.mean_layers, 2),
      p50_ms: round(x.p50_ms, 3),
      p95_ms: round(x.p95_ms, 3),
      speedup_p50: round(x.speedup_p50, 2),
      speedup_mean: round(x.speedup_mean, 2),
      'static, same layers (agree / F1)': 'beats_static' in x ? `${round(x.static_agreement_same_layers, 4)} / ${round(x.static_macro_f1_same_layers, 4)}` : '',
      beats_static: 'beats_static' in x ? String(x.beats_static) : '',
    })),
  );
  const ladder = (model.ladder?.levels ?? []).filter((l) => l.thresholds).map((l) => ({
    level: l.name,
    target: l.target,
    thresholds: l.thresholds!.map((t) => (t < 0 ? '–' : round(t, 3))).join(' '),
    cal_agreement: round(l.calibration?.agreement ?? NaN, 4),
    cal_upper_disagreement: round(l.calibration?.upper_disagreement ?? NaN, 4),
    holdout_agreement: round(l.holdout?.agreement ?? NaN, 4),
    holdout_lower: round(l.holdout?.lower_agreement ?? NaN, 4),
    holdout_ok: l.holdout?.ok,
  }));
  const text = [
    `Validation split: ${rows.length} texts, ${L} layers; every configuration run on every text, interleaved; times include tokenization.`,
    `Calibration (train split, heads + ladder): ${round(calibrateMs / 1000, 1)} s.\n`,
    table,
    `\nCosts: ${Object.entries(costs).map(([k, v]) => `${k} ${v}`).join(', ')}.\n`,
    '\nLadder (thresholds on normalized entropy per exit point 0 … L-1; – = no exit there):\n',
    markdownTable(ladder),
  ].join('\n');
  const points: PlotPoint[] = rowsOut.map((x) => ({ name: x.config, kind: x.kind, ms: x.mean_ms, agreement: x.agreement_with_full, macroF1: x.macro_f1 }));
  return { rows: [...rowsOut, { costs, ladder }], table: text, extra: { 'classify.svg': classifyPlot(points) } };
}

function mean(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0) / Math.max(xs.length, 1);
}

/** Per-layer cost (slope of static truncation latency over depth) and the JS exit check's cost. */
function overheads(model: Classifier, texts: string[], statics: { mean_ms: number; mean_layers: number }[]): Record<string, string> {
  const xs = statics.map((s) => s.mean_layers), ys = statics.map((s) => s.mean_ms);
  const mx = mean(xs), my = mean(ys);
  const slope = xs.reduce((a, x, i) => a + (x - mx) * (ys[i]! - my), 0) / xs.reduce((a, x) => a + (x - mx) ** 2, 0);
  const heads = model.exitHeads;
  let checkUs = NaN;
  if (heads) {
    // one exit check (features from a hidden state of median length + head + entropy), repeated
    const lens = texts.slice(0, 500).map((t) => model.encode(t)).sort((a, b) => a.ids.length - b.ids.length);
    const e = lens[lens.length >> 1]!;
    const d = model.hidden;
    const hid = new Float32Array(e.ids.length * d).map((_, i) => Math.sin(i));
    const feats = new Float32Array(model.featureDim);
    const p = new Float64Array(model.labels.length);
    const reps = 5000;
    let sink = 0;
    const t0 = performance.now();
    for (let rep = 0; rep < reps; rep++) {
      cutFeatures(hid, 0, e.ids.length, d, e.mask, feats);
      headProbs(heads[rep % heads.length]!, feats, p);
      sink += normalizedEntropy(p);
    }
    checkUs = ((performance.now() - t0) * 1000) / reps + (sink > 0 ? 0 : 0);
  }
  return { per_layer_ms: String(round(slope, 4)), base_ms_depth0: String(round(my - slope * mx, 4)), exit_check_us: String(round(checkUs, 2)) };
}
