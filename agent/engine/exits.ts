/**
 * Early-exit decoding. A level's plan splits the layers into segments [0,e1), [e1,e2), … with an
 * exit head at the end of each but the last; after each segment the token either exits (its exit
 * head's score — normalized entropy, or the margin score of its top-2 logits, whichever the segment
 * graph returns — is at most the level's threshold there) or goes on.
 *
 * Skipped layers leave holes in the KV cache. They are filled lazily: the next token that reaches a
 * segment takes the positions still missing there as extra rows of the same call ("pending rows"),
 * so filling costs no extra session call. In `recompute` mode a pending row is the token's own state,
 * carried on through every layer (its K/V become exactly the full model's); in `propagate` mode it is
 * the state the token exited with, reused for every skipped layer (CALM).
 */
import { IO } from '../convert/llamaGraphs.js';
import { SedacError } from '../errors.js';
import type { Decoder, RunState } from './decoder.js';
import { type ExitPlan, type KvMode, marginScore } from './ladder.js';
import { type Feeds, type OrtTensor, f32, floats } from './ort.js';

/** A position whose deeper layers are not computed yet. */
interface PendingRow {
  /** layers whose K/V exist for this position */
  depth: number;
  /** the state fed to layer `depth` (recompute) or the exited state (propagate); (dim) */
  h: Float32Array;
}

/** Per-request state of early-exit decoding: the run state plus the lazy-fill bookkeeping. */
export class ExitState {
  /** positions in each layer's cache; filled[l] ≤ run.pos */
  filled: number[]; // (layer)
  /** positions filled[min]..pos-1 that some layer still lacks, in order */
  pending: PendingRow[] = [];

  constructor(
    readonly run: RunState,
    nLayers: number,
  ) {
    this.filled = Array.from({ length: nLayers }, () => run.pos);
  }
}

export interface ExitStep {
  /** logits of the exit head, or of the final head at full depth; (vocab) */
  logits: Float32Array;
  /** layers computed for this token */
  depth: number;
  /** the exit head's score where the token exited (undefined at full depth) */
  score: number | undefined;
  /** at a plan's cap: the token's state after the cap's layers, (dim) (speculation verifies from it) */
  hidden?: Float32Array;
}

/**
 * Replaces the threshold test (benches: oracle exits, replayed exit depths). Called at each exit
 * point with the layers computed so far, the exit head's score and logits.
 */
export type ExitDecision = (layers: number, score: number, logits: () => Float32Array) => boolean;

/** An exit segment's score: the margin of its top-2 logits, or its normalized entropy. */
function exitScore(out: Feeds): number {
  const top = out[IO.exitTop2];
  if (top) {
    const v = floats(top, 'exit_top2');
    return marginScore(v[0]!, v[1]!);
  }
  return floats(out[IO.exitEntropy], 'exit_entropy')[0]!;
}

/**
 * One token through the plan: run segment after segment, and after each one decide whether the
 * rest of the network is needed for this token.
 */
