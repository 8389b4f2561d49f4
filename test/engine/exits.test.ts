/**
 * Early exit for decoders: calibration on real models, the lossless exact level, monotone
 * thresholds, lazy K/V exactness, and an uncalibrated bundle saying it ran at full depth.
 */
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { calibrateDecoder, readTexts } from '../../agent/calibrate/decoderCalibrate.js';
import { addSegmentsToBundle } from '../../agent/calibrate/segments.js';
import { fullTargets } from '../../agent/calibrate/evaluate.js';
import { replayLevel } from '../../agent/calibrate/holdout.js';
import type { Decoder } from '../../agent/engine/decoder.js';
import { exitStateFrom, exitStep } from '../../agent/engine/exits.js';
import { generateIds } from '../../agent/engine/generation.js';
import { loadModel } from '../../agent/engine/index.js';
import { type DecoderLadder, marginScore, segmentsFor } from '../../agent/engine/ladder.js';
import { argmax, makeSampler } from '../../agent/engine/sampling.js';
import { sharedBundle } from '../helpers/bundles.js';
import { sharedPath } from '../helpers/shared.js';

async function calibrated(rel: string, data: string, opts: Parameters<typeof calibrateDecoder>[3], extraExits: number[][] = []): Promise<Decoder> {
  const dir = join(mkdtempSync(join(tmpdir(), 'sedac-exits-')), 'b');
  cpSync(await sharedBundle(rel), dir, { recursive: true });
  const d = (await loadModel({ name: rel, source: dir })) as Decoder;
  await calibrateDecoder(d, dir, sharedPath(data), { quiet: true, ...opts });
  await d.dispose();
  await addSegmentsToBundle(dir, extraExits);
  await addSegmentsToBundle(dir, extraExits, 'recompute', 'margin');
  return (await loadModel({ name: rel, source: dir })) as Decoder;
}

/** The two largest values of a vector, descending. */
function topTwo(x: Float32Array): [number, number] {
  let a = -Infinity;
  let b = -Infinity;
  for (const v of x) {
    if (v > a) [a, b] = [v, a];
    else if (v > b) b = v;
  }
  return [a, b];
}

describe('stories260K: calibrated levels keep their promise (the layer-0 echo trap is avoided)', () => {
  for (const signal of ['entropy', 'margin'] as const) {
    test(`${signal} signal: agreement on the TinyStories sample is within 2 points of every level target`, async (t) => {
      const d = await calibrated('models/stories260K/stories260K.gguf', 'data/tinystories/TinyStories-valid.sample.txt', { objective: 'layers', signal });
      try {
        const ladder = d.ladder!;
        assert.equal(ladder.signal, signal);
        assert.ok(!ladder.levels.some((l) => l.plan?.exits.includes(1)), 'no level may exit after layer 0 (it echoes the input token)');
        const seqs = await fullTargets(d, readTexts(sharedPath('data/tinystories/TinyStories-valid.sample.txt')), 1000);
        for (const level of ladder.levels) {
          if (level.mode !== 'exits') continue;
          const r = await replayLevel(d, ladder, level.name, seqs);
          t.diagnostic(`${level.name}: target ${level.target}, agreement ${r.agreement.toFixed(4)}, mean layers ${r.mean_layers.toFixed(2)}`);
          assert.ok(Math.abs(r.agreement - level.target) <= 0.02, `${level.name}: agreement ${r.agreement.toFixed(4)} vs target ${level.target}`);
        }
        assert.ok(ladder.levels.filter((l) => l.mode === 'exits').length >= 3, 'most levels use exits');
        for (const l of ladder.levels) for (const role of l.plan?.segments ?? []) assert.equal(role.includes('.margin'), signal === 'margin' && role.includes('.exit'), role);
      } finally {
        await d.dispose();
      }
    });
  }
});

