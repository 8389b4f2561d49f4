/**
 * One weights file per bundle, shared by every graph: each initializer above a size threshold is
 * stored once (deduplicated by content), at an offset aligned for mmap, and graphs reference it as
 * ONNX external data. onnxruntime maps aligned external initializers on CPU instead of copying them,
 * so however many graphs (full, per-layer, segments of every level) use a weight, it exists once on
 * disk and once in the page cache.
 *
 * Layout: the file is append-only. Calibration adds its own tensors (exit lenses) to a second file
 * of the same kind, so the converted weights never change after conversion.
 */
import { createHash } from 'node:crypto';
import { closeSync, fsyncSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { SedacError } from '../errors.js';

/**
 * Alignment of every externally stored tensor (bytes): 64 KiB covers the allocation granularity of
 * 4 KiB, 16 KiB (Raspberry Pi 5 kernels) and 64 KiB page systems, so onnxruntime can map them.
 */
export const WEIGHT_ALIGN = 65536;
/** Initializers smaller than this stay inside the graph file (constants, norm vectors, small tables). */
export const EXTERNAL_MIN_BYTES = 32768;

/** Where a tensor lives in a weights file. */
export interface WeightSlot {
  file: string;
  offset: number;
  length: number;
}

/** The manifest's description of a weights file: content hash → [offset, length] of every tensor. */
export interface WeightFileIndex {
  file: string;
  /** sha256 of the whole file (verified at load like every bundle file) */
  sha256: string;
  bytes: number;
  /** tensor content sha256 → [offset, length] */
  tensors: Record<string, [number, number]>;
}

/** Somewhere an initializer's bytes can be placed instead of inside the graph. */
export interface WeightSink {
  place(raw: Uint8Array): WeightSlot | undefined;
}

function contentKey(raw: Uint8Array): string {
  return createHash('sha256').update(raw).digest('hex');
}

/**
 * An append-only weights file being written. `place` returns the slot of identical bytes already
 * stored (in this file or in `shared`, a finished file of the same bundle) or appends them.
 */
export class WeightFileWriter implements WeightSink {
  private fd: number;
  private size = 0;
  private readonly tensors: Record<string, [number, number]> = {};
  private readonly hash = createHash('sha256');
  private closed = false;

  /** @param dir bundle (or temp) directory; @param file name inside it; @param shared finished files to reuse tensors from */
  constructor(
    private readonly dir: string,
    readonly file: string,
    private readonly shared: WeightFileIndex[] = [],
  ) {
    this.fd = openSync(join(dir, file), 'w');
  }

  place(raw: Uint8Array): WeightSlot | undefined {
    if (raw.byteLength < EXTERNAL_MIN_BYTES) return undefined;
    const key = contentKey(raw);
    for (const s of this.shared) {
      const hit = s.tensors[key];
      if (hit) return { file: s.file, offset: hit[0], length: hit[1] };
    }
    const own = this.tensors[key];
    if (own) return { file: this.file, offset: own[0], length: own[1] };
    const offset = Math.ceil(this.size / WEIGHT_ALIGN) * WEIGHT_ALIGN;
    if (offset > this.size) this.write(new Uint8Array(offset - this.size));
    this.write(raw);
    this.tensors[key] = [offset, raw.byteLength];
    return { file: this.file, offset, length: raw.byteLength };
  }

  private write(b: Uint8Array): void {
    let done = 0;
    while (done < b.byteLength) done += writeSync(this.fd, b, done, b.byteLength - done);
    this.hash.update(b);
    this.size += b.byteLength;
  }

  /** True when nothing was stored (the caller may then drop the file). */
  get empty(): boolean {
    return this.size === 0;
  }

  /** Flush to disk and describe the file for the manifest. */
  finish(): WeightFileIndex {
    if (!this.closed) {
      fsyncSync(this.fd);
      closeSync(this.fd);
      this.closed = true;
    }
    return { file: this.file, sha256: this.hash.digest('hex'), bytes: this.size, tensors: this.tensors };
  }

  /** Close without describing (on failure). */
  abort(): void {
    if (!this.closed) closeSync(this.fd);
    this.closed = true;
  }
}

/** Check a manifest's weight-file entry: shape of the index and that every slot lies inside the file. */
export function checkWeightIndex(dir: string, e: unknown): WeightFileIndex {
  const bad = (why: string) => new SedacError('E_MODEL_FORMAT', `bundle ${dir}: weights entry ${why}`);
  if (e === null || typeof e !== 'object') throw bad('is not an object');
  const w = e as Partial<WeightFileIndex>;
  if (typeof w.file !== 'string' || !/^[\w.-]+$/.test(w.file)) throw bad('has no valid file name');
  if (typeof w.sha256 !== 'string' || !Number.isSafeInteger(w.bytes) || (w.bytes ?? -1) < 0) throw bad(`${w.file}: sha256 or bytes missing`);
  if (w.tensors === null || typeof w.tensors !== 'object') throw bad(`${w.file}: tensors missing`);
  for (const [k, v] of Object.entries(w.tensors)) {
    const ok = Array.isArray(v) && v.length === 2 && v.every((n) => Number.isSafeInteger(n) && n >= 0) && v[0]! + v[1]! <= w.bytes!;
    if (!ok) throw bad(`${w.file}: tensor ${k.slice(0, 12)}… lies outside the file`);
  }
  return w as WeightFileIndex;
}
