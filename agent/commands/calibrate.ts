/** `sedac calibrate <bundle> --data FILE [--levels name=target,...]`: fit exit heads and the ladder. */
import { ensureBundle } from '../convert/cache.js';
import { readManifest } from '../engine/bundle.js';
import type { Decoder } from '../engine/decoder.js';
import { loadModel } from '../engine/index.js';
import { DEFAULT_TARGETS, EXIT_SIGNALS, type DecoderLadder, type ExitSignal, type HostInfo, LEVEL_NAME, describePlan } from '../engine/ladder.js';
import type { RetimeReport } from '../calibrate/retime.js';
import { SedacError } from '../errors.js';
import { intOpt, numOpt, parse } from './args.js';

const USAGE = `usage: sedac calibrate <bundle> --data FILE [--levels name=target,...] [--confidence C]
                       [--max-tokens N] [--kv recompute|propagate] [--objective speed|layers]
                       [--signal auto|entropy|margin] [--json]
       sedac calibrate <bundle> --retime [--json]
  --memory-mb timing a plan keeps it and the fused graph loaded side by side when both fit in this
              many MB (default $SEDAC_MEMORY_MB, else a quarter of RAM); otherwise they alternate
  --retime    re-time a calibrated decoder bundle's candidate plans on this device and serve the
              fastest that pays (statistics and guarantees unchanged; no data or model source needed)
  --data      plain text (one text per line) or JSONL with a "text" field (and "label" for classifiers)
  --levels    targets, e.g. high=0.99,balanced=0.97,eco=0.93,critical=0.85 (exact is always lossless)
  --objective speed (default): exit points chosen for measured speed, levels whose exits would not pay
              run at full depth; layers: fewest layers (for devices where arithmetic dominates)
  --signal    what an exit head's confidence is read from: entropy (normalized), margin (the gap
              between its two largest logits), or auto (default): whichever plans cheaper on the fit split`;

export function parseLevels(spec: string | undefined): Record<string, number> | undefined {
  if (spec === undefined) return undefined;
  const out: Record<string, number> = {};
  for (const part of spec.split(',').filter(Boolean)) {
    const [name, value] = part.split('=');
    const target = Number(value);
    if (!name || !LEVEL_NAME.test(name) || !(target > 0 && target < 1)) {
      throw new SedacError('E_USAGE', `--levels: '${part}' is not name=target with 0 < target < 1`);
    }
    out[name] = target;
  }
  return out;
}

