/**
 * Teacher-forced calibration data for a decoder: the residual stream after every layer for every
 * token of the calibration texts (on disk, read back a layer at a time), and the full model's argmax at each position (the answer an exit
 * must agree with). Texts are kept whole so splits never cut a text in two.
 */
import { closeSync, mkdtempSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Decoder } from '../engine/decoder.js';
import { argmax } from '../engine/sampling.js';
import { SedacError } from '../errors.js';

export interface DecoderCalibrationData {
  dim: number;
  nLayers: number;
  /** number of token positions */
  n: number;
  /** (n, dim) residual stream after layer l, read from disk (layer nLayers-1 is the final state) */
  layer(l: number): Float32Array;
  /** (n) the full model's argmax at each position */
  target: Int32Array;
  /** (n) index of the text each position belongs to */
  textOf: Int32Array;
  texts: number;
  /** delete the temporary files the layers are kept in */
  dispose(): void;
}

export interface CollectOptions {
  /** stop after this many positions; default 40,000 */
  maxTokens?: number;
  onText?: (done: number, total: number) => void;
}

/**
 * Every layer's states of every position are n · L · dim floats — 1.3 GB for a d = 1024, 8-layer
 * model at 40,000 positions — so they go to one temporary file per layer as they are computed, and
 * calibration reads back one layer at a time: its memory is a layer, not the model's whole history.
 */
class LayerFiles {
  private readonly dir = mkdtempSync(join(tmpdir(), 'sedac-calib-'));
  private readonly fds: number[];
  private rows = 0;

  constructor(
    private readonly nLayers: number,
    private readonly dim: number,
  ) {
    this.fds = Array.from({ length: nLayers }, (_, l) => openSync(join(this.dir, `layer${l}.f32`), 'w+'));
  }

  /** Append rows (k, dim) of layer l at row `at`. */
  write(l: number, at: number, h: Float32Array): void {
    const b = new Uint8Array(h.buffer, h.byteOffset, h.byteLength);
    let done = 0;
    while (done < b.byteLength) done += writeSync(this.fds[l]!, b, done, b.byteLength - done, at * this.dim * 4 + done);
    this.rows = Math.max(this.rows, at + h.length / this.dim);
  }

  read(l: number, n: number): Float32Array {
    const out = new Float32Array(n * this.dim);
    const b = new Uint8Array(out.buffer);
    let got = 0;
    while (got < b.byteLength) {
      const k = readSync(this.fds[l]!, b, got, b.byteLength - got, got);
      if (k === 0) throw new SedacError('E_INTERNAL', `calibration layer file ${l} is short`);
      got += k;
    }
    return out;
  }

  dispose(): void {
    for (const fd of this.fds) closeSync(fd);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Run every text through the per-layer graphs at full depth and keep what calibration needs. */
export async function collectDecoderData(d: Decoder, texts: string[], opts: CollectOptions = {}): Promise<DecoderCalibrationData> {
  const { dim, nLayers, vocabSize: V, maxSeqLen } = d.config;
  const cap = opts.maxTokens ?? 40_000;
  const files = new LayerFiles(nLayers, dim);
  const target = new Int32Array(cap);
  const textOf = new Int32Array(cap);
  let n = 0;
  let used = 0;
  try {
    for (let t = 0; t < texts.length && n < cap; t++) {
      const ids = d.encodePromptTruncated(texts[t]!, Math.min(maxSeqLen, cap - n));
      if (ids.length < 2) continue;
      const base = n;
      const logits = await d.forwardLayered(ids, d.newState(), undefined, (l, h) => files.write(l, base, h));
      for (let p = 0; p < ids.length; p++) {
        target[base + p] = argmax(logits, p * V, V);
        textOf[base + p] = used;
      }
      n += ids.length;
      used++;
      opts.onText?.(t + 1, texts.length);
    }
    if (n === 0) throw new SedacError('E_INPUT', 'the calibration data has no usable text');
  } catch (err) {
    files.dispose();
    throw err;
  }
  // the per-layer graphs are not needed again: their memory goes back before the next step
  d.trim();
  return {
    dim,
    nLayers,
    n,
    layer: (l) => files.read(l, n),
    target: target.subarray(0, n),
    textOf: textOf.subarray(0, n),
    texts: used,
    dispose: () => files.dispose(),
  };
}