export async function exitStep(d: Decoder, st: ExitState, token: number, plan: ExitPlan, kv: KvMode, decide?: ExitDecision): Promise<ExitStep> {
  const { nLayers, dim } = d.config;
  const run = st.run;
  d.checkRoom(run, 1);
  const bounds = planBounds(plan, nLayers);
  let h: Float32Array | undefined; // the current token's state (after the last segment run)
  for (let s = 0; s < plan.segments.length; s++) {
    const from = bounds[s]!;
    const to = bounds[s + 1]!;
    // rows still missing at this segment's layers (they all have depth == from), then this token
    const rows = st.pending.filter((r) => r.depth === from);
    const past = st.filled[from]!;
    if (past + rows.length !== run.pos) throw new SedacError('E_INTERNAL', `exit cache out of step at layer ${from}: ${past} + ${rows.length} ≠ ${run.pos}`);
    const feeds: Feeds = { ...d.stepFeeds(past, rows.length + 1) };
    if (from === 0) feeds[IO.inputIds] = d.idsTensor([token]);
    else {
      const x = new Float32Array((rows.length + 1) * dim);
      rows.forEach((r, i) => x.set(r.h, i * dim));
      x.set(h!, rows.length * dim);
      feeds[IO.hidden] = f32(x, [1, rows.length + 1, dim]);
    }
    run.kv.ensure(past + rows.length + 1, run.pos);
    run.kv.feeds(from, to, feeds);

    // layers [from, to) for the pending rows and this token
    const out = await d.run(plan.segments[s]!, feeds);
    run.kv.store(out, from, to, past, rows.length + 1);
    for (let l = from; l < to; l++) st.filled[l] = past + rows.length + 1;
    if (to === nLayers) {
      // full depth: the final head's logits for this token; every pending row is now complete
      st.pending = st.pending.filter((r) => r.depth !== from);
      run.pos++;
      return { logits: floats(out[IO.logits], 'logits').subarray(rows.length * d.config.vocabSize), depth: nLayers, score: undefined };
    }
    if (to === plan.cap) {
      // the cap: every token exits here, and no segment starts here, so the pending rows that
      // reached it are as complete as they will ever be (nothing is kept for a later fill)
      st.pending = st.pending.filter((r) => r.depth !== from);
      run.pos++;
      const hidden = floats(out[IO.hiddenOut], 'hidden_out').slice(rows.length * dim);
      return { logits: floats(out[IO.exitLogits], 'exit_logits'), depth: to, score: exitScore(out), hidden };
    }
    const hidden = floats(out[IO.hiddenOut], 'hidden_out');
    rows.forEach((r, i) => {
      if (kv === 'recompute') r.h = hidden.slice(i * dim, (i + 1) * dim);
      r.depth = to;
    });
    h = hidden.slice(rows.length * dim);

    // exit decision: the exit head's score against this level's threshold at `to`
    const score = exitScore(out);
    if (decide ? decide(to, score, () => floats(out[IO.exitLogits], 'exit_logits')) : score <= plan.thresholds[s]!) {
      st.pending.push({ depth: to, h });
      run.pos++;
      return { logits: floats(out[IO.exitLogits], 'exit_logits'), depth: to, score };
    }
  }
  throw new SedacError('E_INTERNAL', 'exit plan ends neither at full depth nor at its cap');
}

/**
 * The prompt through a plan's segments, every row through every segment with no exit decision, so
 * the prompt's K/V are the full model's up to the plan's depth: one call per segment, and no other
 * graph (the fused one) needs to be resident. Returns the last row's logits — the final head's, or
 * at a cap the exit head's (every token exits there) — and its state after the last segment.
 */
export async function prefillSegments(d: Decoder, ids: number[], run: RunState, segments: string[], bounds: number[]): Promise<{ logits: Float32Array; hidden: Float32Array }> {
  const n = ids.length;
  d.checkRoom(run, n);
  const { dim, vocabSize: V, nLayers } = d.config;
  run.kv.ensure(run.pos + n, run.pos);
  const step = d.stepFeeds(run.pos, n);
  let h: OrtTensor | undefined;
  let out: Feeds = {};
  for (const [s, role] of segments.entries()) {
    const from = bounds[s]!;
    const to = bounds[s + 1]!;
    const feeds: Feeds = { ...step, ...(from === 0 ? { [IO.inputIds]: d.idsTensor(ids) } : { [IO.hidden]: h! }) };
    out = await d.run(role, run.kv.feeds(from, to, feeds));
    run.kv.store(out, from, to, run.pos, n);
    h = out[IO.hiddenOut];
  }
  run.pos += n;
  const last = bounds.at(-1) === nLayers;
  const logits = last ? floats(out[IO.logits], 'logits').slice((n - 1) * V) : floats(out[IO.exitLogits], 'exit_logits').slice();
  return { logits, hidden: h ? floats(h, 'hidden_out').slice((n - 1) * dim) : new Float32Array(0) };
}

/** Segment bounds of a plan: [0, e1, …, ek, nLayers], or up to the cap. */
export function planBounds(plan: ExitPlan, nLayers: number): number[] {
  return plan.cap === undefined ? [0, ...plan.exits, nLayers] : [0, ...plan.exits];
}

/** An ExitState continuing from a full-depth run state (e.g. after the fused prefill). */
export function exitStateFrom(d: Decoder, run: RunState): ExitState {
  return new ExitState(run, d.config.nLayers);
}

/** Keep only the first n positions (speculative decoding's rollback: later rows are simply reused). */
export function truncateRun(run: RunState, n: number): void {
  run.pos = n;
}