export async function main(argv: string[]): Promise<number> {
  const args = parse(
    argv,
    { data: { type: 'string' }, retime: { type: 'boolean' }, 'memory-mb': { type: 'string' }, levels: { type: 'string' }, confidence: { type: 'string' }, 'max-tokens': { type: 'string' }, kv: { type: 'string' }, objective: { type: 'string' }, signal: { type: 'string' }, json: { type: 'boolean' }, quiet: { type: 'boolean' } },
    USAGE,
    [1, 1],
  );
  if (!args) return 0;
  const { values, positionals } = args;
  const [source] = positionals;
  // the decoders calibration and retiming load read it (DecoderOptions.memoryMb)
  if (values['memory-mb'] !== undefined) process.env.SEDAC_MEMORY_MB = String(intOpt(values['memory-mb'], 'memory-mb', 0, 64));
  if (source && values.retime) {
    if (values.data !== undefined) throw new SedacError('E_USAGE', '--retime re-times the plans a calibration chose: it takes no --data');
    const { retimeDecoder } = await import('../calibrate/retime.js');
    const report = await retimeDecoder(await ensureBundle(source, { quiet: true }), { quiet: values.quiet || values.json });
    console.log(values.json ? JSON.stringify(report) : retimeTable(report));
    return 0;
  }
  if (!source || !values.data) throw new SedacError('E_USAGE', USAGE);
  if (values.kv !== undefined && values.kv !== 'recompute' && values.kv !== 'propagate') throw new SedacError('E_USAGE', `--kv must be recompute or propagate`);
  if (values.objective !== undefined && values.objective !== 'speed' && values.objective !== 'layers') throw new SedacError('E_USAGE', `--objective must be speed or layers`);
  if (values.signal !== undefined && values.signal !== 'auto' && !EXIT_SIGNALS.includes(values.signal as ExitSignal)) throw new SedacError('E_USAGE', `--signal must be auto, entropy or margin`);
  const levels = parseLevels(values.levels);
  const confidence = numOpt(values.confidence, 'confidence', 0.95, 0.5, 0.9999);
  const quiet = values.quiet || values.json;
  const dir = await ensureBundle(source, { quiet });
  const m = readManifest(dir, true);
  if (m.task === 'classify') {
    const { calibrateClassifier } = await import('../calibrate/classifierCalibrate.js');
    const report = await calibrateClassifier(dir, values.data, { levels, confidence, quiet });
    console.log(values.json ? JSON.stringify(report) : JSON.stringify(report, null, 2));
    return 0;
  }
  const { calibrateDecoder } = await import('../calibrate/decoderCalibrate.js');
  const d = (await loadModel({ name: source, source: dir })) as Decoder;
  try {
    const ladder = await calibrateDecoder(d, dir, values.data, {
      levels: levels ? { exact: 1, ...levels } : DEFAULT_TARGETS,
      confidence,
      maxTokens: intOpt(values['max-tokens'], 'max-tokens', 40_000, 100),
      kv: values.kv as 'recompute' | 'propagate' | undefined,
      objective: values.objective as 'speed' | 'layers' | undefined,
      signal: values.signal as ExitSignal | 'auto' | undefined,
      quiet,
    });
    if (values.json) console.log(JSON.stringify({ bundle: dir, ...ladder }));
    else console.log(ladderTable(ladder, d.config.nLayers));
  } finally {
    await d.dispose();
  }
  return 0;
}

function retimeTable(r: RetimeReport): string {
  const where = (h: HostInfo | undefined) => (h ? `${h.hostname} (${h.cpu}, ${h.cores} cores, ${h.arch}) at ${h.at}` : 'unknown');
  return [
    `calibrated on ${where(r.calibrated_on)}; re-timed on ${where(r.timed_on)}`,
    '',
    '| level | serves | measured speedup | candidates (measured) |',
    '|---|---|---|---|',
    ...r.levels.map((l) => `| ${l.level} | ${l.served} | ${l.measured_speedup?.toFixed(2) ?? '—'} | ${l.candidates.map((c) => `${c.plan}: ${c.measured_speedup}×`).join('; ')} |`),
  ].join('\n');
}

function ladderTable(ladder: DecoderLadder, L: number): string {
  const pct = (x: number | undefined) => (x === undefined ? '—' : `${(x * 100).toFixed(2)} %`);
  const rows = ladder.levels.map((l) =>
    [l.name, l.target >= 1 ? 'identical' : pct(l.target), l.mode, describePlan(l), pct(l.calibration?.agreement), pct(l.holdout?.agreement), (l.holdout?.mean_layers ?? L).toFixed(2), (l.predicted_speedup ?? 1).toFixed(2), l.measured_speedup?.toFixed(2) ?? '—'].join(' | '),
  );
  return [
    `costs: call ${ladder.costs.call_us} µs, layer ${ladder.costs.layer_us} µs, head ${ladder.costs.head_us} µs; K/V for skipped layers: ${ladder.kv}`,
    `exit score: ${ladder.signal ?? 'entropy'}${ladder.signals ? ` (predicted cost vs fused: ${Object.entries(ladder.signals).map(([k, v]) => `${k} ${v}`).join(', ')})` : ''}; heads: ${ladder.heads.map((h) => `${h.exit}:${h.kind === 'affine_lens' ? 'affine' : 'logit'}`).join(' ')}`,
    '',
    '| level | target | mode | exit points | agreement (cal) | agreement (held-out) | mean layers (held-out) | predicted speedup | measured speedup |',
    '|---|---|---|---|---|---|---|---|---|',
    ...rows.map((r) => `| ${r} |`),
  ].join('\n');
}
