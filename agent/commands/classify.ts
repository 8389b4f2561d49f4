/**
 * `sedac classify <model> --text TEXT [--level L] [--json]`: one text → {label, probs, layers, level, ms}.
 * `sedac classify <model> --input FILE.jsonl [--level L] [--json]`: a file of {text, label?} lines →
 * label metrics, agreement with full depth, mean layers and latency; the full-depth pass of every
 * line runs interleaved with the level's pass in the same process, so the speedup is like for like.
 */
import { readFileSync } from 'node:fs';
import { agreement, classMetrics, percentile } from '../calibrate/classifierMetrics.js';
import { Classifier, decodeUtf8 } from '../engine/classifier.js';
import { loadModel, type LoadedModel } from '../engine/index.js';
import { SedacError, asSedacError } from '../errors.js';
import { intOpt, parse } from './args.js';

const USAGE = `usage: sedac classify <model> (--text TEXT | --input FILE.jsonl) [--level L] [--threads N]
                      [--cache-dir DIR] [--json]
  <model>   a classifier bundle directory or a Hugging Face BERT-family classifier folder (converted
            once into the cache)
  --text    classify one text: label, class probabilities, layers used, level, milliseconds
  --input   classify every line of a JSONL file ({"text": ..., "label": optional index or name}) and
            report accuracy / macro-F1 / per-class F1 (when labelled), agreement with full depth,
            mean layers, p50 latency of the level and of full depth (interleaved) and the speedup
  --level   exact (full depth), or a calibrated level (high, balanced, eco, critical); default full depth`;

export async function main(argv: string[]): Promise<number> {
  const args = parse(
    argv,
    {
      text: { type: 'string', short: 't' },
      input: { type: 'string', short: 'i' },
      level: { type: 'string', short: 'l' },
      threads: { type: 'string' },
      'cache-dir': { type: 'string' },
      json: { type: 'boolean' },
    },
    USAGE,
    [1, 1],
  );
  if (!args) return 0;
  const { values, positionals } = args;
  const [source] = positionals;
  if (!source || (values.text === undefined) === (values.input === undefined)) throw new SedacError('E_USAGE', USAGE);
  const model = await loadModel({ name: source, source, threads: intOpt(values.threads, 'threads', 1, 1), cacheDir: values['cache-dir'], quiet: values.json });
  try {
    if (!model.classify) throw new SedacError('E_USAGE', `${source} is a ${model.task} model; use \`sedac generate\``);
    if (values.text !== undefined) return await one(model, values.text, values.level, values.json === true);
    return await file(model, values.input!, values.level, values.json === true);
  } finally {
    await model.dispose();
  }
}

async function one(model: LoadedModel, text: string, level: string | undefined, json: boolean): Promise<number> {
  const r = await model.classify!(text, { level });
  if (json) console.log(JSON.stringify({ label: r.label, probs: roundAll(r.probs, 4), layers: r.layers, level: r.level, ms: round(r.ms, 3) }));
  else {
    const probs = Object.entries(r.probs).map(([k, v]) => `${k} ${v.toFixed(3)}`).join(', ');
    console.log(`${r.label}  (${probs}; ${r.layers}/${model.nLayers} layers, level ${r.level}, ${r.ms.toFixed(2)} ms)`);
  }
  return 0;
}

interface Line {
  text: string;
  label?: string;
}

/** Parse the file line by line; unusable lines are counted by error code, not fatal. */
function readLines(path: string, labels: string[], errors: Record<string, number>): Line[] {
  let buf: Buffer;
  try {
    buf = readFileSync(path);
  } catch {
    throw new SedacError('E_USAGE', `cannot read ${path}`);
  }
  const out: Line[] = [];
  let start = 0;
  while (start < buf.length) {
    let end = buf.indexOf(0x0a, start);
    if (end < 0) end = buf.length;
    const bytes = buf.subarray(start, end);
    start = end + 1;
    try {
      const s = decodeUtf8(bytes, 'line');
      if (!s.trim()) continue;
      let o: { text?: unknown; label?: unknown };
      try {
        o = JSON.parse(s) as typeof o;
      } catch {
        throw new SedacError('E_BAD_REQUEST', 'not JSON');
      }
      if (typeof o.text !== 'string') throw new SedacError('E_BAD_REQUEST', 'no "text" string');
      const label = typeof o.label === 'number' ? labels[o.label] : typeof o.label === 'string' && labels.includes(o.label) ? o.label : undefined;
      out.push({ text: o.text, label });
    } catch (err) {
      const code = asSedacError(err).code;
      errors[code] = (errors[code] ?? 0) + 1;
    }
  }
  return out;
}

