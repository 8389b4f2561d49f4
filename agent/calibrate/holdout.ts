/**
 * The held-out check: teacher-forced replay of held-out texts through the real exit engine (real
 * exits, lazy K/V), compared with the full model's answers collected before. Its agreement and mean
 * layers go into the ladder beside the calibration split's.
 */
import { loadModel } from '../engine/index.js';
import type { Decoder } from '../engine/decoder.js';
import { exitStateFrom, exitStep } from '../engine/exits.js';
import type { DecoderLadder, LadderLevel } from '../engine/ladder.js';
import { progressBar } from '../convert/progress.js';
import { argmax } from '../engine/sampling.js';
import { median } from './classifierMetrics.js';
import type { DecoderCalibrationData } from './decoderData.js';
import { interleavedRuns, msPerStep } from './timing.js';

export interface ReplayStats {
  tokens: number;
  agreement: number;
  mean_layers: number;
}

/** Teacher-forced agreement of one level on token sequences whose full-model answers are known. */
export async function replayLevel(d: Decoder, ladder: DecoderLadder, levelName: string, seqs: { ids: number[]; target: Int32Array }[]): Promise<ReplayStats> {
  const level = ladder.levels.find((l) => l.name === levelName);
  let n = 0;
  let agree = 0;
  let layers = 0;
  for (const { ids, target } of seqs) {
    if (!level?.plan || level.mode !== 'exits') {
      n += ids.length;
      agree += ids.length;
      layers += ids.length * d.config.nLayers;
      continue;
    }
    // BOS through the fused graph, then every next true token through the exit engine
    const run = d.newState();
    const first = await d.forward([ids[0]!], run);
    n++;
    agree += argmax(first, 0, d.config.vocabSize) === target[0] ? 1 : 0;
    layers += d.config.nLayers;
    const st = exitStateFrom(d, run);
    for (let p = 1; p < ids.length; p++) {
      const step = await exitStep(d, st, ids[p]!, level.plan, ladder.kv);
      n++;
      if (argmax(step.logits, 0, d.config.vocabSize) === target[p]) agree++;
      layers += step.depth;
    }
  }
  return { tokens: n, agreement: n ? agree / n : 1, mean_layers: n ? layers / n : d.config.nLayers };
}

/**
 * The measured speedup a level must show to run its plan rather than the fused full-depth graph:
 * a lossy level must be clearly faster (speed measurements on a shared machine move by ±5 %, and a
 * level no faster than full depth only loses agreement); the lossless one only not slower.
 */
export function minSpeedupFor(target: number): number {
  return target >= 1 ? 1 : 1.05;
}

/** Held-out sequences (whole texts) from the collected data. */
export function heldOutSequences(data: DecoderCalibrationData, tokensOf: (text: number) => number[], holdIdx: Int32Array, maxTexts: number): { ids: number[]; target: Int32Array }[] {
  const byText = new Map<number, number[]>();
  for (const i of holdIdx) {
    const t = data.textOf[i]!;
    if (!byText.has(t) && byText.size >= maxTexts) continue;
    byText.set(t, [...(byText.get(t) ?? []), i]);
  }
  return [...byText.entries()].map(([t, idx]) => ({ ids: tokensOf(t).slice(0, idx.length), target: Int32Array.from(idx, (i) => data.target[i]!) }));
}

/** Free-running decode speed of a level over full depth (timing.ts): median over rounds of the per-round ratio. */
export async function measuredSpeedup(d: Decoder, level: LadderLevel, prompts: number[][], rounds = 5, maxTokens = 24): Promise<number> {
  const pairs = await interleavedRuns(d, level, prompts, rounds, maxTokens);
  return Math.round(median(pairs.map((p) => msPerStep(p.full) / msPerStep(p.level))) * 1000) / 1000;
}

export async function checkHoldout(dir: string, ladder: DecoderLadder, texts: string[], data: DecoderCalibrationData, holdIdx: Int32Array, maxTexts: number, quiet: boolean): Promise<void> {
  const d = (await loadModel({ name: 'holdout', source: dir })) as Decoder;
  try {
    const used = usedTexts(d, texts, data);
    const seqs = heldOutSequences(data, (t) => used[t]!, holdIdx, maxTexts);
    const prompts = seqs.filter((s) => s.ids.length > 3).slice(0, 40).map((s) => s.ids.slice(0, 3));
    const bar = progressBar('calibrate: held-out check', ladder.levels.length, process.stderr, quiet);
    for (const level of ladder.levels) {
      if (level.mode === 'speculative') {
        level.holdout = { tokens: 0, agreement: 1, mean_layers: d.config.nLayers };
      } else {
        level.holdout = await replayLevel(d, ladder, level.name, seqs);
      }
      // measured, not predicted: optimizing for speed, a level slower than the fused full-depth
      // graph runs that graph instead
      if (ladder.objective === 'speed' && level.mode !== 'full' && prompts.length > 0) {
        level.measured_speedup = await measuredSpeedup(d, level, prompts);
        if (level.measured_speedup < minSpeedupFor(level.target)) {
          const h = level.holdout;
          level.note = `measured ${level.measured_speedup}× full-depth speed, needs ${minSpeedupFor(level.target)}× (held-out ${(h.agreement * 100).toFixed(2)} % at ${h.mean_layers.toFixed(2)} layers): runs the full-depth graph`;
          level.mode = 'full';
          level.holdout = { tokens: h.tokens, agreement: 1, mean_layers: d.config.nLayers };
        }
      }
      bar.tick(`${level.name}: ${(level.holdout.agreement * 100).toFixed(2)} %`);
    }
    bar.done();
  } finally {
    await d.dispose();
  }
}

/** The token ids of each text collectDecoderData used, in its numbering. */
export function usedTexts(d: Decoder, texts: string[], data: DecoderCalibrationData): number[][] {
  const out: number[][] = [];
  for (const t of texts) {
    if (out.length >= data.texts) break;
    const ids = d.encodePromptTruncated(t, d.config.maxSeqLen);
    if (ids.length >= 2) out.push(ids);
  }
  return out;
}
