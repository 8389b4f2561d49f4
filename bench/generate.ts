/**
 * `npm run bench -- generate`: full-depth decoding speed of every shared decoder model, with the
 * per-step cost breakdown and peak RSS, and llama.cpp (node-llama-cpp) on the same GGUF in the same
 * run as the peer baseline. Each model is measured in its own child process so RSS is its own.
 *
 * Decode tokens/s = generated tokens / decode time (prefill excluded), median of RUNS runs.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { loadModel } from '../agent/engine/index.js';
import type { Decoder } from '../agent/engine/decoder.js';
import { Session, f32 } from '../agent/engine/ort.js';
import { DType, GraphBuilder } from '../agent/convert/onnx.js';
import { markdownTable, median, round } from './stats.js';
import { sharedPath } from '../test/helpers/shared.js';
import { type WideSpec, wideName, widenedGguf } from '../test/helpers/widened.js';

export interface DecoderBenchModel {
  name: string;
  /** a GGUF under ../shared, or a widened caption model (generated into the bench cache) */
  gguf?: string;
  wide?: WideSpec;
  prompt: string;
  tokens: number;
}

/**
 * The dispatch-bound regression guards (d ≤ 128) and the widened caption models (realistic compute
 * per layer, identical outputs: bench/widened.ts). SEDAC_BENCH_MODELS (comma-separated names)
 * picks a subset; the default is every model.
 */
export const ALL_DECODER_MODELS: DecoderBenchModel[] = [
  { name: 'stories260K', gguf: 'models/stories260K/stories260K.gguf', prompt: 'Once upon a time', tokens: 200 },
  { name: 'caption-lm-8L', gguf: 'models/caption-lm-8L/caption-lm-8L.gguf', prompt: 'a dog', tokens: 56 },
  { name: 'caption-lm-8L-ee', gguf: 'models/caption-lm-8L-ee/caption-lm-8L-ee.gguf', prompt: 'a dog', tokens: 56 },
  ...([
    { base: 'caption-lm-8L-ee', k: 4, type: 'f32' },
    { base: 'caption-lm-8L-ee', k: 4, type: 'q8_0' },
    { base: 'caption-lm-8L', k: 4, type: 'f32' },
    { base: 'caption-lm-8L-ee', k: 8, type: 'f32' },
  ] as WideSpec[]).map((wide) => ({ name: wideName(wide), wide, prompt: 'a dog', tokens: 56 })),
];

const PICK = process.env.SEDAC_BENCH_MODELS?.split(',').map((s) => s.trim());

/** The models a suite runs: SEDAC_BENCH_MODELS when set, else the suite's own choice. */
export function benchModels(defaults: (m: DecoderBenchModel) => boolean): DecoderBenchModel[] {
  return ALL_DECODER_MODELS.filter((m) => (PICK ? PICK.includes(m.name) : defaults(m)));
}

/** The d ≤ 128 models: dispatch-bound regression guards (their outputs are what the widened ones reproduce). */
export const isSmall = (m: DecoderBenchModel): boolean => m.wide === undefined;

/** The model's GGUF: under ../shared, or widened into the bench cache and checked. */
export async function modelFile(m: DecoderBenchModel): Promise<string> {
  return m.wide ? widenedGguf(m.wide) : sharedPath(m.gguf!);
}

const RUNS = Number(process.env.SEDAC_BENCH_RUNS ?? 7);

/** Greedy decode of exactly n tokens (EOS ignored) with `forward`; returns decode-only tokens/s. */
async function decodeRate(d: Decoder, prompt: number[], n: number, layered: boolean, timer?: (role: string, ms: number) => void): Promise<number> {
  const s = d.newState();
  const V = d.config.vocabSize;
  const fwd = (ids: number[]) => (layered ? d.forwardLayered(ids, s, timer) : d.forward(ids, s));
  let logits = await fwd(prompt);
  let off = (prompt.length - 1) * V;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let v = 1; v < V; v++) if (logits[off + v]! > logits[off + best]!) best = v;
    logits = await fwd([best]);
    off = 0;
  }
  return n / ((performance.now() - t0) / 1000);
}

/** Wall time of one session.run on a trivial graph: the floor every call pays. */
async function callFloorUs(dim: number): Promise<number> {
  const g = new GraphBuilder('identity');
  g.input('x', DType.FLOAT, [1, 1, dim]);
  g.node('Identity', ['x'], ['y']);
  g.output('y', DType.FLOAT, [1, 1, dim]);
  const s = await Session.load(g.toBytes(), 'identity');
  const x = f32(new Float32Array(dim), [1, 1, dim]);
  const times: number[] = [];
  for (let r = 0; r < 5; r++) {
    const t0 = performance.now();
    for (let i = 0; i < 2000; i++) await s.run({ x });
    times.push(((performance.now() - t0) / 2000) * 1000);
  }
  await s.release();
  return median(times);
}

/**
 * This process's peak RSS (kB) from VmHWM, which starts fresh at exec; getrusage's maxrss is
 * inherited across exec and would report the parent's peak.
 */
export function peakRssKb(): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
    if (m) return Number(m[1]);
  } catch {
    // not Linux: fall back below
  }
  return process.resourceUsage().maxRSS;
}