async function file(model: LoadedModel, path: string, level: string | undefined, json: boolean): Promise<number> {
  if (!(model instanceof Classifier)) throw new SedacError('E_MODEL_UNSUPPORTED', 'not a SEDAC classifier bundle');
  const labels = model.labels;
  if (level !== undefined && level !== 'exact' && level !== 'full' && !model.levels.includes(level)) {
    await model.classify('level check', { level }); // throws the engine's E_BAD_REQUEST naming the known levels
  }
  const errors: Record<string, number> = {};
  const lines = readLines(path, labels, errors);
  // warm-up (JIT, ORT arenas), not timed: a few lines through both passes
  for (const { text } of lines.slice(0, 8)) {
    for (const lv of [level, 'exact']) await model.classify(text, { level: lv }).catch(() => undefined);
  }
  const gold: number[] = [], pred: number[] = [], full: number[] = [], layers: number[] = [], ms: number[] = [], fullMs: number[] = [];
  for (let i = 0; i < lines.length; i++) {
    const { text, label } = lines[i]!;
    try {
      // alternate which pass goes first, so neither gets the warmer caches
      const first = i % 2 === 0;
      const a = await model.classify!(text, first ? { level } : { level: 'exact' });
      const b = await model.classify!(text, first ? { level: 'exact' } : { level });
      const [lv, fd] = first ? [a, b] : [b, a];
      gold.push(label === undefined ? -1 : labels.indexOf(label));
      pred.push(labels.indexOf(lv.label));
      full.push(labels.indexOf(fd.label));
      layers.push(lv.layers);
      ms.push(lv.ms);
      fullMs.push(fd.ms);
    } catch (err) {
      const code = asSedacError(err).code;
      errors[code] = (errors[code] ?? 0) + 1;
    }
  }
  const labelled = gold.some((g) => g >= 0);
  const m = labelled ? classMetrics(gold, pred, labels) : undefined;
  const p50 = percentile(ms, 0.5), fullP50 = percentile(fullMs, 0.5);
  const out = {
    n: pred.length,
    level: level ?? 'full',
    accuracy: m ? round(m.accuracy, 4) : null,
    macro_f1: m ? round(m.macro_f1, 4) : null,
    per_class_f1: m ? roundAll(m.per_class_f1, 4) : null,
    agreement_with_full: round(agreement(pred, full), 4),
    mean_layers: round(pred.length ? layers.reduce((x, y) => x + y, 0) / pred.length : NaN, 3),
    p50_ms: round(p50, 3),
    full_p50_ms: round(fullP50, 3),
    speedup: round(fullP50 / p50, 2),
    ...(Object.keys(errors).length ? { errors } : {}),
  };
  if (json) console.log(JSON.stringify(out));
  else {
    console.log(`${out.n} texts, level ${out.level}: mean layers ${out.mean_layers}/${model.nLayers}, agreement with full depth ${out.agreement_with_full}`);
    if (m) console.log(`accuracy ${out.accuracy}, macro-F1 ${out.macro_f1}, per class ${Object.entries(out.per_class_f1 ?? {}).map(([k, v]) => `${k} ${v}`).join(', ')}`);
    console.log(`p50 ${out.p50_ms} ms (full depth ${out.full_p50_ms} ms): speedup ${out.speedup}×`);
    if (out.errors) console.log(`skipped lines: ${Object.entries(out.errors).map(([k, v]) => `${v} × ${k}`).join(', ')}`);
  }
  return 0;
}

function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

function roundAll(o: Record<string, number>, digits: number): Record<string, number> {
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, round(v, digits)]));
}
