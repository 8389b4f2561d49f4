/**
 * Pieces shared by the model file readers (gguf.ts, llama2c.ts, hf.ts): a bounds-checked
 * little-endian cursor, whole-file reads with stable error codes, sha256 of source files, and the
 * config / tensor-shape checks every LlamaSource passes before it leaves a reader.
 *
 * Every count or length read from a file is checked against the bytes that remain before anything
 * is allocated for it, so a hostile or corrupt file fails with E_MODEL_FORMAT instead of a huge
 * allocation, a hang or a RangeError.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, readFile, stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { SedacError, type ErrorCode } from '../errors.js';
import type { LlamaConfig, LlamaTensors, SourceDType, SourceTensor } from './source.js';

const fatalUtf8 = new TextDecoder('utf-8', { fatal: true });

/** A cursor over a byte buffer whose reads throw `code` (default E_MODEL_FORMAT) when out of bounds. */
export class ByteCursor {
  private readonly view: DataView;
  pos: number;

  constructor(
    readonly buf: Uint8Array,
    /** what is being read, for error messages (e.g. the file name) */
    readonly what: string,
    pos = 0,
    readonly code: ErrorCode = 'E_MODEL_FORMAT',
  ) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    this.pos = pos;
  }

  get remaining(): number {
    return this.buf.length - this.pos;
  }

  fail(message: string): SedacError {
    return new SedacError(this.code, `${this.what}: ${message}`, { offset: this.pos });
  }

  /** Throw unless `n` more bytes are available for `field`. */
  need(n: number, field: string): void {
    if (!Number.isFinite(n) || n < 0 || n > this.remaining) {
      throw this.fail(`truncated: ${field} needs ${n} bytes at offset ${this.pos}, ${this.remaining} left`);
    }
  }

  u8(field: string): number {
    this.need(1, field);
    return this.view.getUint8(this.pos++);
  }

  u32(field: string): number {
    this.need(4, field);
    const v = this.view.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }

  i32(field: string): number {
    this.need(4, field);
    const v = this.view.getInt32(this.pos, true);
    this.pos += 4;
    return v;
  }

  f32(field: string): number {
    this.need(4, field);
    const v = this.view.getFloat32(this.pos, true);
    this.pos += 4;
    return v;
  }

  u64big(field: string): bigint {
    this.need(8, field);
    const v = this.view.getBigUint64(this.pos, true);
    this.pos += 8;
    return v;
  }

  /** A u64 that must fit in a JS number (counts, lengths, offsets). */
  u64(field: string): number {
    const v = this.u64big(field);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw this.fail(`${field} ${v} is too large`);
    return Number(v);
  }

  bytes(n: number, field: string): Uint8Array {
    this.need(n, field);
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }

  /** `n` bytes of strict UTF-8. */
  utf8(n: number, field: string): string {
    return decodeUtf8(this.bytes(n, field), () => this.fail(`${field} is not valid UTF-8`));
  }
}

export function decodeUtf8(b: Uint8Array, onError: () => Error): string {
  try {
    return fatalUtf8.decode(b);
  } catch {
    throw onError();
  }
}

/** Read a whole file. Missing → E_MODEL_NOT_FOUND; a directory or unreadable file → `code`. */
export async function readWhole(path: string, code: ErrorCode = 'E_MODEL_FORMAT'): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ENOENT' || e.code === 'ENOTDIR') {
      throw new SedacError(code === 'E_MODEL_TOKENIZER' ? code : 'E_MODEL_NOT_FOUND', `${path} does not exist`);
    }
    if (e.code === 'ERR_FS_FILE_TOO_LARGE' || e instanceof RangeError) {
      throw new SedacError('E_MODEL_UNSUPPORTED', `${path} is too large to read into memory (the readers hold a source in one buffer, at most 2 GiB)`);
    }
    throw new SedacError(code, `cannot read ${path}: ${e.code ?? e.message}`);
  }
}

/** Read the first `n` bytes of a file and its size (for format detection without a full read). */
export async function readHead(path: string, n: number): Promise<{ head: Uint8Array; size: number }> {
  const fh = await open(path, 'r');
  try {
    const { size } = await fh.stat();
    const head = new Uint8Array(Math.min(n, size));
    await fh.read(head, 0, head.length, 0);
    return { head, size };
  } finally {
    await fh.close();
  }
}