/** Measure one model in this process (called in a child). */
export async function measureModel(name: string): Promise<Record<string, unknown>> {
  const spec = ALL_DECODER_MODELS.find((m) => m.name === name);
  if (!spec) throw new Error(`unknown bench model ${name}`);
  const d = (await loadModel({ name, source: await modelFile(spec), quiet: true })) as Decoder;
  const prompt = d.encodePrompt(spec.prompt);
  const n = Math.min(spec.tokens, d.config.maxSeqLen - prompt.length - 1);
  // both paths stay loaded side by side (two copies of the weights: this bench compares them)
  const unpin = d.pin([...d.layeredRoles(), 'full']);
  // warm-up, then interleave fused and layered runs so both see the same machine state
  await decodeRate(d, prompt, 8, false);
  await decodeRate(d, prompt, 8, true);
  const fused: number[] = [];
  const layered: number[] = [];
  const steps = new Map<string, number[]>();
  for (let r = 0; r < RUNS; r++) {
    fused.push(await decodeRate(d, prompt, n, false));
    const acc = new Map<string, number>();
    layered.push(await decodeRate(d, prompt, n, true, (role, ms) => acc.set(role, (acc.get(role) ?? 0) + ms)));
    for (const [role, ms] of acc) steps.set(role, [...(steps.get(role) ?? []), (ms / (n + 1)) * 1000]);
  }
  const floor = await callFloorUs(d.config.dim);
  const breakdown: Record<string, number> = {};
  for (const [role, us] of steps) breakdown[`${role}_us`] = round(median(us), 1);
  const callsPerToken = d.config.nLayers + 2;
  unpin();
  await d.dispose();
  return {
    model: name,
    layers: d.config.nLayers,
    dim: d.config.dim,
    decode_tokens: n,
    prompt_ids: prompt,
    runs: RUNS,
    fused_tokens_per_s: round(median(fused), 0),
    layered_tokens_per_s: round(median(layered), 0),
    fused_runs: fused.map((x) => round(x, 0)),
    step_breakdown_us: breakdown,
    call_floor_us: round(floor, 2),
    layered_call_overhead_us_per_token: round(floor * callsPerToken, 1),
    peak_rss_mb: round(peakRssKb() / 1024, 1),
  };
}

export async function benchGenerate(): Promise<{ rows: Record<string, unknown>[]; table: string }> {
  const self = fileURLToPath(import.meta.url);
  const { peerTokensPerSecond } = await import('./peer.js');
  const rows: Record<string, unknown>[] = [];
  // speed and memory: every model, the widened ones at realistic size included
  for (const m of benchModels(() => true)) {
    const out = execFileSync(process.execPath, [self, '--child', m.name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
    const row = JSON.parse(out.trim().split('\n').pop()!) as Record<string, unknown>;
    const peerRuns: Record<string, unknown>[] = [];
    let peerBest = NaN;
    for (const threads of [1, 2]) {
      const p = await peerTokensPerSecond(await modelFile(m), { promptTokens: row.prompt_ids as number[], nTokens: Number(row.decode_tokens), threads, runs: RUNS });
      peerRuns.push({ threads, ...p });
      if ('tokens_per_s_median' in p) peerBest = Number.isFinite(peerBest) ? Math.max(peerBest, p.tokens_per_s_median) : p.tokens_per_s_median;
    }
    row.peer = peerRuns;
    row.peer_best_tokens_per_s = Number.isFinite(peerBest) ? round(peerBest, 0) : null;
    row.ratio_vs_llama_cpp = Number.isFinite(peerBest) ? round(Number(row.fused_tokens_per_s) / peerBest, 2) : null;
    rows.push(row);
  }
  const table = markdownTable(
    rows.map((r) => ({
      model: r.model,
      'fused tok/s': r.fused_tokens_per_s,
      'layered tok/s': r.layered_tokens_per_s,
      'llama.cpp tok/s (best of 1,2 thr)': r.peer_best_tokens_per_s ?? 'n/a',
      'ratio': r.ratio_vs_llama_cpp ?? 'n/a',
      'call floor µs': r.call_floor_us,
      'peak RSS MB': r.peak_rss_mb,
    })),
  );
  const breakdown = markdownTable(
    rows.map((r) => {
      const b = r.step_breakdown_us as Record<string, number>;
      const layers = Object.entries(b).filter(([k]) => k.startsWith('layer.'));
      const mean = layers.reduce((a, [, v]) => a + v, 0) / Math.max(1, layers.length);
      return {
        model: r.model,
        'embed µs': b.embed_us,
        'layer µs (mean of each)': `${round(mean, 1)} (${layers.map(([, v]) => v).join(', ')})`,
        'head µs': b.head_us,
        'session calls / token (layered)': Number(r.layers) + 2,
        'call floor µs (empty graph)': r.call_floor_us,
        'fused µs / token': round(1e6 / Number(r.fused_tokens_per_s), 0),
      };
    }),
  );
  return { rows, table: `${table}\nPer-step cost of the layered path (wall time per decoded token, median of runs; each step includes its session call):\n\n${breakdown}` };
}

if (process.argv[2] === '--child' && process.argv[3]) {
  measureModel(process.argv[3]).then(
    (row) => console.log(JSON.stringify(row)),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
