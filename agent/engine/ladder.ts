/**
 * The calibrated ladder of operating levels a decoder bundle carries in `manifest.extras.ladder`
 * (written by `sedac calibrate`, read by the engine). Exit points are counted in layers computed:
 * an exit at e means layers 0..e-1 ran and the exit head read the state after layer e-1.
 */
import { SedacError } from '../errors.js';

/** How an exited token's skipped layers get their K/V when a later token needs them. */
export type KvMode =
  /** run the skipped layers on the token's own state later, batched with the next deep token: exact K/V */
  | 'recompute'
  /** CALM: the skipped layers' K/V come from the exited hidden state itself */
  | 'propagate';

/**
 * What an exit head's confidence is read from; lower is surer, both in (0, 1]:
 * - `entropy`: the head's normalized entropy H / ln V;
 * - `margin`: 1 / (1 + g), g = the gap between the head's two largest logits (a TopK instead of a
 *   softmax over the vocabulary; on the caption models it ranks exits better than entropy: see README).
 */
export type ExitSignal = 'entropy' | 'margin';

/** Every exit signal, in the order calibration tries them (the first wins ties). */
export const EXIT_SIGNALS: readonly ExitSignal[] = ['entropy', 'margin'];

/** A level name: lower case, digits, `_` and `-`, starting with a letter. */
export const LEVEL_NAME = /^[a-z][a-z0-9_-]*$/;

/** The margin signal from the exit head's two largest logits. */
export function marginScore(top1: number, top2: number): number {
  return 1 / (1 + (top1 - top2));
}

export interface ExitPlan {
  /** exit points e (1 ≤ e < nLayers), ascending */
  exits: number[];
  /** exit-score threshold per exit point (the ladder's signal): exit when the score ≤ threshold */
  thresholds: number[];
  /**
   * the deepest layer this plan runs (the last exit point): every token still running there exits,
   * the layers beyond are never computed (static truncation, with scored exits before it).
   * Absent: the plan ends at full depth.
   */
  cap?: number;
  /** graph roles to run in order: segments [0, e1), [e1, e2), …, [ek, nLayers) — or up to the cap */
  segments: string[];
}

export interface LevelStats {
  tokens: number;
  agreement: number;
  mean_layers: number;
  /** Clopper–Pearson upper bound on the disagreement rate at the ladder's confidence */
  upper_disagreement?: number;
}

export interface LadderLevel {
  name: string;
  /** required agreement with the full model; 1 for `exact` */
  target: number;
  /**
   * `full`: the fused full-depth graph (exits do not pay at this target);
   * `exits`: early exit with `plan`; `speculative`: drafts with `plan`, verified by the full model
   */
  mode: 'full' | 'exits' | 'speculative';
  plan?: ExitPlan;
  /** speculative: most tokens drafted before one verification */
  max_draft?: number;
  /** speculative: stop drafting after a draft whose exit score is above this (draft length adapts to confidence) */
  draft_stop?: number;
  /** teacher-forced, on the calibration split (table simulation) */
  calibration?: LevelStats;
  /** teacher-forced through the real exit engine, on the held-out split */
  holdout?: LevelStats;
  /** predicted speedup over the fused full-depth graph from the measured cost model */
  predicted_speedup?: number;
  /**
   * free-running speedup over the fused full-depth graph measured at calibration (held-out prompts,
   * interleaved); a level measured below 1 is switched to `full`
   */
  measured_speedup?: number;
  /** why the level runs differently than its plan, e.g. demoted to full depth by measurement */
  note?: string;
  /**
   * every plan that can serve this level: each passed Learn-then-Test at δ/K (K = plans tested), so
   * all of them keep the guarantee at once and a device may serve whichever is fastest there
   * (`sedac calibrate --retime`); for `exact`, the drafters (lossless whichever is chosen)
   */
  candidates?: LevelCandidate[];
}

/** A plan a level may serve: the device's measured speed decides (calibrate, or --retime). */
export interface LevelCandidate {
  plan: ExitPlan;
  /** speculative drafters: most drafts per verification, and the score above which drafting stops */
  max_draft?: number;
  draft_stop?: number;
  /** Learn-then-Test on the calibration split (lossy levels) */
  calibration?: LevelStats;
  predicted_speedup?: number;
  /** on the machine named by the ladder's `timed_on` */
  measured_speedup?: number;
}

/** The machine a ladder's statistics or timings come from. */
export interface HostInfo {
  hostname: string;
  cpu: string;
  cores: number;
  arch: string;
  /** onnxruntime-node version */
  ort: string;
  at: string;
}

