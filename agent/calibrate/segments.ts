/**
 * The segment graphs a ladder serves, in the bundle: written from the model source (its layers'
 * weights found in the bundle's weight file, new ones — lenses — in a calibration weight file of
 * their own), and pruned with the weight files nobody reads any more.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { writeGraph } from '../convert/bundleWriter.js';
import { loadSource } from '../convert/detect.js';
import { type AffineLens, segmentGraph } from '../convert/llamaGraphs.js';
import type { LlamaSource } from '../convert/source.js';
import { type Manifest, readManifest, writeManifest } from '../engine/bundle.js';
import { type ExitSignal, type KvMode, type LadderLevel, segmentRole, segmentsFor } from '../engine/ladder.js';
import { WeightFileWriter } from '../engine/weightFile.js';
import { SedacError } from '../errors.js';

/** The source the bundle was converted from, checked against its recorded sha256. */
export async function bundleSource(m: Manifest): Promise<LlamaSource> {
  const src = await loadSource(m.source.path).catch((err: unknown) => {
    throw new SedacError('E_MODEL_NOT_FOUND', `calibration rebuilds graphs from the model source ${m.source.path}, which cannot be read: ${(err as Error).message}`);
  });
  if (src.sha256 !== m.source.sha256) throw new SedacError('E_MODEL_INTEGRITY', `${m.source.path} changed since the bundle was converted; reconvert first`);
  return src;
}

/**
 * Write the segment graphs named by `roles` (seg.<from>-<to>.exit|final) that the bundle lacks; an
 * exit head uses the lens given for its exit point, else the plain logit lens. Weights go to the
 * bundle's weight files: the layers' are found there already (stored once at conversion), new ones
 * (lenses) go to one calibration weight file. Updates `m.graphs` and `m.weight_files`.
 */
export function addSegmentGraphs(dir: string, m: Manifest, src: LlamaSource, roles: string[], lenses: Map<number, AffineLens> = new Map()): void {
  const L = src.config.nLayers;
  const todo = [...new Set(roles)].filter((r) => !m.graphs[r]);
  if (todo.length === 0) return;
  const sink = new WeightFileWriter(dir, `weights.calib.${Date.now().toString(36)}.bin`, m.weight_files);
  try {
    for (const role of todo) {
      const match = /^seg\.(\d+)-(\d+)\.(exit|final)(\.margin)?(\.calm)?$/.exec(role);
      const from = Number(match?.[1]);
      const to = Number(match?.[2]);
      const signal: ExitSignal = match?.[4] ? 'margin' : 'entropy';
      const calm = match?.[5] !== undefined;
      if (!match || segmentRole(from, to, L, calm ? 'propagate' : 'recompute', signal) !== role) throw new SedacError('E_INTERNAL', `bad segment role ${role}`);
      // a final segment returns every row's logits: pending rows ride along in decoding, and
      // speculative verification reads one row per draft
      const g = segmentGraph(src, from, to, to === L ? { kind: 'final', rows: 'all' } : { kind: 'exit', lens: lenses.get(to), name: `exit${to}`, signal }, role, calm);
      m.graphs[role] = writeGraph(dir, role, g, sink);
    }
  } catch (err) {
    sink.abort();
    throw err;
  }
  const index = sink.finish();
  if (sink.empty) rmSync(join(dir, index.file), { force: true });
  else m.weight_files.push(index);
}

/** Add segment graphs for the given exit points to a bundle on disk (tests, benches). */
export async function addSegmentsToBundle(dir: string, exitSets: number[][], kv: KvMode = 'recompute', signal: ExitSignal = 'entropy'): Promise<void> {
  const m = readManifest(dir, true);
  const src = await bundleSource(m);
  addSegmentGraphs(dir, m, src, exitSets.flatMap((e) => segmentsFor(e, src.config.nLayers, kv, undefined, signal)));
  writeManifest(dir, m);
}

/** Remove segment graphs (seg.*) no level uses from the bundle, and weight files no graph uses. */
export function pruneSegmentGraphs(dir: string, m: Manifest, keep: Set<string>): void {
  for (const role of Object.keys(m.graphs)) {
    if (!role.startsWith('seg.') || keep.has(role)) continue;
    rmSync(join(dir, m.graphs[role]!.file), { force: true });
    delete m.graphs[role];
  }
  const used = new Set(Object.values(m.graphs).flatMap((g) => g.weight_files ?? []));
  m.weight_files = m.weight_files.filter((w, i) => {
    if (i === 0 || used.has(w.file)) return true;
    rmSync(join(dir, w.file), { force: true });
    return false;
  });
}

/**
 * The graphs a level needs in the bundle: its served plan's and every candidate's segments, and a
 * speculative drafter's verifier.
 */
export function levelGraphs(l: LadderLevel, L: number): string[] {
  const plans = [...(l.mode !== 'full' && l.plan ? [l.plan] : []), ...(l.candidates ?? []).map((c) => c.plan)];
  return plans.flatMap((p) => (l.target >= 1 ? [...p.segments, segmentRole(p.cap!, L, L)] : p.segments));
}
