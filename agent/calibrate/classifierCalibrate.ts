/**
 * `sedac calibrate` for classifier bundles: trace texts through every layer, train the exit heads by
 * distillation, choose each level's thresholds with Learn-then-Test, check them on held-out texts,
 * and write heads + ladder into the bundle (new heads file first, then the manifest atomically).
 *
 * The texts (JSONL with `text`, optional `label`) are shuffled and split four ways:
 *   heads 50 % (train the heads) · family 15 % (fit τ(ε)) · calibration 20 % (LTT) · holdout 15 % (check)
 */
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { SedacError } from '../errors.js';
import { readManifest, sha256, writeBundleFile, writeManifest } from '../engine/bundle.js';
import { Classifier, type Encoded, type Trace } from '../engine/classifier.js';
import { argmax, headProbs, normalizedEntropy, packHeads, type ExitHead, type ExitHeadsEntry, type Ladder, type LadderLevel } from '../engine/classifierExit.js';
import { progressBar } from '../convert/progress.js';
import { DEFAULT_LABEL_WEIGHT, rng, trainHead, type HeadTrainOptions } from './classifierHeads.js';
import { chooseLevel, clopperPearsonUpper, defaultGrid, fitFamily, simulate, type ExitTable } from './classifierLadder.js';

/** Default levels and their agreement targets with the full model. */
export const DEFAULT_LEVELS: Record<string, number> = { high: 0.99, balanced: 0.97, eco: 0.93, critical: 0.85 };

export interface ClassifierCalibrateOptions extends HeadTrainOptions {
  /** level name → required agreement with the full model; default DEFAULT_LEVELS (`exact` is always added) */
  levels?: Record<string, number>;
  /** confidence of each level's guarantee; default 0.95 */
  confidence?: number;
  /** most texts used from the file (a seeded random subset); default 12000 */
  maxTexts?: number;
  /** ORT threads; default 1 */
  threads?: number;
  /** no progress output */
  quiet?: boolean;
}

export interface ClassifierCalibrateReport {
  bundle: string;
  texts: { heads: number; family: number; calibration: number; holdout: number };
  heads: { layer: number; train_agreement: number; kl: number }[];
  levels: LadderLevel[];
  ms: number;
}

interface Row {
  text: string;
  label: number;
}

/** Read a JSONL file of {text, label?}; labels may be class indices or label names. */
export function readLabelled(file: string, labels: string[]): Row[] {
  if (!existsSync(file)) throw new SedacError('E_USAGE', `calibration data file not found: ${file}`);
  const rows: Row[] = [];
  readFileSync(file, 'utf8').split('\n').forEach((line, i) => {
    if (!line.trim()) return;
    let o: { text?: unknown; label?: unknown };
    try {
      o = JSON.parse(line) as typeof o;
    } catch {
      throw new SedacError('E_BAD_REQUEST', `${file}:${i + 1}: not JSON`);
    }
    if (typeof o.text !== 'string') throw new SedacError('E_BAD_REQUEST', `${file}:${i + 1}: no "text" string`);
    let label = -1;
    if (typeof o.label === 'number' && Number.isInteger(o.label) && o.label >= 0 && o.label < labels.length) label = o.label;
    else if (typeof o.label === 'string' && labels.includes(o.label)) label = labels.indexOf(o.label);
    else if (o.label !== undefined && o.label !== null) throw new SedacError('E_BAD_REQUEST', `${file}:${i + 1}: label ${JSON.stringify(o.label)} is not one of ${labels.join(', ')} or their indices`);
    rows.push({ text: o.text, label });
  });
  return rows;
}

/** Head entropies and labels of a trace's rows `idx`, for the ladder. */
function exitTable(trace: Trace, heads: ExitHead[], idx: number[], F: number, C: number): ExitTable {
  const p = new Float64Array(C);
  const entropy = heads.map(() => new Float64Array(idx.length));
  const pred = heads.map(() => new Int32Array(idx.length));
  const full = new Int32Array(idx.length);
  idx.forEach((i, r) => {
    full[r] = argmax(trace.logits.subarray(i * C, (i + 1) * C));
    heads.forEach((h, k) => {
      headProbs(h, trace.features[k]!.subarray(i * F, (i + 1) * F), p);
      entropy[k]![r] = normalizedEntropy(p);
      pred[k]![r] = argmax(p);
    });
  });
  return { entropy, pred, full };
}

function gatherRows(src: Float32Array, idx: number[], width: number): Float32Array {
  const out = new Float32Array(idx.length * width);
  idx.forEach((i, r) => out.set(src.subarray(i * width, (i + 1) * width), r * width));
  return out;
}

