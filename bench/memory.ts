/**
 * `npm run bench -- memory`: each weight once, measured. Per model (default the widened caption
 * models caption-lm-8L-ee-x4 and -x8; SEDAC_BENCH_MODELS picks others): the bundle on disk against
 * the GGUF, calibration (speed objective, default levels) in its own process with its peak RSS and
 * wall time, then every level served in a fresh process (30 validation prompts, up to 24 tokens) with
 * the process's peak RSS (VmHWM) and the graph bytes the decoder holds. Calibrated bundles are kept
 * under the widened-model cache (<cache>/bundles/<model>) so a rerun skips calibration.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { calibrateDecoder, readTexts } from '../agent/calibrate/decoderCalibrate.js';
import { convertModel } from '../agent/convert/cache.js';
import { readManifest } from '../agent/engine/bundle.js';
import type { Decoder } from '../agent/engine/decoder.js';
import { loadModel } from '../agent/engine/index.js';
import { sharedPath } from '../test/helpers/shared.js';
import { wideCacheDir } from '../test/helpers/widened.js';
import { ALL_DECODER_MODELS, benchModels, modelFile, peakRssKb } from './generate.js';
import { markdownTable, round } from './stats.js';

const TRAIN = 'data/flickr8k_captions/train.jsonl';
const VAL = 'data/flickr8k_captions/val.jsonl';
const PROMPTS = 30;
const MAX_TOKENS = 24;

type Row = Record<string, unknown>;

const mb = (bytes: number): number => round(bytes / 1e6, 1);

function dirBytes(dir: string): number {
  return readdirSync(dir).reduce((a, f) => a + statSync(join(dir, f)).size, 0);
}

function bundleDir(name: string): string {
  return join(wideCacheDir(), 'bundles', name);
}

/** Child: convert and calibrate; prints {seconds, peak_rss_mb}. */
async function calibrateChild(name: string): Promise<Row> {
  const spec = ALL_DECODER_MODELS.find((m) => m.name === name)!;
  const dir = bundleDir(name);
  await convertModel(await modelFile(spec), dir, { quiet: true });
  const d = (await loadModel({ name, source: dir, quiet: true })) as Decoder;
  const t0 = performance.now();
  try {
    await calibrateDecoder(d, dir, sharedPath(TRAIN), { quiet: false });
  } finally {
    await d.dispose();
  }
  return { seconds: round((performance.now() - t0) / 1000, 0), peak_rss_mb: round(peakRssKb() / 1024, 0) };
}

/** Child: serve one level; prints {level, peak_rss_mb, held_mb, tokens_per_s, mean_layers}. */
async function serveChild(name: string, level: string): Promise<Row> {
  const d = (await loadModel({ name, source: bundleDir(name), quiet: true })) as Decoder;
  try {
    const prompts = readTexts(sharedPath(VAL)).slice(0, PROMPTS).map((t) => t.split(' ').slice(0, 2).join(' '));
    let tokens = 0;
    let layers = 0;
    const t0 = performance.now();
    for (const p of prompts) {
      const r = await d.generate(p, { level, maxTokens: MAX_TOKENS });
      tokens += r.tokens.length;
      layers += r.layers.reduce((a, b) => a + b, 0);
    }
    const s = (performance.now() - t0) / 1000;
    const held = d.loadedRoles.reduce((a, r) => a + (d.manifest.graphs[r]!.weight_bytes ?? 0), 0);
    return { level, peak_rss_mb: round(peakRssKb() / 1024, 0), held_mb: mb(held), graphs: d.loadedRoles.sort().join(' '), tokens_per_s: round(tokens / s, 0), mean_layers: round(layers / Math.max(1, tokens), 2) };
  } finally {
    await d.dispose();
  }
}

function child(args: string[]): Row {
  const out = execFileSync(process.execPath, [fileURLToPath(import.meta.url), ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 24 });
  return JSON.parse(out.trim().split('\n').pop()!) as Row;
}

export async function benchMemory(): Promise<{ rows: Row[]; table: string }> {
  const rows: Row[] = [];
  const sections: string[] = [];
  for (const spec of benchModels((m) => m.wide?.base === 'caption-lm-8L-ee' && m.wide.type === 'f32')) {
    const gguf = await modelFile(spec);
    const dir = bundleDir(spec.name);
    let calibration: Row = { seconds: null, peak_rss_mb: null, note: 'calibrated bundle reused from the cache' };
    const calibrated = existsSync(join(dir, 'manifest.json')) && (() => {
      try {
        return readManifest(dir, false).extras?.ladder !== undefined;
      } catch {
        return false;
      }
    })();
    if (!calibrated) calibration = child(['--calibrate', spec.name]);
    const m = readManifest(dir, true);
    const levels = ['full', ...((m.extras?.ladder as { levels: { name: string }[] } | undefined)?.levels.map((l) => l.name) ?? [])];
    const weights = m.weight_files.reduce((a, w) => a + w.bytes, 0);
    const served = levels.map((level) => child(['--serve', spec.name, level]));
    const fullRss = Number(served[0]!.peak_rss_mb);
    const row = {
      model: spec.name,
      gguf_mb: mb(statSync(gguf).size),
      bundle_mb: mb(dirBytes(dir)),
      bundle_over_gguf: round(dirBytes(dir) / statSync(gguf).size, 3),
      weight_files_mb: mb(weights),
      calibration_s: calibration.seconds,
      calibration_peak_rss_mb: calibration.peak_rss_mb,
      levels: served.map((r): Row => ({ ...r, rss_over_full: round(Number(r.peak_rss_mb) / fullRss, 3) })),
    };
    rows.push(row);
    sections.push(
      [
        `### ${spec.name} (widened by ../shared/tools/widen_gguf.py: the trained model's outputs at realistic size)`,
        '',
        `GGUF ${row.gguf_mb} MB; calibrated bundle ${row.bundle_mb} MB on disk (${row.bundle_over_gguf}× the GGUF; weight files ${row.weight_files_mb} MB). ` +
          (calibration.seconds === null ? 'Calibration: reused from the cache (delete it to measure).' : `Calibration (speed objective, default levels, ${TRAIN}): ${calibration.seconds} s, peak RSS ${calibration.peak_rss_mb} MB.`),
        '',
        markdownTable(row.levels.map((r) => ({ level: r.level, 'peak RSS MB': r.peak_rss_mb, '× full': r.rss_over_full, 'graph weights held MB': r.held_mb, graphs: r.graphs, 'tok/s (incl. prefill)': r.tokens_per_s, 'mean layers': r.mean_layers }))),
      ].join('\n'),
    );
  }
  return {
    rows,
    table: `Each level served in a fresh process: ${PROMPTS} validation prompts (first two words), up to ${MAX_TOKENS} tokens; peak RSS = VmHWM of that process. Graph weights held = the initializer bytes of the graphs the decoder keeps loaded after serving.\n\n${sections.join('\n')}`,
  };
}

if (process.argv[2] === '--calibrate' && process.argv[3]) {
  calibrateChild(process.argv[3]).then((r) => console.log(JSON.stringify(r)), (err: unknown) => { console.error(err); process.exit(1); });
} else if (process.argv[2] === '--serve' && process.argv[3] && process.argv[4]) {
  serveChild(process.argv[3], process.argv[4]).then((r) => console.log(JSON.stringify(r)), (err: unknown) => { console.error(err); process.exit(1); });
}
