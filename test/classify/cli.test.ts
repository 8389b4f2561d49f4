/**
 * `sedac classify` as a user runs it: one text, a JSONL file (with broken lines counted, not
 * fatal), an HF folder converted once into the cache, and coded errors with exit status 1.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { calibrateClassifier } from '../../agent/calibrate/classifierCalibrate.js';
import { BERT_HF, DAVIDSON, bertProbes, tempBertBundle } from './fixtures.js';

const CLI = join(process.cwd(), 'dist', 'agent', 'cli.js');

function sedac(...args: string[]): { code: number; out: unknown; stderr: string } {
  if (!existsSync(CLI)) throw new Error(`${CLI} missing: run npm run build`);
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 120_000 });
  const line = r.stdout.trim().split('\n').pop() ?? '';
  let out: unknown;
  try {
    out = JSON.parse(line);
  } catch {
    out = r.stdout;
  }
  return { code: r.status ?? -1, out, stderr: r.stderr };
}

describe('sedac classify', () => {
  let b: { dir: string; cleanup: () => void };
  before(async () => {
    b = await tempBertBundle();
    await calibrateClassifier(b.dir, DAVIDSON('train'), { maxTexts: 1200, epochs: 8, quiet: true });
  });
  after(() => b?.cleanup());

  it('--text --json prints label, probs, layers, level, ms', () => {
    const p = bertProbes()[1]!;
    const r = sedac('classify', b.dir, '--text', p.text, '--json');
    assert.equal(r.code, 0, r.stderr);
    const o = r.out as { label: string; probs: Record<string, number>; layers: number; level: string; ms: number };
    assert.equal(o.label, p.label);
    assert.deepEqual(Object.keys(o.probs), ['hate', 'offensive', 'neither']);
    assert.equal(o.layers, 6);
    assert.equal(o.level, 'full');
    assert.ok(o.ms > 0);
    const lv = sedac('classify', b.dir, '--text', p.text, '--level', 'critical', '--json').out as { level: string; layers: number };
    assert.equal(lv.level, 'critical');
    assert.ok(lv.layers < 6);
  });

  it('--input FILE --json reports metrics and counts broken lines by code', () => {
    const val = readFileSync(DAVIDSON('val'), 'utf8').trim().split('\n').slice(0, 60);
    const file = join(b.dir, '..', 'input.jsonl');
    const broken = [Buffer.from('{"text": "bad \xff bytes"}\n', 'latin1'), Buffer.from('not json\n'), Buffer.from('{"text": "   "}\n'), Buffer.from('{"label": 1}\n')];
    writeFileSync(file, Buffer.concat([Buffer.from(val.join('\n') + '\n'), ...broken]));
    const r = sedac('classify', b.dir, '--input', file, '--level', 'eco', '--json');
    assert.equal(r.code, 0, r.stderr);
    const o = r.out as Record<string, unknown>;
    for (const k of ['n', 'level', 'accuracy', 'macro_f1', 'per_class_f1', 'agreement_with_full', 'mean_layers', 'p50_ms', 'full_p50_ms', 'speedup']) assert.ok(k in o, k);
    assert.equal(o.n, 60);
    assert.equal(o.level, 'eco');
    assert.deepEqual(o.errors, { E_INPUT: 2, E_BAD_REQUEST: 2 });
    assert.ok((o.accuracy as number) > 0.6 && (o.agreement_with_full as number) > 0.8);
    assert.ok((o.mean_layers as number) < 6);
  });

  it('an HF folder is converted once into the cache and classified', () => {
    const cache = join(b.dir, '..', 'cache');
    const p = bertProbes()[2]!;
    for (let i = 0; i < 2; i++) {
      const r = sedac('classify', BERT_HF(), '--text', p.text, '--cache-dir', cache, '--json');
      assert.equal(r.code, 0, r.stderr);
      assert.equal((r.out as { label: string }).label, p.label);
    }
    assert.equal(readdirSync(cache).filter((d) => !d.startsWith('.')).length, 1);
  });

  it('errors: coded JSON and exit status 1 (2 for usage)', () => {
    const empty = sedac('classify', b.dir, '--text', '  ', '--json');
    assert.equal(empty.code, 1);
    assert.equal((empty.out as { error: { code: string } }).error.code, 'E_INPUT');
    const level = sedac('classify', b.dir, '--text', 'hi', '--level', 'turbo', '--json');
    assert.equal((level.out as { error: { code: string } }).error.code, 'E_BAD_REQUEST');
    assert.equal(sedac('classify', b.dir).code, 2);
    assert.equal((sedac('classify', join(b.dir, 'nope'), '--text', 'x', '--json').out as { error: { code: string } }).error.code, 'E_MODEL_NOT_FOUND');
  });
});