export interface ExitHeadChoice {
  /** exit point e */
  exit: number;
  kind: 'logit_lens' | 'affine_lens';
  /** top-1 agreement with the full model on the fitting split, for each kind */
  agreement: { logit_lens: number; affine_lens: number };
}

export interface CostModel {
  /** one session.run on the decode path, µs (dispatch, feeds, KV in/out) */
  call_us: number;
  /** one layer inside a fused graph, µs */
  layer_us: number;
  /** the final LM head (norm + matmul) or an exit head incl. its score (entropy or top-2), µs */
  head_us: number;
  /** the fused full-depth graph on n tokens at once (index n-1): speculative verification, µs */
  verify_us?: number[];
}

export interface DecoderLadder {
  /**
   * 2: levels may carry `cap`, `draft_stop`; the ladder its `signal`. 3: a speculative level's drafts
   * are verified by `seg.<cap>-<L>.final` from their states (LayerSkip), not by the fused graph.
   */
  version: 1 | 2 | 3;
  kv: KvMode;
  /** the exit score every threshold is compared with; absent (version 1): entropy */
  signal?: ExitSignal;
  /**
   * the signals calibration considered: each one's best predicted plan cost relative to the fused
   * graph on the fit split, averaged over the levels (lower is cheaper; the lowest was chosen)
   */
  signals?: Partial<Record<ExitSignal, number>>;
  /** what the exit points were chosen for: measured speed, or fewest layers */
  objective: 'speed' | 'layers';
  confidence: number;
  heads: ExitHeadChoice[];
  costs: CostModel;
  levels: LadderLevel[];
  data: { file: string; sha256: string; tokens: number; texts: number };
  created_at: string;
  /** where the statistics, thresholds and guarantees were computed (device-independent) */
  calibrated_on?: HostInfo;
  /** where the candidates were last timed and the served plans chosen (device-dependent) */
  timed_on?: HostInfo;
  /** prompts (token ids) the candidates are timed on, so a device re-times without the data */
  timing_prompts?: number[][];
}

export const DEFAULT_TARGETS: Record<string, number> = { exact: 1, high: 0.99, balanced: 0.97, eco: 0.93, critical: 0.85 };

/**
 * Graph role of segment [from, to): `.margin` marks an exit head scored by its top-2 logits (else
 * entropy), `.calm` the CALM propagation variant (pending rows keep their exited state).
 */
export function segmentRole(from: number, to: number, nLayers: number, kv: KvMode = 'recompute', signal: ExitSignal = 'entropy'): string {
  const base = to === nLayers ? `seg.${from}-${to}.final` : `seg.${from}-${to}.exit${signal === 'margin' ? '.margin' : ''}`;
  return kv === 'propagate' && from > 0 ? `${base}.calm` : base;
}

/** Graph roles for a set of exit points; with a cap (the last exit point) no segment goes past it. */
export function segmentsFor(exits: number[], nLayers: number, kv: KvMode = 'recompute', cap?: number, signal: ExitSignal = 'entropy'): string[] {
  if (cap !== undefined && exits.at(-1) !== cap) throw new Error(`cap ${cap} must be the last exit point of ${exits.join(',')}`);
  const bounds = cap === undefined ? [0, ...exits, nLayers] : [0, ...exits];
  return bounds.slice(1).map((to, i) => segmentRole(bounds[i]!, to, nLayers, kv, signal));
}

/** A level's plan in a few words for tables: exit points and cap, or the speculative drafter. */
export function describePlan(l: LadderLevel): string {
  const p = l.plan;
  if (!p) return '—';
  if (l.mode === 'speculative' || l.max_draft !== undefined) {
    const stop = l.draft_stop === undefined ? '' : `, stop above ${l.draft_stop.toFixed(3)}`;
    return `drafts from ${p.cap ?? p.exits.join(',')} layer${p.cap === 1 ? '' : 's'}, ≤ ${l.max_draft ?? 4}${stop}`;
  }
  return p.cap === undefined ? p.exits.join(',') : `${p.exits.join(',')} (cap)`;
}

/**
 * A bundle's ladder as read from its manifest, checked before the engine trusts it: a hand-edited or
 * truncated ladder is refused at load (E_MODEL_FORMAT, naming the field), not at the first request.
 * `graphs` are the bundle's graph roles; every level that serves a plan must find its segments there.
 */
