/**
 * Convert-once cache: any convertible source (GGUF file, llama2.c checkpoint, HF folder) becomes a
 * bundle under `<cacheDir>/<sha256 prefix>/`, keyed by the source's content hash, so a changed file
 * is reconverted and an unchanged one is not.
 */
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { existsSync } from 'node:fs';
import { isBundleDir, readManifest } from '../engine/bundle.js';
import { SedacError } from '../errors.js';

/** Default cache: $SEDAC_CACHE_DIR, else $STATE_DIRECTORY/bundles (systemd), else ~/.cache/sedac/bundles. */
export function defaultCacheDir(): string {
  if (process.env.SEDAC_CACHE_DIR) return resolve(process.env.SEDAC_CACHE_DIR);
  if (process.env.STATE_DIRECTORY) return join(process.env.STATE_DIRECTORY.split(':')[0]!, 'bundles');
  return join(homedir(), '.cache', 'sedac', 'bundles');
}

export interface EnsureOptions {
  cacheDir?: string;
  quiet?: boolean;
  /** Hugging Face hub base URL for `hf://` sources; default $HF_ENDPOINT, else https://huggingface.co */
  hubEndpoint?: string;
}

/**
 * A bundle directory for `source`: the source itself when it is a bundle, else a cached conversion.
 * A hub reference (`hf://owner/repo[@rev][/file]`) is first downloaded into `<cacheDir>/hub/`.
 */
export async function ensureBundle(source: string, opts: EnsureOptions = {}): Promise<string> {
  const cacheRoot = opts.cacheDir ? resolve(opts.cacheDir) : defaultCacheDir();
  if (source.startsWith('hf://')) {
    const { fetchHubModel } = await import('./hub.js');
    source = await fetchHubModel(source, { cacheDir: cacheRoot, endpoint: opts.hubEndpoint, quiet: opts.quiet });
  }
  const path = resolve(source);
  if (!existsSync(path)) throw new SedacError('E_MODEL_NOT_FOUND', `model not found: ${source}`);
  if (isBundleDir(path)) return path;
  const { sourceSha256 } = await import('./detect.js');
  const hash = await sourceSha256(path);
  const dir = join(cacheRoot, hash.slice(0, 16));
  if (isBundleDir(dir)) {
    try {
      const m = readManifest(dir, false);
      if (m.source.sha256 === hash) return dir;
    } catch {
      // unreadable cached bundle: convert again below
    }
  }
  await convertModel(path, dir, { quiet: opts.quiet });
  return dir;
}

/** Convert any supported source into a bundle at `outDir` (replacing what is there). */
export async function convertModel(source: string, outDir: string, opts: { quiet?: boolean } = {}): Promise<void> {
  const path = resolve(source);
  if (!existsSync(path)) throw new SedacError('E_MODEL_NOT_FOUND', `model not found: ${source}`);
  if (existsSync(join(path, 'config.json'))) {
    const { isBertDir, convertBert } = await import('./bert.js');
    if (isBertDir(path)) {
      await convertBert(path, outDir, { quiet: opts.quiet });
      return;
    }
  }
  const { loadSource } = await import('./detect.js');
  const { writeLlamaBundle } = await import('./llamaBundle.js');
  const src = await loadSource(path);
  writeLlamaBundle(src, outDir, { sourcePath: path, quiet: opts.quiet });
}
