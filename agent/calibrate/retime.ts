/**
 * The device-dependent half of calibration. Statistics, thresholds and guarantees do not depend on
 * the machine (calibrate once, on a workstation); which of a level's guaranteed candidate plans is
 * fastest does. `sedac calibrate <bundle> --retime` times every level's candidates on this device,
 * against the fused full-depth graph, on the prompts the ladder carries, and serves the fastest one
 * that pays — a few minutes, no data file, no model source, no new statistics.
 */
import { cpus, hostname } from 'node:os';
import { progressBar } from '../convert/progress.js';
import { readManifest, writeManifest } from '../engine/bundle.js';
import type { Decoder } from '../engine/decoder.js';
import { loadModel } from '../engine/index.js';
import { type DecoderLadder, type HostInfo, type LadderLevel, type LevelCandidate, checkLadder, describePlan } from '../engine/ladder.js';
import { ORT_VERSION } from '../engine/ort.js';
import { SedacError } from '../errors.js';
import { measuredSpeedup, minSpeedupFor } from './holdout.js';

/** This machine, for a ladder's `calibrated_on` / `timed_on`. */
export function hostInfo(): HostInfo {
  return { hostname: hostname(), cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, arch: process.arch, ort: ORT_VERSION, at: new Date().toISOString() };
}

/**
 * A level serving the fastest of its candidates whose measured speedup pays (≥ 1.05× for a lossy
 * level, not slower for the lossless one), or the fused graph with a note. `base` carries the
 * level's full-depth fallback (mode full) and its candidates; with `bySpeed` false, the first
 * candidate (cheapest predicted) is served unmeasured.
 */
export function serveFastest(base: LadderLevel, bySpeed: boolean): LadderLevel {
  const { plan: _plan, max_draft: _m, draft_stop: _s, measured_speedup: _ms, note: _n, ...rest } = base;
  const cands = base.candidates ?? [];
  const need = minSpeedupFor(base.target);
  const ranked = bySpeed ? [...cands].filter((c) => (c.measured_speedup ?? 0) >= need).sort((a, b) => b.measured_speedup! - a.measured_speedup!) : cands;
  const best = ranked[0];
  if (!best) {
    const top = [...cands].sort((a, b) => (b.measured_speedup ?? 0) - (a.measured_speedup ?? 0))[0];
    const why = top ? `the fastest candidate (${describeCandidate(base, top)}) measured ${top.measured_speedup}× full-depth speed, needs ${need}×` : 'no candidate plan';
    return { ...rest, mode: 'full', note: `${why}: runs the full-depth graph` };
  }
  return {
    ...rest,
    mode: base.target >= 1 ? 'speculative' : 'exits',
    plan: best.plan,
    ...(best.max_draft === undefined ? {} : { max_draft: best.max_draft }),
    ...(best.draft_stop === undefined ? {} : { draft_stop: best.draft_stop }),
    ...(best.calibration ? { calibration: best.calibration } : {}),
    ...(best.predicted_speedup === undefined ? {} : { predicted_speedup: best.predicted_speedup }),
    ...(best.measured_speedup === undefined ? {} : { measured_speedup: best.measured_speedup }),
  };
}

function describeCandidate(l: LadderLevel, c: LevelCandidate): string {
  return describePlan({ ...l, plan: c.plan, ...(c.max_draft === undefined ? {} : { max_draft: c.max_draft }), ...(c.draft_stop === undefined ? {} : { draft_stop: c.draft_stop }) });
}

export interface RetimeReport {
  bundle: string;
  calibrated_on?: HostInfo;
  timed_on: HostInfo;
  levels: { level: string; served: string; measured_speedup?: number; candidates: { plan: string; measured_speedup: number }[] }[];
}

/** Re-time every level's candidates on this machine and rewrite the ladder's served plans. */
export async function retimeDecoder(dir: string, opts: { quiet?: boolean; rounds?: number } = {}): Promise<RetimeReport> {
  const m = readManifest(dir, true);
  const d = (await loadModel({ name: 'retime', source: dir, quiet: opts.quiet })) as Decoder;
  try {
    const ladder = checkLadder(m.extras?.ladder, d.config.nLayers, m.graphs, dir);
    if (!ladder) throw new SedacError('E_INPUT', `${dir} is not calibrated: run sedac calibrate --data FILE first`);
    const prompts = ladder.timing_prompts;
    if (!prompts?.length || ladder.levels.every((l) => !l.candidates?.length)) {
      throw new SedacError('E_INPUT', `${dir}: the ladder carries no candidates or timing prompts to re-time (calibrated with --objective layers, or by an older sedac): recalibrate with --objective speed`);
    }
    const total = ladder.levels.reduce((a, l) => a + (l.candidates?.length ?? 0), 0);
    const bar = progressBar('retime: candidate plans', total, process.stderr, opts.quiet);
    const report: RetimeReport['levels'] = [];
    const levels: LadderLevel[] = [];
    for (const level of ladder.levels) {
      if (!level.candidates?.length) {
        levels.push(level);
        continue;
      }
      const timed: LevelCandidate[] = [];
      for (const c of level.candidates) {
        const trial: LadderLevel = { name: level.name, target: level.target, mode: level.target >= 1 ? 'speculative' : 'exits', plan: c.plan, ...(c.max_draft === undefined ? {} : { max_draft: c.max_draft }), ...(c.draft_stop === undefined ? {} : { draft_stop: c.draft_stop }) };
        timed.push({ ...c, measured_speedup: await measuredSpeedup(d, trial, prompts, opts.rounds) });
        bar.tick(`${level.name}: ${describeCandidate(level, c)} ${timed.at(-1)!.measured_speedup}×`);
      }
      const served = serveFastest({ ...level, candidates: timed }, true);
      // the held-out replay belongs to the plan it replayed: kept only when that plan still serves
      if (JSON.stringify(served.plan) !== JSON.stringify(level.plan) || served.mode !== level.mode) delete served.holdout;
      levels.push(served);
      report.push({ level: level.name, served: served.mode === 'full' ? 'full depth' : describePlan(served), measured_speedup: served.measured_speedup, candidates: timed.map((c) => ({ plan: describeCandidate(level, c), measured_speedup: c.measured_speedup! })) });
    }
    bar.done();
    const timedOn = hostInfo();
    const updated: DecoderLadder = { ...ladder, levels, timed_on: timedOn };
    m.extras = { ...(m.extras ?? {}), ladder: updated };
    writeManifest(dir, m);
    return { bundle: dir, ...(ladder.calibrated_on ? { calibrated_on: ladder.calibrated_on } : {}), timed_on: timedOn, levels: report };
  } finally {
    await d.dispose();
  }
}
