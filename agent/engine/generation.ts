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
import { IO } from '../convert/llamaGraphs.js';
import { exitStateFrom, exitStep, planBounds, prefillSegments, truncateRun } from './exits.js';
import { type KvMode, type LadderLevel, segmentRole } from './ladder.js';
import { f32, floats } from './ort.js';
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
      // the prefill ran the level's segments on every prompt row: to full depth, or to the cap
      pending = sampler.next(first, 0, V);
      return [{ token: pending, depth: level.plan!.cap ?? d.config.nLayers }];
    }
    const step = await exitStep(d, st, pending, level.plan!, kv);
    pending = sampler.next(step.logits, 0, V);
    return [{ token: pending, depth: step.depth }];
  };
}

/**
 * Lossless speculative stream (greedy), LayerSkip style. `run` holds the verified cache; `next` is a
 * token the full model chose (already emitted) that is not in the cache yet. Each call drafts up to max_draft tokens with the first k layers
 * (stopping early after a draft whose exit score is above draft_stop); drafting [next, d1, …] writes
 * their K/V for layers 0..k-1 and leaves their states at layer k, so the verification runs only
 * layers k..L on [next, d1 … d(n-1)] in one call: its logits check d1 … dn. The longest agreeing
 * prefix is kept, then the full model's own token where a draft was wrong. Every emitted token is
 * the full model's greedy choice.
 */
function speculativeStream(d: Decoder, run: RunState, first: Float32Array, level: LadderLevel, kv: KvMode, stats: { drafted: number; accepted: number }): TokenStream {
  const { nLayers, vocabSize: V, maxSeqLen, dim } = d.config;
  const plan = level.plan!;
  const k = plan.cap!;
  if (k === undefined || plan.exits.length !== 1) throw new SedacError('E_INTERNAL', `level ${level.name}: speculation drafts with a static truncation (one exit point, the cap)`);
  const verify = verifyRole(d, level);
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
    // draft on a state sharing the verified cache: draft i runs token x(i-1) through layers 0..k-1
    const start = run.pos;
    const scratch = d.newState(run);
    const st = exitStateFrom(d, scratch);
    const drafts: number[] = [];
    const states: Float32Array[] = []; // (drafts) → state after k layers of the token drafted from
    let x = next;
    const room = Math.min(maxDraft, maxSeqLen - run.pos);
    const stop = level.draft_stop ?? Infinity;
    while (drafts.length < room && x !== eos) {
      const step = await exitStep(d, st, x, plan, kv);
      states.push(step.hidden!);
      x = argmax(step.logits, 0, V);
      drafts.push(x);
      // an unsure draft is likely wrong, and every draft after it with it
      if ((step.score ?? 0) > stop) break;
    }
    // verify: layers k..L on [next, d1 … d(n-1)] in one call; logits row i checks draft i+1
    const n = drafts.length;
    if (n === 0) return []; // no room left in the context: the caller stops
    const hidden = new Float32Array(n * dim);
    states.forEach((h, i) => hidden.set(h, i * dim));
    run.kv.ensure(start + n, start);
    const out = await d.run(verify, run.kv.feeds(k, nLayers, { [IO.hidden]: f32(hidden, [1, n, dim]), ...d.stepFeeds(start, n) }));
    run.kv.store(out, k, nLayers, start, n);
    const logits = floats(out[IO.logits], 'logits');
    let accepted = 0;
    while (accepted < n && argmax(logits, accepted * V, V) === drafts[accepted]) accepted++;
    stats.drafted += n;
    stats.accepted += accepted;
    if (accepted === n) {
      // all drafts right: rows next … d(n-1) are verified; dn is the full model's choice, not yet run
      truncateRun(run, start + n);
      next = drafts[n - 1]!;
      return drafts.map((token) => ({ token, depth: nLayers }));
    }
    // the full model's own token where draft accepted+1 went wrong; rows next … d(accepted) stay
    truncateRun(run, start + accepted + 1);
    next = argmax(logits, accepted * V, V);
    return [...drafts.slice(0, accepted), next].map((token) => ({ token, depth: nLayers }));
  };
}

/** The graph that verifies a speculative level's drafts: layers cap..L from the drafter's states. */
export function verifyRole(d: Decoder, level: LadderLevel): string {
  return segmentRole(level.plan!.cap!, d.config.nLayers, d.config.nLayers);
}

/** Graph roles a level runs (what a request pins): its segments, or the fused graph. */
export function levelRoles(d: Decoder, level: LadderLevel | undefined, greedy: boolean): string[] {
  if (!level || level.mode === 'full' || !level.plan) return ['full'];
  if (level.mode === 'exits') return level.plan.segments;
  return greedy ? [...level.plan.segments, verifyRole(d, level)] : ['full'];
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
  const unpin = d.pin(levelRoles(d, level, greedy));
  try {
    // prefill the whole prompt through the graphs of the level (the fused graph, or the level's
    // segments without exit decisions); the last row predicts the first new token
    let first: Float32Array;
    if (!level?.plan || level.mode === 'full' || (level.mode === 'speculative' && !greedy)) {
      first = (await d.forward(ids, run)).subarray((ids.length - 1) * V, ids.length * V);
    } else {
      const segments = level.mode === 'speculative' ? [...level.plan.segments, verifyRole(d, level)] : level.plan.segments;
      const bounds = level.mode === 'speculative' ? [0, level.plan.cap!, d.config.nLayers] : planBounds(level.plan, d.config.nLayers);
      first = (await prefillSegments(d, ids, run, segments, bounds)).logits;
    }
    return await streamTokens(d, ids, run, first, level, sampler, greedy, kv, maxTokens, onToken);
  } finally {
    unpin();
  }
}

async function streamTokens(
  d: Decoder,
  ids: number[],
  run: RunState,
  first: Float32Array,
  level: LadderLevel | undefined,
  sampler: Sampler,
  greedy: boolean,
  kv: KvMode,
  maxTokens: number,
  onToken?: (id: number) => void,
): Promise<LevelRun> {
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
