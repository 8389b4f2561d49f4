/**
 * Converting shared models into bundles once per test process (in a temp cache dir), so tests that
 * need the same bundle do not pay the conversion twice.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureBundle } from '../../agent/convert/cache.js';
import { loadModel } from '../../agent/engine/index.js';
import type { Decoder } from '../../agent/engine/decoder.js';
import { sharedPath } from './shared.js';

let cacheDir: string | undefined;

export function testCacheDir(): string {
  cacheDir ??= mkdtempSync(join(tmpdir(), 'sedac-test-cache-'));
  return cacheDir;
}

/** A bundle directory for a shared model path (relative to ../shared). */
export async function sharedBundle(rel: string): Promise<string> {
  return ensureBundle(sharedPath(rel), { cacheDir: testCacheDir(), quiet: true });
}

export async function sharedDecoder(rel: string, threads = 1): Promise<Decoder> {
  return (await loadModel({ name: rel, source: sharedPath(rel), cacheDir: testCacheDir(), quiet: true, threads })) as Decoder;
}
