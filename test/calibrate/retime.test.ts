/**
 * Calibration in two halves: the statistics (thresholds and guarantees, device-independent) and the
 * timing of candidate plans (device-dependent). A ladder keeps every guaranteed candidate, where it
 * was calibrated and timed, and the prompts it was timed on; `--retime` re-times on this machine and
 * serves the fastest candidate that pays, without data or model source.
 */
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { calibrateDecoder } from '../../agent/calibrate/decoderCalibrate.js';
import { retimeDecoder, serveFastest } from '../../agent/calibrate/retime.js';
import type { Decoder } from '../../agent/engine/decoder.js';
import { loadModel } from '../../agent/engine/index.js';
import { type DecoderLadder, type LadderLevel, type LevelCandidate, segmentsFor } from '../../agent/engine/ladder.js';
import { sharedBundle } from '../helpers/bundles.js';
import { sharedPath } from '../helpers/shared.js';

const L = 8;
const cand = (exits: number[], measured: number): LevelCandidate => ({
  plan: { exits, thresholds: exits.map(() => 0.3), segments: segmentsFor(exits, L) },
  calibration: { tokens: 100, agreement: 0.98, mean_layers: 5 },
  measured_speedup: measured,
});

describe('serveFastest', () => {
  const base: LadderLevel = { name: 'balanced', target: 0.97, mode: 'full', candidates: [cand([2, 5], 1.2), cand([3, 6], 1.4), cand([4], 1.01)] };

  test('serves the fastest candidate that pays, keeping all candidates', () => {
    const l = serveFastest(base, true);
    assert.equal(l.mode, 'exits');
    assert.deepEqual(l.plan!.exits, [3, 6]);
    assert.equal(l.measured_speedup, 1.4);
    assert.equal(l.candidates!.length, 3);
  });

  test('runs the fused graph, saying why, when no candidate pays', () => {
    const l = serveFastest({ ...base, candidates: [cand([2, 5], 1.01), cand([4], 0.9)] }, true);
    assert.equal(l.mode, 'full');
    assert.equal(l.plan, undefined);
    assert.match(l.note ?? '', /measured 1\.01× full-depth speed, needs 1\.05×/);
  });

  test('the lossless level only needs not to be slower', () => {
    const drafter: LevelCandidate = { plan: { exits: [2], thresholds: [1], cap: 2, segments: segmentsFor([2], L, 'recompute', 2) }, max_draft: 3, measured_speedup: 1.0 };
    const l = serveFastest({ name: 'exact', target: 1, mode: 'full', candidates: [drafter] }, true);
    assert.equal(l.mode, 'speculative');
    assert.equal(l.max_draft, 3);
  });
});

describe('calibrate, then --retime', () => {
  test('the ladder keeps its guaranteed candidates, hosts and prompts; retime re-chooses on this machine', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'sedac-retime-')), 'b');
    cpSync(await sharedBundle('models/caption-lm-8L-ee/caption-lm-8L-ee.gguf'), dir, { recursive: true });
    const d = (await loadModel({ name: 'r', source: dir, quiet: true })) as Decoder;
    let ladder: DecoderLadder;
    try {
      ladder = await calibrateDecoder(d, dir, sharedPath('data/flickr8k_captions/val.jsonl'), { quiet: true, maxTokens: 6000, holdoutTexts: 30, levels: { exact: 1, balanced: 0.97 } });
    } finally {
      await d.dispose();
    }
    assert.equal(ladder.calibrated_on?.hostname, hostname());
    assert.ok(ladder.timing_prompts && ladder.timing_prompts.length > 0, 'timing prompts kept');
    const balanced = ladder.levels.find((l) => l.name === 'balanced')!;
    assert.ok(balanced.candidates && balanced.candidates.length > 0, 'balanced keeps its guaranteed candidates');
    for (const c of balanced.candidates) assert.ok(c.calibration!.upper_disagreement !== undefined && typeof c.measured_speedup === 'number');

    const report = await retimeDecoder(dir, { quiet: true, rounds: 2 });
    assert.equal(report.timed_on.hostname, hostname());
    const after = (JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as { extras: { ladder: DecoderLadder } }).extras.ladder;
    const b = after.levels.find((l) => l.name === 'balanced')!;
    const best = Math.max(...b.candidates!.map((c) => c.measured_speedup!));
    if (b.mode === 'exits') assert.equal(b.measured_speedup, best, 'serves the fastest re-timed candidate');
    else assert.ok(best < 1.05, `full depth only when no candidate pays (best ${best}×)`);
    assert.deepEqual(
      b.candidates!.map((c) => c.plan),
      balanced.candidates.map((c) => c.plan),
      'retiming changes no plan or threshold (the statistics are not the device’s)',
    );
    // the re-timed bundle loads and serves every level
    const again = (await loadModel({ name: 'r2', source: dir, quiet: true })) as Decoder;
    try {
      for (const level of again.levels) assert.ok((await again.generate('a dog', { level, maxTokens: 8 })).tokens.length > 0, level);
    } finally {
      await again.dispose();
    }
  });
});
