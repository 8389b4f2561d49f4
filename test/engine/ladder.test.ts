/**
 * A bundle's ladder is checked at load: a hand-edited or truncated one is refused with
 * E_MODEL_FORMAT naming the field, before any request runs into it.
 */
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { loadModel } from '../../agent/engine/index.js';
import { type DecoderLadder, checkLadder, segmentRole, segmentsFor } from '../../agent/engine/ladder.js';
import { SedacError } from '../../agent/errors.js';
import { sharedBundle } from '../helpers/bundles.js';

const L = 8;

function ladder(signal: 'entropy' | 'margin' = 'margin'): DecoderLadder {
  return {
    version: 3,
    kv: 'recompute',
    signal,
    objective: 'speed',
    confidence: 0.95,
    heads: [],
    costs: { call_us: 1, layer_us: 1, head_us: 1 },
    levels: [
      { name: 'exact', target: 1, mode: 'speculative', max_draft: 3, draft_stop: 0.4, plan: { exits: [1], thresholds: [1], cap: 1, segments: segmentsFor([1], L, 'recompute', 1, signal) } },
      { name: 'balanced', target: 0.97, mode: 'exits', plan: { exits: [3, 6], thresholds: [0.2, 0.3], segments: segmentsFor([3, 6], L, 'recompute', undefined, signal) } },
      { name: 'critical', target: 0.85, mode: 'exits', plan: { exits: [3, 5], thresholds: [0.4, 1], cap: 5, segments: segmentsFor([3, 5], L, 'recompute', 5, signal) } },
      { name: 'eco', target: 0.93, mode: 'full', plan: { exits: [4], thresholds: [0.3], segments: segmentsFor([4], L, 'recompute', undefined, signal) } },
    ],
    data: { file: 'x', sha256: 'y', tokens: 1, texts: 1 },
    created_at: '2026-11-27T00:00:00Z',
  };
}

/** Graph roles a bundle would hold for the ladder's served levels. */
function graphsOf(l: DecoderLadder): Record<string, unknown> {
  const roles = l.levels.filter((x) => x.mode !== 'full').flatMap((x) => [...x.plan!.segments, ...(x.mode === 'speculative' ? [segmentRole(x.plan!.cap!, L, L)] : [])]);
  return Object.fromEntries(roles.map((r) => [r, {}]));
}

function refused(raw: unknown, graphs: Record<string, unknown>, pattern: RegExp): void {
  assert.throws(
    () => checkLadder(raw, L, graphs, 'b'),
    (e: unknown) => e instanceof SedacError && e.code === 'E_MODEL_FORMAT' && pattern.test(e.message),
  );
}

describe('checkLadder', () => {
  test('accepts what calibration writes, and no ladder at all', () => {
    for (const signal of ['entropy', 'margin'] as const) {
      const l = ladder(signal);
      assert.equal(checkLadder(l, L, graphsOf(l), 'b'), l);
    }
    assert.equal(checkLadder(undefined, L, {}, 'b'), undefined);
  });

  test('refuses malformed ladders, naming what is wrong', () => {
    const good = ladder();
    const graphs = graphsOf(good);
    const edit = (f: (l: DecoderLadder & Record<string, unknown>) => void) => {
      const l = structuredClone(good) as DecoderLadder & Record<string, unknown>;
      f(l);
      return l;
    };
    refused('nope', graphs, /not an object/);
    refused(edit((l) => (l.version = 2)), graphs, /version 2 is not 3/);
    refused(edit((l) => (l.signal = 'vibes' as never)), graphs, /signal "vibes"/);
    refused(edit((l) => (l.levels = [])), graphs, /no levels/);
    refused(edit((l) => (l.levels[1]!.name = 'exact')), graphs, /repeated/);
    refused(edit((l) => (l.levels[1]!.target = 1.5)), graphs, /target/);
    refused(edit((l) => (l.levels[1]!.mode = 'turbo' as never)), graphs, /mode "turbo"/);
    refused(edit((l) => delete l.levels[1]!.plan), graphs, /needs a plan/);
    refused(edit((l) => (l.levels[1]!.plan!.exits = [6, 3])), graphs, /ascending/);
    refused(edit((l) => (l.levels[1]!.plan!.exits = [3, 8])), graphs, /ascending layer counts in \[1, 8\)/);
    refused(edit((l) => (l.levels[1]!.plan!.thresholds = [0.2])), graphs, /threshold per exit point/);
    refused(edit((l) => (l.levels[2]!.plan!.cap = 3)), graphs, /cap 3 must be the last exit point/);
    refused(edit((l) => (l.levels[1]!.plan!.segments = segmentsFor([3, 6], L))), graphs, /do not match its exits/);
    refused(edit((l) => (l.levels[0]!.max_draft = 0)), graphs, /max_draft/);
    const missing = { ...graphs };
    delete missing['seg.3-5.exit.margin'];
    refused(good, missing, /no 'seg\.3-5\.exit\.margin' graph/);
    const noVerifier = { ...graphs };
    delete noVerifier['seg.1-8.final'];
    refused(good, noVerifier, /exact.*no 'seg\.1-8\.final' graph/);
  });

  test('a plan kept only for the record (mode full) needs no graphs', () => {
    const l = ladder();
    const graphs = graphsOf(l);
    assert.ok(!('seg.0-4.exit.margin' in graphs));
    assert.doesNotThrow(() => checkLadder(l, L, graphs, 'b'));
  });
});

describe('a bundle whose ladder names a missing graph', () => {
  test('is refused at load with E_MODEL_FORMAT', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'sedac-ladder-')), 'b');
    cpSync(await sharedBundle('models/caption-lm-8L/caption-lm-8L.gguf'), dir, { recursive: true });
    const file = join(dir, 'manifest.json');
    const m = JSON.parse(readFileSync(file, 'utf8')) as { extras?: Record<string, unknown> };
    m.extras = { ...(m.extras ?? {}), ladder: ladder() };
    writeFileSync(file, JSON.stringify(m));
    await assert.rejects(loadModel({ name: 'b', source: dir }), (e: unknown) => e instanceof SedacError && e.code === 'E_MODEL_FORMAT' && /no 'seg\.0-1\.exit\.margin' graph/.test(e.message));
  });
});
