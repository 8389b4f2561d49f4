/**
 * Weights held once, at realistic size (caption-lm-8L-ee widened ×4 by ../shared/tools/widen_gguf.py,
 * checked against its README's sha256): every graph of a bundle takes its weights from one shared
 * file, a ladder's segments add no copies on disk, a request holds only its level's graphs in
 * memory, and the lossless `exact` level (LayerSkip verification from the drafts' states) gives the
 * full model's greedy output token for token — which is the trained model's README golden.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { readTexts } from '../../agent/calibrate/decoderCalibrate.js';
import { addSegmentsToBundle } from '../../agent/calibrate/segments.js';
import { convertModel } from '../../agent/convert/cache.js';
import { readManifest } from '../../agent/engine/bundle.js';
import type { Decoder } from '../../agent/engine/decoder.js';
import { generateIds, levelRoles } from '../../agent/engine/generation.js';
import { loadModel } from '../../agent/engine/index.js';
import { type DecoderLadder, segmentsFor } from '../../agent/engine/ladder.js';
import { makeSampler } from '../../agent/engine/sampling.js';
import { captionGoldens } from '../helpers/readmeGoldens.js';
import { sharedPath } from '../helpers/shared.js';
import { widenedGguf } from '../helpers/widened.js';

const L = 8;

function dirBytes(dir: string): number {
  return readdirSync(dir).reduce((a, f) => a + statSync(join(dir, f)).size, 0);
}

/** A hand-made ladder over segments the bundle has: lossless speculation from 2 layers, and exits at 2 and 5. */
function ladder(): DecoderLadder {
  return {
    version: 3,
    kv: 'recompute',
    signal: 'entropy',
    objective: 'speed',
    confidence: 0.95,
    heads: [],
    costs: { call_us: 1, layer_us: 1, head_us: 1 },
    levels: [
      { name: 'exact', target: 1, mode: 'speculative', max_draft: 4, plan: { exits: [2], thresholds: [1], cap: 2, segments: segmentsFor([2], L, 'recompute', 2) } },
      { name: 'balanced', target: 0.97, mode: 'exits', plan: { exits: [2, 5], thresholds: [0.35, 0.35], segments: segmentsFor([2, 5], L) } },
    ],
    data: { file: 'hand-made', sha256: '-', tokens: 0, texts: 0 },
    created_at: '2026-12-08T00:00:00Z',
  };
}

describe('caption-lm-8L-ee-x4: each weight once', () => {
  let gguf: string;
  let dir: string;
  let d: Decoder;

  before(async () => {
    gguf = await widenedGguf({ base: 'caption-lm-8L-ee', k: 4, type: 'f32' });
    dir = join(mkdtempSync(join(tmpdir(), 'sedac-once-')), 'b');
    await convertModel(gguf, dir, { quiet: true });
  });
  after(async () => {
    await d?.dispose();
  });

  test('on disk: converted and with a ladder’s segments, the bundle stays within 1.25× the GGUF', async () => {
    const ggufBytes = statSync(gguf).size;
    const converted = dirBytes(dir);
    const before = readManifest(dir, true).weight_files;
    assert.equal(before.length, 1);
    assert.ok(converted <= 1.05 * ggufBytes, `converted bundle ${converted} B for a ${ggufBytes} B GGUF`);
    await addSegmentsToBundle(dir, [[2], [2, 5]]);
    const m = readManifest(dir, true);
    // the segments reuse the converted weights: no new weight file, the old one untouched
    assert.deepEqual(m.weight_files, before);
    for (const role of ['seg.0-2.exit', 'seg.2-8.final', 'seg.2-5.exit', 'seg.5-8.final']) {
      assert.deepEqual(m.graphs[role]?.weight_files, ['weights.bin'], role);
      assert.ok(statSync(join(dir, m.graphs[role]!.file)).size < 1 << 20, `${role} graph file holds no weights`);
    }
    const total = dirBytes(dir);
    assert.ok(total <= 1.25 * ggufBytes, `bundle with segments ${total} B for a ${ggufBytes} B GGUF`);
  });

  test('in memory: a request holds only its level’s graphs; exact equals full depth and the README golden', async () => {
    const file = join(dir, 'manifest.json');
    const m = JSON.parse(readFileSync(file, 'utf8')) as { extras?: Record<string, unknown> };
    m.extras = { ...(m.extras ?? {}), ladder: ladder() };
    writeFileSync(file, JSON.stringify(m));
    d = (await loadModel({ name: 'x4', source: dir, quiet: true })) as Decoder;
    const weights = readManifest(dir, false).weight_files.reduce((a, w) => a + w.bytes, 0);
    const held = () => d.loadedRoles.reduce((a, r) => a + (d.manifest.graphs[r]!.weight_bytes ?? 0), 0);

    const greedy = makeSampler(0);
    const golden = captionGoldens('caption-lm-8L-ee').find((g) => g.prompt === 'a black dog')!;
    const exact = d.ladder!.levels[0]!;
    const spec = await generateIds(d, golden.promptIds!, exact, greedy, true, 40);
    assert.deepEqual([...spec.tokens, d.tokenizer.eos], golden.generated, 'exact at x4 = the trained model’s golden');
    assert.deepEqual(d.loadedRoles.sort(), ['seg.0-2.exit', 'seg.2-8.final'], 'exact holds its drafter and verifier only');
    assert.ok(held() <= 1.05 * weights, `exact holds ${held()} B of ${weights} B`);

    const balanced = d.ladder!.levels[1]!;
    await generateIds(d, golden.promptIds!, balanced, greedy, true, 20);
    assert.deepEqual(d.loadedRoles.sort(), ['seg.0-2.exit', 'seg.2-5.exit', 'seg.5-8.final'], 'switching level released the other level’s graphs');
    assert.ok(held() <= 1.15 * weights, `balanced holds ${held()} B of ${weights} B`);
    // staying at a level loads nothing: its graphs are loaded once, not per step or per request
    const loads = d.resident().loads;
    for (let i = 0; i < 3; i++) await generateIds(d, golden.promptIds!, balanced, greedy, true, 20);
    assert.equal(d.resident().loads, loads, 'no graph reloaded while serving the same level');
    // graphs pinned together (a timing run: a level beside the fused graph) stay loaded together,
    // even past the budget, and nothing reloads while they alternate
    const unpin = d.pin([...levelRoles(d, balanced, true), 'full']);
    const pinned = d.resident().loads;
    for (let i = 0; i < 2; i++) {
      await generateIds(d, golden.promptIds!, balanced, greedy, true, 10);
      await generateIds(d, golden.promptIds!, undefined, greedy, true, 10);
    }
    assert.equal(d.resident().loads, pinned, 'nothing reloaded while pinned');
    unpin();

    let drafted = 0;
    let accepted = 0;
    for (const text of readTexts(sharedPath('data/flickr8k_captions/val.jsonl')).slice(0, 12)) {
      const prompt = d.encodePromptTruncated(text, 3);
      const full = await generateIds(d, prompt, undefined, greedy, true, 30);
      const r = await generateIds(d, prompt, exact, greedy, true, 30);
      assert.deepEqual(r.tokens, full.tokens, `prompt ${JSON.stringify(text.slice(0, 24))}`);
      drafted += r.drafted ?? 0;
      accepted += r.accepted ?? 0;
    }
    assert.ok(accepted > 0 && accepted < drafted, `2-layer drafts are sometimes right, sometimes not (${accepted} of ${drafted})`);
  });
});
