/**
 * Loading models: a bundle directory or any convertible source (converted once into the cache).
 * This is what features and commands call; they never see onnxruntime.
 */
import { join } from 'node:path';
import { ensureBundle } from '../convert/cache.js';
import { SedacError } from '../errors.js';
import { readManifest, sha256File } from './bundle.js';
import { Decoder } from './decoder.js';
import { createTokenizer, tokenizerFromJson } from './tokenizer/index.js';
import type { LoadedModel, Tokenizer } from './types.js';
import { readFileSync } from 'node:fs';

export interface ModelSpec {
  /** a name for logs and responses */
  name: string;
  /** bundle directory, GGUF file, llama2.c checkpoint or Hugging Face folder */
  source: string;
  /** ORT intra-op threads; default 1 */
  threads?: number;
  /** decoders: weight bytes loaded graphs may hold, × the bundle's weights; default 1.25 (DecoderOptions) */
  residentWeights?: number;
  /** decoders: MB graphs loaded side by side may hold (timing); default $SEDAC_MEMORY_MB, else ¼ of RAM */
  memoryMb?: number;
  /** where converted bundles are cached; default see defaultCacheDir() */
  cacheDir?: string;
  /** no progress output while converting */
  quiet?: boolean;
}

export function loadBundleTokenizer(dir: string, file: string): Tokenizer {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(join(dir, file), 'utf8'));
  } catch (err) {
    throw new SedacError('E_MODEL_TOKENIZER', `${dir}/${file}: ${(err as Error).message}`);
  }
  return createTokenizer(tokenizerFromJson(json));
}

export async function loadModel(spec: ModelSpec): Promise<LoadedModel> {
  const dir = await ensureBundle(spec.source, { cacheDir: spec.cacheDir, quiet: spec.quiet });
  const manifest = readManifest(dir, true);
  const hash = sha256File(join(dir, 'manifest.json'));
  if (manifest.task === 'classify') {
    const { loadClassifier } = await import('./classifier.js');
    return loadClassifier(dir, manifest, { threads: spec.threads });
  }
  if (manifest.architecture !== 'llama') throw new SedacError('E_MODEL_UNSUPPORTED', `${dir}: architecture ${manifest.architecture}`);
  const tokenizer = loadBundleTokenizer(dir, manifest.tokenizer.file);
  return Decoder.load(dir, manifest, hash, tokenizer, { threads: spec.threads, residentWeights: spec.residentWeights, memoryMb: spec.memoryMb });
}

export type { LoadedModel } from './types.js';
