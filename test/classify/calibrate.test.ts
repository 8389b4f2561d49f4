/**
 * `calibrateClassifier` end to end on a small slice of the Davidson train split: heads and ladder
 * land in the bundle (heads file verified by sha256), every level's thresholds pass its own
 * binomial test, recalibration replaces the heads file, and the levels behave on validation texts.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { calibrateClassifier, type ClassifierCalibrateReport } from '../../agent/calibrate/classifierCalibrate.js';
import { readManifest } from '../../agent/engine/bundle.js';
import { Classifier } from '../../agent/engine/classifier.js';
import type { ExitHeadsEntry, Ladder } from '../../agent/engine/classifierExit.js';
import { SedacError } from '../../agent/errors.js';
import { DAVIDSON, tempBertBundle } from './fixtures.js';

const FAST = { maxTexts: 2000, epochs: 12, quiet: true };

describe('classifier calibration', () => {
  let b: { dir: string; cleanup: () => void };
  let report: ClassifierCalibrateReport;
  before(async () => {
    b = await tempBertBundle();
    report = await calibrateClassifier(b.dir, DAVIDSON('train'), FAST);
  });
  after(() => b?.cleanup());

  it('writes heads and ladder into the manifest', () => {
    const m = readManifest(b.dir, true);
    const heads = m.extras?.exit_heads as ExitHeadsEntry;
    const ladder = m.extras?.ladder as Ladder;
    assert.equal(heads.layers, 6);
    assert.equal(heads.in_dim, 256);
    assert.ok(existsSync(join(b.dir, heads.file)));
    assert.deepEqual(ladder.levels.map((l) => l.name), ['exact', 'high', 'balanced', 'eco', 'critical']);
    assert.equal(ladder.levels[0]!.thresholds, null);
    assert.deepEqual(report.texts, { heads: 1000, family: 300, calibration: 400, holdout: 300 });
  });

  it('each level passes its binomial test on the calibration part and is checked on the holdout', () => {
    for (const lv of report.levels.slice(1)) {
      assert.equal(lv.thresholds?.length, 6, lv.name);
      assert.ok(lv.calibration && lv.holdout, lv.name);
      const exits = lv.thresholds!.some((t) => t >= 0);
      if (exits) assert.ok(lv.calibration.upper_disagreement <= 1 - lv.target + 1e-12, `${lv.name}: upper bound ${lv.calibration.upper_disagreement}`);
      assert.equal(lv.holdout.n, 300);
      assert.equal(lv.holdout.ok, lv.holdout.agreement >= lv.target);
      assert.ok(lv.holdout.lower_agreement <= lv.holdout.agreement);
    }
    // looser targets never cost more layers on the calibration part
    const layers = report.levels.slice(1).map((l) => l.calibration!.mean_layers);
    for (let i = 1; i < layers.length; i++) assert.ok(layers[i]! <= layers[i - 1]! + 1e-9, `mean layers ${layers.join(', ')}`);
  });

  it('levels run on validation texts: fewer layers for looser levels, agreement near target', async () => {
    const model = await Classifier.open(b.dir);
    try {
      assert.deepEqual(model.levels, ['exact', 'high', 'balanced', 'eco', 'critical']);
      const texts = readFileSync(DAVIDSON('val'), 'utf8').trim().split('\n').slice(0, 500).map((l) => (JSON.parse(l) as { text: string }).text);
      const full = await Promise.all(texts.map(async (t) => (await model.classify(t, { level: 'exact' })).label));
      let prevLayers = 6;
      for (const level of ['high', 'balanced', 'eco', 'critical']) {
        let agree = 0, layers = 0;
        for (let i = 0; i < texts.length; i++) {
          const r = await model.classify(texts[i]!, { level });
          assert.equal(r.level, level);
          assert.ok(r.layers >= 0 && r.layers <= 6);
          if (r.label === full[i]) agree++;
          layers += r.layers;
        }
        const target = report.levels.find((l) => l.name === level)!.target;
        assert.ok(agree / texts.length >= target - 0.03, `${level}: agreement ${agree / texts.length} vs target ${target}`);
        assert.ok(layers / texts.length <= prevLayers + 0.05, `${level}: mean layers ${layers / texts.length}`);
        prevLayers = layers / texts.length;
      }
      assert.ok(prevLayers < 2, `critical uses ${prevLayers} layers on average`);
    } finally {
      await model.dispose();
    }
  });

  it('recalibration replaces the heads file; a tampered heads file is refused', async () => {
    const before = (readManifest(b.dir).extras?.exit_heads as ExitHeadsEntry).file;
    await calibrateClassifier(b.dir, DAVIDSON('train'), { ...FAST, seed: 2, maxTexts: 1200 });
    const now = (readManifest(b.dir).extras?.exit_heads as ExitHeadsEntry).file;
    assert.notEqual(now, before);
    assert.deepEqual(readdirSync(b.dir).filter((f) => f.startsWith('exit_heads')), [now]);
    const p = join(b.dir, now);
    const bytes = readFileSync(p);
    const tampered = Buffer.from(bytes);
    tampered[10] = tampered[10]! ^ 0xff;
    writeFileSync(p, tampered);
    await assert.rejects(Classifier.open(b.dir), (e: unknown) => e instanceof SedacError && e.code === 'E_MODEL_INTEGRITY');
    writeFileSync(p, bytes);
  });

  it('bad calibration data: missing file, unknown label, too few texts', async () => {
    await assert.rejects(calibrateClassifier(b.dir, join(b.dir, 'nope.jsonl'), FAST), (e: unknown) => e instanceof SedacError && e.code === 'E_USAGE');
    const bad = join(b.dir, '..', 'bad.jsonl');
    writeFileSync(bad, '{"text":"hello","label":"spam"}\n');
    await assert.rejects(calibrateClassifier(b.dir, bad, FAST), (e: unknown) => e instanceof SedacError && e.code === 'E_BAD_REQUEST');
    writeFileSync(bad, '{"text":"hello","label":"hate"}\n{"text":"   "}\n');
    await assert.rejects(calibrateClassifier(b.dir, bad, FAST), /usable texts/);
  });
});
