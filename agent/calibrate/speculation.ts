/**
 * Choosing the lossless `exact` level's drafter. Self-speculative decoding drafts tokens with the
 * first k layers (a static truncation: one session call per draft), then the fused full-depth graph
 * verifies them all in one call and the longest prefix it agrees with is kept. Whether that beats
 * plain full depth depends on how often drafts are right and on what a batched verification costs,
 * so both are replayed from the teacher-forced calibration table with the measured costs: for each
 * drafting depth, most drafts per verification, and score above which drafting stops (a draft the
 * exit head is unsure of is likely wrong, and every draft after it is wasted), the predicted µs per
 * token. Output identity does not depend on the choice, only speed; calibration measures the winner.
 */
import type { CostModel } from '../engine/ladder.js';
import type { TokenTable } from './exitTable.js';

export interface DraftChoice {
  /** drafting depth (layers) */
  depth: number;
  maxDraft: number;
  /** stop drafting after a draft whose exit score is above this (Infinity: never) */
  stop: number;
  /** predicted µs per emitted token */
  usPerToken: number;
  /** fraction of drafts the full model accepts in the replay */
  acceptance: number;
}

/**
 * Replay one drafter over the table, as the engine runs it (LayerSkip: the verification reuses the
 * drafts' first `depth` layers). Positions are in text order; `textOf` gives each one's text. A
 * cycle at position p drafts the predictions of positions p, p+1, … (stopping at maxDraft, at a
 * draft above `stop`, or at the end of the text), one draft call each; the verification runs layers
 * depth..L on as many rows as drafts and accepts the leading drafts equal to the full model's
 * argmax, then adds the full model's own token where a draft was wrong.
 */
export function replayDrafts(t: TokenTable, textOf: Int32Array, depth: number, maxDraft: number, stop: number, costs: CostModel): DraftChoice {
  const pred = t.pred[depth - 1]!;
  const score = t.score[depth - 1]!;
  const L = t.pred.length + 1;
  // the fused graph on n rows, less the share of the layers the drafts already ran
  const verify = costs.verify_us!.map((us) => costs.call_us + (us - costs.call_us) * ((L - depth) / L));
  const draftUs = costs.call_us + depth * costs.layer_us + costs.head_us;
  let us = 0;
  let tokens = 0;
  let drafted = 0;
  let accepted = 0;
  const n = t.full.length;
  for (let start = 0; start < n; ) {
    let end = start;
    while (end < n && textOf[end] === textOf[start]) end++;
    for (let p = start; p < end; ) {
      let k = 0;
      while (k < maxDraft && p + k < end) {
        k++;
        if (score[p + k - 1]! > stop) break;
      }
      let j = 0;
      while (j < k && pred[p + j] === t.full[p + j]) j++;
      us += k * draftUs + verify[k - 1]!;
      drafted += k;
      accepted += j;
      const emitted = Math.min(j < k ? j + 1 : k, end - p);
      tokens += emitted;
      p += emitted;
    }
    start = end;
  }
  return { depth, maxDraft, stop, usPerToken: us / Math.max(1, tokens), acceptance: drafted ? accepted / drafted : 0 };
}

/** Stop thresholds tried: never, and the quantiles of the drafting depth's exit score. */
function stopGrid(score: Float32Array): number[] {
  const sorted = Float32Array.from(score).sort();
  const qs = [0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9];
  return [Infinity, ...qs.map((q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!)];
}

/**
 * Drafters predicted faster than full depth, fastest first: the best (drafts per verification,
 * score stop) for each drafting depth. Needs costs.verify_us.
 */
export function drafterCandidates(t: TokenTable, textOf: Int32Array, nLayers: number, costs: CostModel): DraftChoice[] {
  const verify = costs.verify_us;
  if (!verify || verify.length < 2) return [];
  const out: DraftChoice[] = [];
  for (let depth = 1; depth < nLayers; depth++) {
    let best: DraftChoice | undefined;
    for (const stop of stopGrid(t.score[depth - 1]!)) {
      for (let m = 1; m <= verify.length; m++) {
        const c = replayDrafts(t, textOf, depth, m, stop, costs);
        if (!best || c.usPerToken < best.usPerToken) best = c;
      }
    }
    if (best && best.usPerToken < verify[0]!) out.push(best);
  }
  return out.sort((a, b) => a.usPerToken - b.usPerToken);
}
