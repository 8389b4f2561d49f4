/**
 * LlamaSource → bundle directory: manifest.json, tokenizer.json, embed / layer.N / head graphs for
 * the early-exit path, and `full` (all layers fused) for the fastest full-depth path.
 */
import { resolve } from 'node:path';
import type { Manifest } from '../engine/bundle.js';
import { writeBundle } from './bundleWriter.js';
import { tokenizerToJson } from '../engine/tokenizer/index.js';
import { embedGraph, fullGraph, headGraph, layerGraph, paddedHeadDim } from './llamaGraphs.js';
import type { GraphBuilder } from './onnx.js';
import type { LlamaSource, SourceTensor } from './source.js';

export interface ConvertOptions {
  /** where the source came from (recorded in the manifest) */
  sourcePath: string;
  /** suppress the progress bar */
  quiet?: boolean;
}

/** The weight storage of a source: the dtype of its matrices (f32, f16, q8_0, q4_0, q8_g). */
function weightStorage(src: LlamaSource): string {
  const kinds = new Set<string>();
  const add = (t: SourceTensor) => kinds.add(t.dtype);
  for (const l of src.tensors.layers) [l.wq, l.wk, l.wv, l.wo, l.wGate, l.wUp, l.wDown].forEach(add);
  return [...kinds].sort().join('+');
}

export function writeLlamaBundle(src: LlamaSource, outDir: string, opts: ConvertOptions): Manifest {
  const c = src.config;
  const weights = weightStorage(src);
  return writeBundle(
    outDir,
    {
      graphs: [
        ['embed', () => embedGraph(src)],
        ...Array.from({ length: c.nLayers }, (_, l): [string, () => GraphBuilder] => [`layer.${l}`, () => layerGraph(src, l)]),
        ['head', () => headGraph(src)],
        ['full', () => fullGraph(src)],
      ],
      tokenizer: JSON.stringify(tokenizerToJson(src.tokenizer)),
      manifest: {
        task: 'generate',
        architecture: 'llama',
        name: src.name,
        source: { format: src.format, path: resolve(opts.sourcePath), sha256: src.sha256 },
        config: { ...c, kvHeadDim: paddedHeadDim(c) },
        weights,
      },
    },
    { quiet: opts.quiet, summary: `${c.nLayers} layers, weights ${weights}` },
  );
}