/** True when `path` exists (file or directory). */
export async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/** Parse JSON text from a file; malformed → `code` naming the file. */
export function parseJson(buf: Uint8Array, path: string, code: ErrorCode = 'E_MODEL_FORMAT'): unknown {
  const text = decodeUtf8(buf, () => new SedacError(code, `${path} is not valid UTF-8`));
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new SedacError(code, `${path} is not valid JSON: ${(err as Error).message}`);
  }
}

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function sha256Hex(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** sha256 of a file, streamed (no whole-file buffer). */
export async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/**
 * One hash for a source made of several files: a single file's own sha256 (so it matches
 * `sha256sum`), else the sha256 of `sha256sum`-style lines `<hex>  <basename>\n` sorted by name.
 */
export function combineSha256(entries: { path: string; sha256: string }[]): string {
  if (entries.length === 1) return entries[0]!.sha256;
  const lines = entries
    .map((e) => ({ name: basename(e.path), sha: e.sha256 }))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .map((e) => `${e.sha}  ${e.name}\n`);
  return createHash('sha256').update(lines.join('')).digest('hex');
}

/** Bytes a tensor of this dtype and shape occupies (q8_g: the int8 values only). */
export function tensorByteSize(dtype: SourceDType, shape: number[]): number {
  const n = shape.reduce((a, b) => a * b, 1);
  const inner = shape[shape.length - 1] ?? 1;
  switch (dtype) {
    case 'f32':
      return n * 4;
    case 'f16':
      return n * 2;
    case 'q8_g':
      return n;
    case 'q8_0':
      if (inner % 32 !== 0) return NaN;
      return (n / 32) * 34;
    case 'q4_0':
      if (inner % 32 !== 0) return NaN;
      return (n / 32) * 18;
  }
}

/** Throw E_MODEL_SHAPE unless `t` has exactly `expected` as its shape. */
export function expectShape(t: SourceTensor, expected: number[]): void {
  const same = t.shape.length === expected.length && t.shape.every((d, i) => d === expected[i]);
  if (!same) {
    throw new SedacError('E_MODEL_SHAPE', `tensor ${t.name}: expected shape [${expected.join(', ')}], got [${t.shape.join(', ')}]`, {
      tensor: t.name,
      expected,
      got: t.shape,
    });
  }
}

export function missingTensor(name: string, where: string): SedacError {
  return new SedacError('E_MODEL_SHAPE', `${where}: tensor ${name} is missing`, { tensor: name });
}

const MAX_DIM = 1 << 24;

/** Check a config for values no model can have (E_MODEL_FORMAT naming `where`). */
export function validateConfig(c: LlamaConfig, where: string): void {
  const ints: [string, number][] = [
    ['dim', c.dim],
    ['nLayers', c.nLayers],
    ['nHeads', c.nHeads],
    ['nKvHeads', c.nKvHeads],
    ['headDim', c.headDim],
    ['ffnDim', c.ffnDim],
    ['vocabSize', c.vocabSize],
    ['maxSeqLen', c.maxSeqLen],
  ];
  for (const [k, v] of ints) {
    if (!Number.isSafeInteger(v) || v <= 0 || v > MAX_DIM) {
      throw new SedacError('E_MODEL_FORMAT', `${where}: ${k} = ${v} is not a plausible positive size`);
    }
  }
  if (c.nLayers > 4096 || c.nHeads > 4096) {
    throw new SedacError('E_MODEL_FORMAT', `${where}: ${c.nLayers} layers / ${c.nHeads} heads is not plausible`);
  }
  if (c.nHeads % c.nKvHeads !== 0) {
    throw new SedacError('E_MODEL_FORMAT', `${where}: ${c.nHeads} heads is not a multiple of ${c.nKvHeads} kv heads`);
  }
  if (c.headDim % 2 !== 0) throw new SedacError('E_MODEL_FORMAT', `${where}: head dim ${c.headDim} is odd (RoPE needs pairs)`);
  if (!(c.normEps > 0 && c.normEps < 1)) throw new SedacError('E_MODEL_FORMAT', `${where}: RMSNorm epsilon ${c.normEps} is not plausible`);
  if (!(c.ropeTheta > 1 && Number.isFinite(c.ropeTheta))) {
    throw new SedacError('E_MODEL_FORMAT', `${where}: RoPE theta ${c.ropeTheta} is not plausible`);
  }
}

/** Check every tensor's shape against the config (E_MODEL_SHAPE naming the tensor). */
export function checkTensorShapes(c: LlamaConfig, t: LlamaTensors): void {
  const q = c.nHeads * c.headDim;
  const kv = c.nKvHeads * c.headDim;
  expectShape(t.tokEmbd, [c.vocabSize, c.dim]);
  expectShape(t.outputNorm, [c.dim]);
  if (t.output) expectShape(t.output, [c.vocabSize, c.dim]);
  if (t.layers.length !== c.nLayers) {
    throw new SedacError('E_MODEL_SHAPE', `expected ${c.nLayers} layers, got ${t.layers.length}`);
  }
  for (const l of t.layers) {
    expectShape(l.attnNorm, [c.dim]);
    expectShape(l.wq, [q, c.dim]);
    expectShape(l.wk, [kv, c.dim]);
    expectShape(l.wv, [kv, c.dim]);
    expectShape(l.wo, [c.dim, q]);
    expectShape(l.ffnNorm, [c.dim]);
    expectShape(l.wGate, [c.ffnDim, c.dim]);
    expectShape(l.wUp, [c.ffnDim, c.dim]);
    expectShape(l.wDown, [c.dim, c.ffnDim]);
  }
}

/** True when two tensors hold the same dtype, shape and bytes (used to detect a copied LM head). */
export function sameTensor(a: SourceTensor, b: SourceTensor): boolean {
  if (a.dtype !== b.dtype || a.shape.length !== b.shape.length || a.data.length !== b.data.length) return false;
  if (!a.shape.every((d, i) => d === b.shape[i])) return false;
  if (a.groupSize !== b.groupSize) return false;
  if (!Buffer.from(a.data.buffer, a.data.byteOffset, a.data.length).equals(Buffer.from(b.data.buffer, b.data.byteOffset, b.data.length))) {
    return false;
  }
  if (a.scales || b.scales) {
    if (!a.scales || !b.scales || a.scales.length !== b.scales.length) return false;
    return a.scales.every((s, i) => Object.is(s, b.scales![i]));
  }
  return true;
}