export async function calibrateClassifier(dir: string, dataFile: string, opts: ClassifierCalibrateOptions = {}): Promise<ClassifierCalibrateReport> {
  const t0 = performance.now();
  const confidence = opts.confidence ?? 0.95;
  const targets = opts.levels ?? DEFAULT_LEVELS;
  for (const [name, t] of Object.entries(targets)) {
    if (!(t > 0 && t < 1)) throw new SedacError('E_USAGE', `level ${name}: target ${t} must be in (0, 1)`);
    if (name === 'exact' || name === 'full') throw new SedacError('E_USAGE', `level name ${name} is reserved for full depth`);
  }
  const model = await Classifier.open(dir, undefined, { threads: opts.threads });
  try {
    const C = model.labels.length, F = model.featureDim, L = model.nLayers;
    // texts: seeded shuffle, keep those that tokenize, split four ways
    const r = rng(opts.seed ?? 1);
    const rows = readLabelled(dataFile, model.labels);
    for (let i = rows.length - 1; i > 0; i--) {
      const j = Math.floor(r() * (i + 1));
      [rows[i], rows[j]] = [rows[j]!, rows[i]!];
    }
    const encs: Encoded[] = [];
    const labels: number[] = [];
    for (const row of rows) {
      if (encs.length >= (opts.maxTexts ?? 12000)) break;
      try {
        encs.push(model.encode(row.text));
        labels.push(row.label);
      } catch {
        // texts the engine rejects (no tokens) are not calibration material
      }
    }
    const n = encs.length;
    if (n < 400) throw new SedacError('E_BAD_REQUEST', `${dataFile}: ${n} usable texts; calibration needs at least 400`);
    const cut = [0.5, 0.65, 0.85].map((f) => Math.round(f * n));
    const split = { heads: range(0, cut[0]!), family: range(cut[0]!, cut[1]!), calibration: range(cut[1]!, cut[2]!), holdout: range(cut[2]!, n) };

    // every text through every layer, in padded batches
    const bar = progressBar('calibrate: trace', Math.ceil(n / 32), process.stderr, opts.quiet);
    const trace = await model.trace(encs, 32, (done) => bar.tick(`${done} texts`));
    bar.done(`${n} texts`);

    // exit heads, one per exit point, distilled from the full model (+ labels, weight λ)
    const hx = split.heads;
    const teacher = gatherRows(trace.logits, hx, C);
    const hy = Int32Array.from(hx.map((i) => labels[i]!));
    const heads: ExitHead[] = [];
    const headReport: ClassifierCalibrateReport['heads'] = [];
    const hbar = progressBar('calibrate: heads', L, process.stderr, opts.quiet);
    for (let k = 0; k < L; k++) {
      const res = trainHead(gatherRows(trace.features[k]!, hx, F), F, teacher, hy, opts);
      heads.push(res.head);
      headReport.push({ layer: k, train_agreement: res.agreement, kl: res.kl });
      hbar.tick(`exit ${k}: agreement ${(100 * res.agreement).toFixed(1)} %`);
    }
    hbar.done();

    // thresholds: family on one split, Learn-then-Test on another, check on the third
    const grid = defaultGrid();
    const family = fitFamily(exitTable(trace, heads, split.family, F, C), grid);
    const cal = exitTable(trace, heads, split.calibration, F, C);
    const hold = exitTable(trace, heads, split.holdout, F, C);
    const levels: LadderLevel[] = [{ name: 'exact', target: 1, thresholds: null }];
    for (const [name, target] of Object.entries(targets).sort((a, b) => b[1] - a[1])) {
      const ch = chooseLevel(family, cal, L, target, confidence);
      const th = ch.thresholds ?? new Array<number>(L).fill(-1);
      const h = simulate(hold, th, L);
      const nh = hold.full.length;
      levels.push({
        name,
        target,
        thresholds: th,
        calibration: { n: ch.calibration.n, agreement: ch.calibration.agreement, mean_layers: ch.calibration.meanLayers, upper_disagreement: ch.calibration.upperDisagreement },
        holdout: { n: nh, agreement: h.agreement, mean_layers: h.meanLayers, lower_agreement: 1 - clopperPearsonUpper(h.disagreements, nh, 1 - confidence), ok: h.agreement >= target },
      });
    }

    // write: the heads under a content-named file, then the manifest (atomic), then drop the old heads
    const bytes = packHeads(heads);
    const m = readManifest(dir, true);
    const oldHeads = (m.extras?.exit_heads as ExitHeadsEntry | undefined)?.file;
    const file = `exit_heads.${sha256(bytes).slice(0, 12)}.bin`;
    const entry: ExitHeadsEntry = {
      ...writeBundleFile(dir, file, bytes),
      features: 'cls_mean',
      in_dim: F,
      hidden: opts.hidden ?? 0,
      classes: C,
      layers: L,
      training: { texts: hx.length, epochs: opts.epochs ?? 40, label_weight: opts.labelWeight ?? DEFAULT_LABEL_WEIGHT, hidden: opts.hidden ?? 0 },
    };
    const ladder: Ladder = {
      signal: 'normalized_entropy',
      confidence,
      levels,
      data: { file: dataFile, sha256: sha256(readFileSync(dataFile)), heads: hx.length, family: split.family.length, calibration: split.calibration.length, holdout: split.holdout.length },
    };
    writeManifest(dir, { ...m, extras: { ...(m.extras ?? {}), exit_heads: entry, ladder } });
    if (oldHeads && oldHeads !== file && !oldHeads.includes('/')) rmSync(join(dir, oldHeads), { force: true });
    return {
      bundle: dir,
      texts: { heads: hx.length, family: split.family.length, calibration: split.calibration.length, holdout: split.holdout.length },
      heads: headReport,
      levels,
      ms: performance.now() - t0,
    };
  } finally {
    await model.dispose();
  }
}

function range(a: number, b: number): number[] {
  return Array.from({ length: b - a }, (_, i) => a + i);
}