describe('caption-lm-8L-ee: exits', () => {
  let d: Decoder;
  const texts = () => readTexts(sharedPath('data/flickr8k_captions/val.jsonl'));

  test('calibrates a ladder with exits', async () => {
    d = await calibrated('models/caption-lm-8L-ee/caption-lm-8L-ee.gguf', 'data/flickr8k_captions/val.jsonl', { maxTokens: 8000, holdoutTexts: 40, objective: 'layers' }, [
      [2, 4, 6],
      [2, 4],
      [2, 5],
      [3, 6],
      [2],
      [3],
    ]);
    assert.deepEqual(d.levels, ['exact', 'high', 'balanced', 'eco', 'critical']);
    assert.ok(d.ladder!.signal === 'entropy' || d.ladder!.signal === 'margin', `signal ${d.ladder!.signal}`);
    assert.equal(d.ladder!.levels[0]!.mode, 'full', 'optimizing layers, exact is plain full depth (speculation only pays in speed)');
  });

  test('speculative exact equals full depth token for token', async () => {
    // as calibration builds it: drafts from the first k layers (LayerSkip: the verification runs
    // layers k..L from the drafts' states), with and without stopping at an unsure draft
    const drafter = (k: number) => ({ exits: [k], thresholds: [1], cap: k, segments: segmentsFor([k], d.config.nLayers, 'recompute', k) });
    const exact = { name: 'exact', target: 1, mode: 'speculative' as const, plan: drafter(3), max_draft: 4 };
    const capped = { name: 'exact', target: 1, mode: 'speculative' as const, plan: drafter(2), max_draft: 3, draft_stop: 0.3 };
    const greedy = makeSampler(0);
    for (const level of [exact, capped]) {
      let accepted = 0;
      let drafted = 0;
      for (const text of texts().slice(0, 25)) {
        const prompt = d.encodePromptTruncated(text, 3);
        const full = await generateIds(d, prompt, undefined, greedy, true, 40);
        const spec = await generateIds(d, prompt, level, greedy, true, 40);
        assert.deepEqual(spec.tokens, full.tokens, `prompt ${JSON.stringify(text.slice(0, 20))}`);
        accepted += spec.accepted ?? 0;
        drafted += spec.drafted ?? 0;
      }
      assert.ok(accepted > 0, `some drafts accepted (${accepted} of ${drafted})`);
      if (level === capped) assert.ok(accepted < drafted, `2-layer drafts are not all right (${accepted} of ${drafted})`);
    }
  });

  for (const signal of ['entropy', 'margin'] as const) {
    test(`${signal} signal: raising thresholds moves exits earlier, monotonically`, async () => {
      const exits = [2, 4, 6];
      const seqs = (await fullTargets(d, texts(), 80)).slice(0, 80);
      let last = Infinity;
      let lastAgree = 1;
      for (const tau of [0, 0.1, 0.2, 0.3, 0.45, 1]) {
        const ladder: DecoderLadder = { ...d.ladder!, levels: [{ name: 'probe', target: 0.5, mode: 'exits', plan: { exits, thresholds: exits.map(() => tau), segments: segmentsFor(exits, d.config.nLayers, 'recompute', undefined, signal) } }] };
        const r = await replayLevel(d, ladder, 'probe', seqs);
        assert.ok(r.mean_layers <= last + 1e-9, `τ=${tau}: mean layers ${r.mean_layers} > ${last}`);
        last = r.mean_layers;
        lastAgree = r.agreement;
      }
      const positions = seqs.reduce((a, q) => a + q.ids.length, 0);
      // τ = 1: every token but each text's first (run at full depth by the prefill) exits at 2
      assert.ok(Math.abs(last - (2 * (positions - seqs.length) + d.config.nLayers * seqs.length) / positions) < 1e-9, `mean layers at τ=1: ${last}`);
      assert.ok(lastAgree < 1);
    });
  }

  test('a margin-scored exit head is scored by the gap between its two largest logits', async () => {
    const exits = [2, 4, 6];
    const plan = { exits, thresholds: [-1, -1, -1], segments: segmentsFor(exits, d.config.nLayers, 'recompute', undefined, 'margin') };
    const ids = d.encodePromptTruncated(texts()[5]!, 16);
    const run = d.newState();
    await d.forward(ids.slice(0, 1), run);
    const st = exitStateFrom(d, run);
    let checked = 0;
    for (const tok of ids.slice(1)) {
      await exitStep(d, st, tok, plan, 'recompute', (_layers, score, logits) => {
        const [a, b] = topTwo(logits());
        assert.ok(Math.abs(score - marginScore(a, b)) < 1e-6, `score ${score} vs ${marginScore(a, b)}`);
        assert.ok(score > 0 && score <= 1);
        checked++;
        return false;
      });
    }
    assert.equal(checked, (ids.length - 1) * exits.length);
  });

  test('a capped plan never runs past its cap and answers as static truncation there', async () => {
    const seqs = (await fullTargets(d, texts(), 30)).slice(0, 30);
    const L = d.config.nLayers;
    // entropy exits at 2, every other token stops at 4
    const capped = { exits: [2, 4], thresholds: [0.3, 1], cap: 4, segments: segmentsFor([2, 4], L, 'recompute', 4) };
    const open = { exits: [2, 4], thresholds: [0.3, 1.01], segments: segmentsFor([2, 4], L) };
    for (const { ids } of seqs) {
      const ra = d.newState();
      const rb = d.newState();
      await d.forward([ids[0]!], ra);
      await d.forward([ids[0]!], rb);
      const a = exitStateFrom(d, ra);
      const b = exitStateFrom(d, rb);
      for (const tok of ids.slice(1)) {
        const x = await exitStep(d, a, tok, capped, 'recompute');
        const y = await exitStep(d, b, tok, open, 'recompute');
        assert.ok(x.depth === 2 || x.depth === 4, `depth ${x.depth}`);
        assert.equal(x.depth, y.depth);
        assert.deepEqual(x.logits, y.logits);
      }
      assert.ok(a.pending.every((r) => r.depth < 4), 'rows exited at the cap are not kept (nothing ever fills them)');
    }
  });

  test('recompute mode: after exits, the lazily filled K/V equal a full-depth pass', async () => {
    const exits = [2, 5];
    const plan = { exits, thresholds: [0.3, 0.3], segments: segmentsFor(exits, d.config.nLayers) };
    const ids = d.encodePromptTruncated(texts()[7]!, 20);
    const run = d.newState();
    await d.forward(ids.slice(0, 1), run);
    const st = exitStateFrom(d, run);
    const depths: number[] = [];
    for (const tok of ids.slice(1)) depths.push((await exitStep(d, st, tok, { ...plan, thresholds: [0.3, 0.3] }, 'recompute')).depth);
    // one more token with thresholds nobody passes: full depth, every pending row completed
    await exitStep(d, st, ids[0]!, { ...plan, thresholds: [-1, -1] }, 'recompute');
    assert.ok(depths.some((x) => x < d.config.nLayers), `some tokens exited early: ${depths.join(',')}`);
    assert.equal(st.pending.length, 0);
    const ref = d.newState();
    await d.forward([...ids, ids[0]!], ref);
    assert.equal(run.pos, ref.pos);
    for (let l = 0; l < d.config.nLayers; l++) {
      const a = run.kv.rows(l, 'k', run.pos);
      const b = ref.kv.rows(l, 'k', ref.pos);
      assert.equal(a.length, b.length, `layer ${l} cache length`);
      let max = 0;
      for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i]! - b[i]!));
      assert.ok(max < 1e-4, `layer ${l}: max |ΔK| = ${max}`);
    }
  });

  test('never-exiting thresholds give the full model’s logits', async () => {
    const exits = [3, 6];
    const plan = { exits, thresholds: [-1, -1], segments: segmentsFor(exits, d.config.nLayers) };
    const ids = d.encodePromptTruncated(texts()[3]!, 16);
    const ref = await d.forward(ids, d.newState());
    const run = d.newState();
    await d.forward(ids.slice(0, 1), run);
    const st = exitStateFrom(d, run);
    const V = d.config.vocabSize;
    for (let p = 1; p < ids.length; p++) {
      const s = await exitStep(d, st, ids[p]!, plan, 'propagate');
      assert.equal(s.depth, d.config.nLayers);
      assert.equal(argmax(s.logits, 0, V), argmax(ref, p * V, V));
    }
    await d.dispose();
  });
});

describe('an uncalibrated bundle', () => {
  test('runs a requested level at full depth and says so', async () => {
    const d = (await loadModel({ name: 'u', source: await sharedBundle('models/caption-lm-8L/caption-lm-8L.gguf') })) as Decoder;
    try {
      assert.deepEqual(d.levels, []);
      const r = await d.generate('a black dog', { level: 'balanced' });
      assert.equal(r.level, 'full');
      assert.match(r.note ?? '', /not calibrated/);
      assert.ok(r.layers.every((l) => l === d.config.nLayers));
      assert.deepEqual(r.tokens, [294, 415, 420, 271, 370]);
    } finally {
      await d.dispose();
    }
  });
});
