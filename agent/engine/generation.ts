/**
 * Generation at an operating level. Each mode is a token stream over the same prefilled state:
 * - `full`: the fused full-depth graph, one call per token (the fastest full-depth path);
 * - `exits`: early exit per token (exits.ts);
 * - `speculative` (the lossless `exact` level): tokens drafted with early exits, then verified by
 *   the full model in one batched call; the longest agreeing prefix is kept, so the output is the
 *   full model's greedy output token for token.
 */
import { SedacError } from '../errors.js';
import type { Decoder, RunState } from './decoder.js';
import { exitStateFrom, exitStep, truncateRun } from './exits.js';
import type { KvMode, LadderLevel } from './ladder.js';
import { type Sampler, argmax } from './sampling.js';

export interface Emitted {
  token: number;
  /** layers computed to choose this token */
  depth: number;
}

type TokenStream = () => Promise<Emitted[]>;

/** The full-depth stream: sample from the last logits, run the chosen token, repeat. */
function fullStream(d: Decoder, run: RunState, first: Float32Array, sampler: Sampler): TokenStream {
  const V = d.config.vocabSize;
  let logits = first;
  let pending: number | undefined;
  return async () => {
    if (pending !== undefined) logits = (await d.forward([pending], run)).subarray(0, V);
    pending = sampler.next(logits, 0, V);
    return [{ token: pending, depth: d.config.nLayers }];
  };
}

/** The early-exit stream: the first token comes from the prefill, later ones from exitStep. */
function exitStream(d: Decoder, run: RunState, first: Float32Array, sampler: Sampler, level: LadderLevel, kv: KvMode): TokenStream {
  const V = d.config.vocabSize;
  const st = exitStateFrom(d, run);
  let pending: number | undefined;
  return async () => {
    if (pending === undefined) {
      pending = sampler.next(first, 0, V);
      return [{ token: pending, depth: d.config.nLayers }];
    }
    const step = await exitStep(d, st, pending, level.plan!, kv);
    pending = sampler.next(step.logits, 0, V);
    return [{ token: pending, depth: step.depth }];
  };
}

/**
 * Lossless speculative stream (greedy). `run` holds the verified cache; `next` is the full model's
 * next token, already emitted. Each call drafts up to max_draft tokens after it with early exits
 * (stopping early when a draft needed full depth, or when its exit score is above draft_stop), verifies
 * [next, drafts…] in one fused call, and emits the accepted drafts and the full model's token after them.
 */
function speculativeStream(d: Decoder, run: RunState, first: Float32Array, level: LadderLevel, kv: KvMode, stats: { drafted: number; accepted: number }): TokenStream {
  const { nLayers, vocabSize: V, maxSeqLen } = d.config;
  const eos = d.tokenizer.eos;
  const maxDraft = level.max_draft ?? 4;
  let next = argmax(first, 0, V);
  let started = false;
  return async () => {
    // the prefill already decided the first token: emit it before any drafting
    if (!started) {
      started = true;
      return [{ token: next, depth: nLayers }];
    }
    // draft on a state sharing the verified cache: drafts only write rows past the verified ones,
    // and the verification below rewrites those rows with the full model's K/V
    const scratch = d.newState(run);
    const st = exitStateFrom(d, scratch);
    const drafts: number[] = [];
    let x = next;
    const room = Math.min(maxDraft, maxSeqLen - run.pos - 1);
    const stop = level.draft_stop ?? Infinity;
    while (drafts.length < room && x !== eos) {
      const step = await exitStep(d, st, x, level.plan!, kv);
      x = argmax(step.logits, 0, V);
      drafts.push(x);
      // a full-depth draft is already the full model's token; an unsure one is likely wrong
      if (step.depth === nLayers || (step.score ?? 0) > stop) break;
    }
    // verify: the full model on [next, drafts…] in one call; keep the longest agreeing prefix
    const start = run.pos;
    const logits = await d.forward([next, ...drafts], run);
    let accepted = 0;
    while (accepted < drafts.length && argmax(logits, accepted * V, V) === drafts[accepted]) accepted++;
    truncateRun(run, start + 1 + accepted);
    // every emitted token was decided by the full model (the verification ran all layers for it):
    // the accepted drafts, then the full model's own next token after them
    stats.drafted += drafts.length;
    stats.accepted += accepted;
    next = argmax(logits, accepted * V, V);
    return [...drafts.slice(0, accepted), next].map((token) => ({ token, depth: nLayers }));
  };
}

export interface LevelRun {
  tokens: number[];
  layers: number[];
  stop: 'eos' | 'max_tokens' | 'context';
  /** set when the request could not be served as asked (e.g. no calibration) */
  note?: string;
  /** speculative decoding: tokens drafted with early exits, and how many the full model accepted */
  drafted?: number;
  accepted?: number;
}

/** Generate from prompt ids at a level (undefined = fused full depth). */
export async function generateIds(
  d: Decoder,
  ids: number[],
  level: LadderLevel | undefined,
  sampler: Sampler,
  greedy: boolean,
  maxTokens: number,
  onToken?: (id: number) => void,
): Promise<LevelRun> {
  const V = d.config.vocabSize;
  const kv = d.ladder?.kv ?? 'recompute';
  const run = d.newState();
  // prefill the whole prompt in one fused call; the last row predicts the first new token
  const first = (await d.forward(ids, run)).subarray((ids.length - 1) * V, ids.length * V);
  let note: string | undefined;
  const spec = { drafted: 0, accepted: 0 };
  let stream: TokenStream;
  if (!level || level.mode === 'full') stream = fullStream(d, run, first, sampler);
  else if (level.mode === 'exits') stream = exitStream(d, run, first, sampler, level, kv);
  else if (greedy) stream = speculativeStream(d, run, first, level, kv, spec);
  else {
    // sampling has no lossless draft check here: full depth gives the exact distribution
    note = 'sampling at the exact level runs at full depth';
    stream = fullStream(d, run, first, sampler);
  }
  const tokens: number[] = [];
  const layers: number[] = [];
  for (;;) {
    for (const e of await stream()) {
      if (e.token === d.tokenizer.eos) return { tokens, layers, stop: 'eos', note, ...spec };
      tokens.push(e.token);
      layers.push(e.depth);
      onToken?.(e.token);
      if (tokens.length >= maxTokens) return { tokens, layers, stop: 'max_tokens', note, ...spec };
    }
    if (ids.length + tokens.length >= d.config.maxSeqLen) return { tokens, layers, stop: 'context', note, ...spec };
  }
}

/** The ladder level for a requested name: undefined = full depth; unknown names are refused. */
export function resolveLevel(d: Decoder, name: string | undefined): { level: LadderLevel | undefined; note?: string } {
  if (name === undefined || name === 'full') return { level: undefined };
  if (!d.ladder) return { level: undefined, note: `bundle not calibrated: level '${name}' served at full depth` };
  const level = d.ladder.levels.find((l) => l.name === name);
  if (!level) throw new SedacError('E_INPUT', `unknown level '${name}'; this model has: ${d.levels.join(', ')}`);
  return { level };
}
