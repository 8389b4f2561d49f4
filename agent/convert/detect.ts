/**
 * Picks the reader for a model path: a directory with config.json is a Hugging Face folder, a file
 * starting with "GGUF" is GGUF, anything else must look like a llama2.c checkpoint (the "ak42"
 * magic, or a legacy header whose sizes add up to the file's length).
 */
import { stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { SedacError } from '../errors.js';
import { readGguf } from './gguf.js';
import { hfSourceFiles, readHfLlama } from './hf.js';
import { looksLikeLlama2c, readLlama2c } from './llama2c.js';
import { combineSha256, exists, readHead, sha256File } from './readerCommon.js';
import type { LlamaSource } from './source.js';

export type SourceFormat = LlamaSource['format'];

export interface LoadSourceOptions {
  /** llama2.c only: the tokenizer.bin to use; default `tokenizer.bin` beside the checkpoint */
  tokenizerPath?: string;
}

/** Which reader handles `path`. Nonexistent → E_MODEL_NOT_FOUND; unrecognised → E_MODEL_FORMAT. */
export async function detectFormat(path: string): Promise<SourceFormat> {
  let isDir: boolean;
  try {
    isDir = (await stat(path)).isDirectory();
  } catch {
    throw new SedacError('E_MODEL_NOT_FOUND', `${path} does not exist`);
  }
  if (isDir) {
    if (await exists(join(path, 'config.json'))) return 'hf';
    throw new SedacError('E_MODEL_FORMAT', `${path} is a directory without config.json (not a Hugging Face model folder)`);
  }
  const { head, size } = await readHead(path, 256);
  if (head.length >= 4 && head[0] === 0x47 && head[1] === 0x47 && head[2] === 0x55 && head[3] === 0x46) return 'gguf';
  if (looksLikeLlama2c(head, size)) return 'llama2c';
  throw new SedacError('E_MODEL_FORMAT', `${path} is not a GGUF file, a llama2.c checkpoint or a Hugging Face folder`);
}

/** Read any supported model source into a LlamaSource. */
export async function loadSource(path: string, opts: LoadSourceOptions = {}): Promise<LlamaSource> {
  switch (await detectFormat(path)) {
    case 'hf':
      return readHfLlama(path);
    case 'gguf':
      return readGguf(path);
    case 'llama2c':
      return readLlama2c(path, opts.tokenizerPath);
  }
}

/** The files a source is made of (what its sha256 covers). */
export async function sourceFiles(path: string, opts: LoadSourceOptions = {}): Promise<string[]> {
  switch (await detectFormat(path)) {
    case 'hf': {
      const { isBertDir, bertSourceFiles } = await import('./bert.js');
      return isBertDir(path) ? bertSourceFiles(path) : hfSourceFiles(path);
    }
    case 'gguf':
      return [path];
    case 'llama2c':
      return [path, opts.tokenizerPath ?? join(dirname(path), 'tokenizer.bin')];
  }
}

/**
 * The sha256 that loadSource puts in `LlamaSource.sha256`, computed by streaming the files
 * (cheap to check whether a converted bundle is stale). One file: its own sha256; several: the
 * sha256 of their `sha256sum` lines sorted by file name.
 */
export async function sourceSha256(path: string, opts: LoadSourceOptions = {}): Promise<string> {
  const files = await sourceFiles(path, opts);
  const entries: { path: string; sha256: string }[] = [];
  for (const f of files) {
    try {
      entries.push({ path: f, sha256: await sha256File(f) });
    } catch {
      // a missing tokenizer file is the same error the reader gives
      const code = basename(f).startsWith('tokenizer') ? 'E_MODEL_TOKENIZER' : 'E_MODEL_NOT_FOUND';
      throw new SedacError(code, `${f} does not exist or cannot be read`);
    }
  }
  return combineSha256(entries);
}
