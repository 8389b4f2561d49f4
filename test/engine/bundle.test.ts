/**
 * Bundles on disk: integrity checks on load, the convert-once cache, and the CLI's coded errors.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { ensureBundle } from '../../agent/convert/cache.js';
import { loadModel } from '../../agent/engine/index.js';
import { SedacError } from '../../agent/errors.js';
import { sharedBundle } from '../helpers/bundles.js';
import { sharedPath } from '../helpers/shared.js';

const CLI = join(process.cwd(), 'dist', 'agent', 'cli.js');

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

async function copyOfBundle(): Promise<string> {
  const dir = join(mkdtempSync(join(tmpdir(), 'sedac-bundle-')), 'b');
  cpSync(await sharedBundle('models/stories260K/stories260K.gguf'), dir, { recursive: true });
  return dir;
}

async function loadCode(dir: string): Promise<string> {
  try {
    const m = await loadModel({ name: 't', source: dir });
    await m.dispose();
    return 'loaded';
  } catch (err) {
    assert.ok(err instanceof SedacError, `expected a SedacError, got ${String(err)}`);
    return err.code;
  }
}

describe('bundle integrity', () => {
  test('an intact bundle loads', async () => {
    assert.equal(await loadCode(await copyOfBundle()), 'loaded');
  });

  test('an edited graph is refused with E_MODEL_INTEGRITY', async () => {
    const dir = await copyOfBundle();
    const file = join(dir, 'layer.2.onnx');
    const bytes = readFileSync(file);
    bytes[bytes.length >> 1]! ^= 0x40;
    writeFileSync(file, bytes);
    assert.equal(await loadCode(dir), 'E_MODEL_INTEGRITY');
  });

  test('a damaged weight file is refused with E_MODEL_INTEGRITY: flipped, truncated, a device, a directory', async () => {
    const flipped = await copyOfBundle();
    const file = join(flipped, 'weights.bin');
    const bytes = readFileSync(file);
    bytes[bytes.length >> 1]! ^= 0x01;
    writeFileSync(file, bytes);
    assert.equal(await loadCode(flipped), 'E_MODEL_INTEGRITY');
    const truncated = await copyOfBundle();
    truncateSync(join(truncated, 'weights.bin'), 4096);
    assert.equal(await loadCode(truncated), 'E_MODEL_INTEGRITY');
    // /dev/zero would never finish hashing; a directory cannot be read: both refused before reading
    const device = await copyOfBundle();
    rmSync(join(device, 'weights.bin'));
    symlinkSync('/dev/zero', join(device, 'weights.bin'));
    assert.equal(await loadCode(device), 'E_MODEL_INTEGRITY');
    const folder = await copyOfBundle();
    rmSync(join(folder, 'weights.bin'));
    mkdirSync(join(folder, 'weights.bin'));
    assert.equal(await loadCode(folder), 'E_MODEL_INTEGRITY');
  });

  test('a missing tokenizer is refused with E_MODEL_INTEGRITY', async () => {
    const dir = await copyOfBundle();
    rmSync(join(dir, 'tokenizer.json'));
    assert.equal(await loadCode(dir), 'E_MODEL_INTEGRITY');
  });

  test('a garbled manifest is refused with E_MODEL_FORMAT', async () => {
    const dir = await copyOfBundle();
    writeFileSync(join(dir, 'manifest.json'), '{"format": "sedac-bundle", "version": 1, "graphs": ');
    assert.equal(await loadCode(dir), 'E_MODEL_FORMAT');
  });

  test('a manifest from a future version is refused with E_MODEL_UNSUPPORTED', async () => {
    const dir = await copyOfBundle();
    const m = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as Record<string, unknown>;
    writeFileSync(join(dir, 'manifest.json'), JSON.stringify({ ...m, version: 99 }));
    assert.equal(await loadCode(dir), 'E_MODEL_UNSUPPORTED');
  });

  test('a graph file whose bytes match but whose content is not ONNX fails with E_MODEL_LOAD', async () => {
    const dir = await copyOfBundle();
    const m = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as { graphs: Record<string, { file: string; sha256: string }> };
    const junk = Buffer.from('this is not an onnx model');
    writeFileSync(join(dir, m.graphs.full!.file), junk);
    const { createHash } = await import('node:crypto');
    m.graphs.full!.sha256 = createHash('sha256').update(junk).digest('hex');
    writeFileSync(join(dir, 'manifest.json'), JSON.stringify(m));
    assert.equal(await loadCode(dir), 'E_MODEL_LOAD');
  });
});

describe('convert-once cache', () => {
  test('the same source maps to the same bundle; a changed source is converted again', async () => {
    const cache = mkdtempSync(join(tmpdir(), 'sedac-cache-'));
    const src = join(mkdtempSync(join(tmpdir(), 'sedac-src-')), 'm.gguf');
    cpSync(sharedPath('models/stories260K/stories260K.gguf'), src);
    const a = await ensureBundle(src, { cacheDir: cache, quiet: true });
    const stamp = readFileSync(join(a, 'manifest.json'), 'utf8');
    assert.equal(await ensureBundle(src, { cacheDir: cache, quiet: true }), a);
    assert.equal(readFileSync(join(a, 'manifest.json'), 'utf8'), stamp, 'not reconverted');
    const bytes = readFileSync(src);
    bytes[bytes.length - 1]! ^= 0x01; // last weight byte: still a valid model
    writeFileSync(src, bytes);
    const b = await ensureBundle(src, { cacheDir: cache, quiet: true });
    assert.notEqual(b, a);
    assert.equal(readdirSync(cache).filter((n) => !n.startsWith('.')).length, 2);
  });
});

describe('sedac CLI', () => {
  test('generate --json prints the result fields', async () => {
    const cache = mkdtempSync(join(tmpdir(), 'sedac-cli-'));
    const r = await cli(['generate', sharedPath('models/caption-lm-8L-ee/caption-lm-8L-ee.gguf'), '--prompt', 'a black dog', '--json', '--cache-dir', cache]);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as Record<string, unknown>;
    // golden from the caption-lm-8L-ee README: `a black dog is running through the snow`
    assert.equal(out.text, ' is running through the snow');
    assert.deepEqual(out.tokens, [294, 415, 420, 271, 394]);
    assert.equal(out.prompt_tokens, 4);
    for (const k of ['ms', 'tokens_per_s']) assert.equal(typeof out[k], 'number', k);
  });

  test('convert writes a bundle that generate can run', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'sedac-cli-')), 'bundle');
    const c = await cli(['convert', sharedPath('models/caption-lm-8L/hf'), out, '--json']);
    assert.equal(c.code, 0, c.stderr);
    assert.equal((JSON.parse(c.stdout) as { architecture: string }).architecture, 'llama');
    const g = await cli(['generate', out, '--prompt', 'the dog', '--json']);
    assert.equal(g.code, 0, g.stderr);
    assert.deepEqual((JSON.parse(g.stdout) as { tokens: number[] }).tokens, [294, 415, 420, 271, 370]);
  });

  test('a missing model is a coded error, not a stack dump', async () => {
    const r = await cli(['generate', '/nonexistent/model.gguf', '--prompt', 'x']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^sedac: E_MODEL_NOT_FOUND: /);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
  });

  test('bad options are E_USAGE with exit code 2', async () => {
    const r = await cli(['generate', 'x', '--prompt', 'y', '--max-tokens', 'lots']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /E_USAGE/);
  });
});
