/**
 * Teacher-forced calibration data for a decoder: the residual stream after every layer for every
 * token of the calibration texts, and the full model's argmax at each position (the answer an exit
 * must agree with). Texts are kept whole so splits never cut a text in two.
 */
import type { Decoder } from '../engine/decoder.js';
import { argmax } from '../engine/sampling.js';
import { SedacError } from '../errors.js';

export interface DecoderCalibrationData {
  dim: number;
  nLayers: number;
  /** number of token positions */
  n: number;
  /** hidden[l]: (n, dim) residual stream after layer l; hidden[nLayers-1] is the final state */
  hidden: Float32Array[];
  /** (n) the full model's argmax at each position */
  target: Int32Array;
  /** (n) index of the text each position belongs to */
  textOf: Int32Array;
  texts: number;
}

export interface CollectOptions {
  /** stop after this many positions; default 40,000 */
  maxTokens?: number;
  onText?: (done: number, total: number) => void;
}

/** Run every text through the per-layer graphs at full depth and keep what calibration needs. */
export async function collectDecoderData(d: Decoder, texts: string[], opts: CollectOptions = {}): Promise<DecoderCalibrationData> {
  const { dim, nLayers, vocabSize: V, maxSeqLen } = d.config;
  const cap = opts.maxTokens ?? 40_000;
  const hidden = Array.from({ length: nLayers }, () => new Float32Array(cap * dim));
  const target = new Int32Array(cap);
  const textOf = new Int32Array(cap);
  let n = 0;
  let used = 0;
  for (let t = 0; t < texts.length && n < cap; t++) {
    const ids = d.encodePromptTruncated(texts[t]!, Math.min(maxSeqLen, cap - n));
    if (ids.length < 2) continue;
    const base = n;
    const logits = await d.forwardLayered(ids, d.newState(), undefined, (l, h) => hidden[l]!.set(h, base * dim));
    for (let p = 0; p < ids.length; p++) {
      target[base + p] = argmax(logits, p * V, V);
      textOf[base + p] = used;
    }
    n += ids.length;
    used++;
    opts.onText?.(t + 1, texts.length);
  }
  if (n === 0) throw new SedacError('E_INPUT', 'the calibration data has no usable text');
  return { dim, nLayers, n, hidden: hidden.map((h) => h.subarray(0, n * dim)), target: target.subarray(0, n), textOf: textOf.subarray(0, n), texts: used };
}