export function checkLadder(raw: unknown, nLayers: number, graphs: Record<string, unknown>, where: string): DecoderLadder | undefined {
  if (raw === undefined) return undefined;
  const bad = (what: string): never => {
    throw new SedacError('E_MODEL_FORMAT', `${where}: ladder ${what}`);
  };
  const isObj = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);
  if (!isObj(raw)) return bad('is not an object');
  if (raw.version !== 3) bad(`version ${JSON.stringify(raw.version)} is not 3 (recalibrate; or a newer sedac wrote it?)`);
  if (raw.kv !== 'recompute' && raw.kv !== 'propagate') bad(`kv ${JSON.stringify(raw.kv)} is not recompute or propagate`);
  if (raw.signal !== undefined && !EXIT_SIGNALS.includes(raw.signal as ExitSignal)) bad(`signal ${JSON.stringify(raw.signal)} is not entropy or margin`);
  if (!Array.isArray(raw.levels) || raw.levels.length === 0) return bad('has no levels');
  const kv = raw.kv as KvMode;
  const signal = (raw.signal ?? 'entropy') as ExitSignal;
  const names = new Set<string>();
  for (const [i, l] of (raw.levels as unknown[]).entries()) {
    if (!isObj(l)) return bad(`levels[${i}] is not an object`);
    const at = `level ${JSON.stringify(l.name ?? i)}`;
    if (typeof l.name !== 'string' || !LEVEL_NAME.test(l.name) || names.has(l.name)) bad(`${at}: name missing, malformed or repeated`);
    names.add(l.name as string);
    if (typeof l.target !== 'number' || !(l.target > 0 && l.target <= 1)) bad(`${at}: target must be in (0, 1]`);
    if (l.mode !== 'full' && l.mode !== 'exits' && l.mode !== 'speculative') bad(`${at}: mode ${JSON.stringify(l.mode)} is not full, exits or speculative`);
    if (l.mode === 'speculative' && !(Number.isInteger(l.max_draft) && (l.max_draft as number) >= 1)) bad(`${at}: max_draft must be a positive integer`);
    if (l.draft_stop !== undefined && typeof l.draft_stop !== 'number') bad(`${at}: draft_stop must be a number`);
    if (l.plan === undefined && l.mode !== 'full') bad(`${at}: mode ${l.mode as string} needs a plan`);
    const speculative = l.target === 1; // the lossless level's candidates are drafters
    // a served plan's graphs must be in the bundle; a plan kept for the record (mode full) need not be
    if (l.plan !== undefined) checkPlan(l.plan, at, l.mode !== 'full', l.mode === 'speculative');
    if (l.candidates !== undefined) {
      if (!Array.isArray(l.candidates)) bad(`${at}: candidates is not a list`);
      for (const [k, c] of (l.candidates as unknown[]).entries()) {
        if (!isObj(c)) return bad(`${at}: candidates[${k}] is not an object`);
        checkPlan(c.plan, `${at} candidate ${k}`, true, speculative);
      }
    }
  }
  /** A plan's exits, thresholds, cap and segments; with `served`, its graphs present in the bundle. */
  function checkPlan(p: unknown, at: string, served: boolean, speculative: boolean): void {
    if (!isObj(p)) return bad(`${at}: plan is not an object`);
    const exits = p.exits;
    if (!Array.isArray(exits) || exits.length === 0 || !exits.every((e, k) => Number.isInteger(e) && e >= 1 && e < nLayers && (k === 0 || e > exits[k - 1])))
      bad(`${at}: exits must be ascending layer counts in [1, ${nLayers})`);
    const ex = exits as number[];
    if (!Array.isArray(p.thresholds) || p.thresholds.length !== ex.length || !p.thresholds.every((t) => typeof t === 'number' && !Number.isNaN(t))) bad(`${at}: one numeric threshold per exit point`);
    if (p.cap !== undefined && p.cap !== ex.at(-1)) bad(`${at}: cap ${JSON.stringify(p.cap)} must be the last exit point (${ex.at(-1)})`);
    const want = segmentsFor(ex, nLayers, kv, p.cap as number | undefined, signal);
    if (!Array.isArray(p.segments) || p.segments.join(' ') !== want.join(' ')) bad(`${at}: segments ${JSON.stringify(p.segments)} do not match its exits (${want.join(' ')})`);
    if (speculative) {
      if (p.cap === undefined || ex.length !== 1) bad(`${at}: a speculative level drafts with a static truncation (one exit point, the cap)`);
      want.push(segmentRole(p.cap as number, nLayers, nLayers));
    }
    if (served) for (const role of want) if (!(role in graphs)) bad(`${at}: the bundle has no '${role}' graph`);
  }
  return raw as unknown as DecoderLadder;
}
