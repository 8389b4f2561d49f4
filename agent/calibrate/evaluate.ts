/**
 * Measuring a level the way the bench does, with full depth interleaved in the same process:
 * teacher-forced agreement with the full model's argmax over the data, mean layers, and free-running
 * decode speed over prompts taken from the same texts (timing.ts; first 32 generated tokens compared
 * with full depth).
 */
import type { Decoder } from '../engine/decoder.js';
import { resolveLevel } from '../engine/generation.js';
import { argmax } from '../engine/sampling.js';
import { median } from './classifierMetrics.js';
import { replayLevel } from './holdout.js';
import { interleavedRuns, msPerStep } from './timing.js';

export interface EvalOptions {
  /** texts used for teacher-forced agreement; default 300 */
  maxTexts?: number;
  /** prompts for the speed and exact-match runs; default 40 */
  prompts?: number;
  /** prompt length in tokens after BOS; default 2 */
  promptTokens?: number;
  /** tokens generated per prompt; default 32 */
  genTokens?: number;
  /** measurement rounds (level and full interleaved); the median is reported; default 5 */
  rounds?: number;
}

export interface EvalResult {
  level: string;
  tokens: number;
  agreement: number;
  mean_layers: number;
  tokens_per_s: number;
  full_tokens_per_s: number;
  speedup: number;
  first32_exact_match: number;
  /** mean layers per generated token in the free-running runs */
  gen_mean_layers: number;
}


/** Token ids and the full model's argmax at every position, for teacher forcing. */
export async function fullTargets(d: Decoder, texts: string[], maxTexts: number): Promise<{ ids: number[]; target: Int32Array }[]> {
  const V = d.config.vocabSize;
  const out: { ids: number[]; target: Int32Array }[] = [];
  for (const t of texts) {
    if (out.length >= maxTexts) break;
    const ids = d.encodePromptTruncated(t, d.config.maxSeqLen);
    if (ids.length < 2) continue;
    const logits = await d.forward(ids, d.newState());
    out.push({ ids, target: Int32Array.from(ids, (_, p) => argmax(logits, p * V, V)) });
  }
  return out;
}

export async function evaluateLevel(d: Decoder, levelName: string, texts: string[], opts: EvalOptions = {}): Promise<EvalResult> {
  const seqs = await fullTargets(d, texts, opts.maxTexts ?? 300);
  const ladder = d.ladder;
  const { level } = resolveLevel(d, levelName);
  const tf = ladder && level ? await replayLevel(d, ladder, level.name, seqs) : { tokens: seqs.reduce((a, s) => a + s.ids.length, 0), agreement: 1, mean_layers: d.config.nLayers };
  if (level?.mode === 'speculative') tf.mean_layers = d.config.nLayers; // every token is verified at full depth

  const promptLen = 1 + (opts.promptTokens ?? 2);
  const prompts = seqs.filter((s) => s.ids.length > promptLen).slice(0, opts.prompts ?? 40).map((s) => s.ids.slice(0, promptLen));
  const gen = Math.min(opts.genTokens ?? 32, d.config.maxSeqLen - promptLen - 1);
  const pairs = await interleavedRuns(d, level, prompts, opts.rounds ?? 5, gen);
  const rate = median(pairs.map((p) => 1000 / msPerStep(p.level)));
  const full = median(pairs.map((p) => 1000 / msPerStep(p.full)));
  const speedup = median(pairs.map((p) => msPerStep(p.full) / msPerStep(p.level)));
  const { full: f, level: l } = pairs[0]!;
  const exact = l.outs.filter((o, i) => o.length === f.outs[i]!.length && o.every((t, k) => t === f.outs[i]![k])).length / Math.max(1, prompts.length);
  const generated = l.outs.reduce((a, o) => a + o.length, 0);
  const genLayers = generated ? l.layers / generated : d.config.nLayers;
  return {
    level: level?.name ?? 'full',
    tokens: tf.tokens,
    agreement: tf.agreement,
    mean_layers: tf.mean_layers,
    tokens_per_s: Math.round(rate),
    full_tokens_per_s: Math.round(full),
    speedup: Math.round(speedup * 1000) / 1000,
    first32_exact_match: exact,
    gen_mean_layers: Math.round(genLayers * 100) / 100,
  };
}
