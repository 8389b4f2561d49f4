import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { detectFormat, loadSource, sourceSha256 } from '../../agent/convert/detect.js';
import { SedacError } from '../../agent/errors.js';
import { MODELS, tempDir } from '../helpers/fixtures.js';
import { sharedPath } from '../helpers/shared.js';

/** sha256 values from a model README's file table. */
function readmeShas(readme: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of readFileSync(readme, 'utf8').matchAll(/^\| `([^`]+)` \| \d+ \| `([0-9a-f]{64})` \|$/gm)) out.set(m[1]!, m[2]!);
  return out;
}

describe('format detection and source hashes', () => {
  let dir: string;
  let cleanup: () => void;
  before(() => ({ dir, cleanup } = tempDir()));
  after(() => cleanup());

  it('picks the reader by content, not by name', async () => {
    assert.equal(await detectFormat(MODELS.stories()), 'gguf');
    assert.equal(await detectFormat(MODELS.captionHf()), 'hf');
    const renamed = join(dir, 'model.bin');
    writeFileSync(renamed, readFileSync(MODELS.stories()));
    assert.equal((await loadSource(renamed)).format, 'gguf');
  });

  it('every shared model loads in well under a second', async () => {
    for (const p of [MODELS.stories(), MODELS.captionF32(), MODELS.captionF16(), MODELS.captionQ8(), MODELS.captionHf()]) {
      const t0 = performance.now();
      await loadSource(p);
      const ms = performance.now() - t0;
      assert.ok(ms < 1000, `${p} took ${ms.toFixed(0)} ms`);
    }
  });

  it('nonexistent → E_MODEL_NOT_FOUND; unknown files and folders → E_MODEL_FORMAT', async () => {
    const code = async (p: string): Promise<string> => {
      try {
        await loadSource(p);
        return 'loaded';
      } catch (e) {
        assert.ok(e instanceof SedacError, String(e));
        return e.code;
      }
    };
    assert.equal(await code(join(dir, 'missing.gguf')), 'E_MODEL_NOT_FOUND');
    writeFileSync(join(dir, 'text.txt'), 'hello, I am not a model at all\n'.repeat(20));
    assert.equal(await code(join(dir, 'text.txt')), 'E_MODEL_FORMAT');
    writeFileSync(join(dir, 'empty'), '');
    assert.equal(await code(join(dir, 'empty')), 'E_MODEL_FORMAT');
    mkdirSync(join(dir, 'folder'));
    assert.equal(await code(join(dir, 'folder')), 'E_MODEL_FORMAT');
  });

  it('sourceSha256 equals the README sha256 of each GGUF and the reader\'s own hash', async () => {
    for (const ee of [false, true]) {
      const name = ee ? 'caption-lm-8L-ee' : 'caption-lm-8L';
      const shas = readmeShas(sharedPath(`models/${name}/README.md`));
      for (const [file, path] of [[`${name}.gguf`, MODELS.captionF32(ee)], [`${name}.f16.gguf`, MODELS.captionF16(ee)], [`${name}.q8_0.gguf`, MODELS.captionQ8(ee)]] as const) {
        assert.ok(shas.get(file), `README lists ${file}`);
        assert.equal(await sourceSha256(path), shas.get(file));
        assert.equal((await loadSource(path)).sha256, shas.get(file));
      }
      // HF: sha256 of the sha256sum lines of the files read, sorted by name
      const files = ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json'];
      const lines = files.map((f) => `${shas.get(`hf/${f}`)!}  ${f}\n`).join('');
      const expected = createHash('sha256').update(lines).digest('hex');
      assert.equal(await sourceSha256(MODELS.captionHf(ee)), expected);
      assert.equal((await loadSource(MODELS.captionHf(ee))).sha256, expected);
    }
  });
});
