/**
 * The model bundle on disk: `manifest.json` + ONNX graphs + `tokenizer.json` (+ exit heads).
 * Every file is listed with its sha256; loading verifies them, so an edited bundle is refused with
 * E_MODEL_INTEGRITY instead of producing quiet nonsense.
 */
import { createHash } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { SedacError } from '../errors.js';
import { type WeightFileIndex, checkWeightIndex } from './weightFile.js';

export const BUNDLE_FORMAT = 'sedac-bundle';
/**
 * 2: decoder graphs read the KV cache from engine buffers and return only new rows (`new_kv`).
 * 3: large initializers live once in shared weight files (`weight_files`), graphs reference them.
 */
export const BUNDLE_VERSION = 3;

export interface TensorSpec {
  name: string;
  /** ONNX element type name as onnxruntime reports it: float32, int64, int32 */
  type: string;
  /** numbers are fixed; strings are symbolic (batch, seq, past, total) */
  shape: (number | string)[];
}

export interface GraphEntry {
  file: string;
  sha256: string;
  inputs: TensorSpec[];
  outputs: TensorSpec[];
  /** bytes of the initializers the graph uses (inline or in a weight file): what a session of it holds */
  weight_bytes?: number;
  /** the weight files (`weight_files[].file`) the graph reads its external initializers from */
  weight_files?: string[];
}

export interface FileEntry {
  file: string;
  sha256: string;
}

export interface Manifest {
  format: typeof BUNDLE_FORMAT;
  version: number;
  task: 'generate' | 'classify';
  architecture: 'llama' | 'bert';
  name: string;
  /** where the bundle came from */
  source: { format: string; path: string; sha256: string };
  /** architecture dimensions (LlamaConfig for llama, BertConfig for bert) */
  config: Record<string, unknown>;
  /** weight storage: f32, f16 (kept as f16 where ORT runs it), q8 (int8 blockwise), q4 */
  weights: string;
  tokenizer: FileEntry;
  /** graph role → graph; roles are defined by the architecture's builder (embed, layer.N, head, full, ...) */
  graphs: Record<string, GraphEntry>;
  /** the files graphs take their large initializers from as ONNX external data (each weight stored once) */
  weight_files: WeightFileIndex[];
  /** class labels in output order (classifiers) */
  labels?: string[];
  /** exit heads, calibrated ladder and other per-task extras */
  extras?: Record<string, unknown>;
  sedac_version: string;
  created_at: string;
}

export function sha256(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** sha256 of a file, read in 1 MiB chunks (a weight file is hundreds of MB: never whole in memory). */
export function sha256File(path: string): string {
  const h = createHash('sha256');
  const buf = new Uint8Array(1 << 20);
  const fd = openSync(path, 'r');
  try {
    for (let pos = 0; ; ) {
      const n = readSync(fd, buf, 0, buf.length, pos);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
      pos += n;
    }
  } finally {
    closeSync(fd);
  }
  return h.digest('hex');
}

/** Write bytes to a bundle file and return its entry. */
export function writeBundleFile(dir: string, file: string, data: Uint8Array | string): FileEntry {
  const p = join(dir, file);
  mkdirSync(dirname(p), { recursive: true });
  writeFileSync(p, data);
  return { file, sha256: sha256(data) };
}

/** Write the manifest last, atomically (temp + rename), so a half-written bundle never loads. */
export function writeManifest(dir: string, m: Manifest): void {
  const p = join(dir, 'manifest.json');
  const tmp = `${p}.tmp-${process.pid}`;
  writeFileSync(tmp, JSON.stringify(m, null, 2) + '\n');
  renameSync(tmp, p);
}

export function isBundleDir(path: string): boolean {
  return existsSync(join(path, 'manifest.json'));
}

/** Read and check a bundle's manifest; with `verify`, every listed file's sha256 too. */
export function readManifest(dir: string, verify = true): Manifest {
  const p = join(resolve(dir), 'manifest.json');
  if (!existsSync(p)) throw new SedacError('E_MODEL_NOT_FOUND', `no bundle at ${dir} (manifest.json missing)`);
  let m: Manifest;
  try {
    m = JSON.parse(readFileSync(p, 'utf8')) as Manifest;
  } catch (err) {
    throw new SedacError('E_MODEL_FORMAT', `${p} is not valid JSON: ${(err as Error).message}`);
  }
  if (m === null || typeof m !== 'object' || m.format !== BUNDLE_FORMAT) {
    throw new SedacError('E_MODEL_FORMAT', `${p} is not a SEDAC bundle manifest`);
  }
  if (m.version !== BUNDLE_VERSION) {
    throw new SedacError('E_MODEL_UNSUPPORTED', `${p}: bundle version ${String(m.version)} (this SEDAC reads ${BUNDLE_VERSION}); reconvert the model`);
  }
  if (typeof m.graphs !== 'object' || m.graphs === null || typeof m.tokenizer?.file !== 'string') {
    throw new SedacError('E_MODEL_FORMAT', `${p}: graphs or tokenizer missing`);
  }
  if (!Array.isArray(m.weight_files)) throw new SedacError('E_MODEL_FORMAT', `${p}: weight_files missing`);
  m.weight_files = m.weight_files.map((w) => checkWeightIndex(dir, w));
  if (verify) {
    for (const e of [m.tokenizer, ...Object.values(m.graphs), ...m.weight_files]) verifyFile(dir, e);
  }
  return m;
}

export function verifyFile(dir: string, e: FileEntry): void {
  if (typeof e?.file !== 'string' || e.file.includes('..')) throw new SedacError('E_MODEL_FORMAT', `bundle ${dir}: bad file entry`);
  const p = join(dir, e.file);
  if (!existsSync(p)) throw new SedacError('E_MODEL_INTEGRITY', `bundle ${dir}: ${e.file} is missing`);
  // a device node, FIFO or directory in place of a file would hang or fail the hash: refuse it
  const st = statSync(p);
  if (!st.isFile()) throw new SedacError('E_MODEL_INTEGRITY', `bundle ${dir}: ${e.file} is not a regular file`);
  if ('bytes' in e && typeof e.bytes === 'number' && st.size !== e.bytes) throw new SedacError('E_MODEL_INTEGRITY', `bundle ${dir}: ${e.file} is ${st.size} bytes, the manifest says ${e.bytes}`);
  const got = sha256File(p);
  if (got !== e.sha256) {
    throw new SedacError('E_MODEL_INTEGRITY', `bundle ${dir}: ${e.file} was modified (sha256 ${got.slice(0, 12)}…, manifest says ${String(e.sha256).slice(0, 12)}…); reconvert the model`);
  }
}

/** Replace `dir` by a freshly written bundle: build in a sibling temp dir, then rename. */
export function replaceDir(tmpDir: string, dir: string): void {
  if (existsSync(dir)) rmSync(dir, { recursive: true, force: true });
  renameSync(tmpDir, dir);
}

export const SEDAC_VERSION = '0.1.0';
