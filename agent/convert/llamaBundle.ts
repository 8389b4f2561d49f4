/**
 * LlamaSource → bundle directory: manifest.json, tokenizer.json, embed / layer.N / head graphs for
 * the early-exit path, and `full` (all layers fused) for the fastest full-depth path.
 */
import { mkdirSync, rmSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { SEDAC_VERSION, BUNDLE_FORMAT, BUNDLE_VERSION, type GraphEntry, type Manifest, replaceDir, writeBundleFile, writeManifest } from '../engine/bundle.js';
import { tokenizerToJson } from '../engine/tokenizer/index.js';
import { embedGraph, fullGraph, headGraph, layerGraph, paddedHeadDim } from './llamaGraphs.js';
import type { GraphBuilder } from './onnx.js';
import { progressBar } from './progress.js';
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
  const dir = resolve(outDir);
  const tmp = join(dirname(dir), `.${basename(dir)}.tmp-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  const c = src.config;
  const graphs: Record<string, GraphEntry> = {};
  const bar = progressBar(`convert ${src.name}`, c.nLayers + 3, process.stderr, opts.quiet);
  const emit = (role: string, g: GraphBuilder): void => {
    const file = `${role}.onnx`;
    const entry = writeBundleFile(tmp, file, g.toBytes());
    graphs[role] = { ...entry, ...g.signature() };
    bar.tick(role);
  };
  try {
    emit('embed', embedGraph(src));
    for (let l = 0; l < c.nLayers; l++) emit(`layer.${l}`, layerGraph(src, l));
    emit('head', headGraph(src));
    emit('full', fullGraph(src));
    const tokenizer = writeBundleFile(tmp, 'tokenizer.json', JSON.stringify(tokenizerToJson(src.tokenizer)));
    const manifest: Manifest = {
      format: BUNDLE_FORMAT,
      version: BUNDLE_VERSION,
      task: 'generate',
      architecture: 'llama',
      name: src.name,
      source: { format: src.format, path: resolve(opts.sourcePath), sha256: src.sha256 },
      config: { ...c, kvHeadDim: paddedHeadDim(c) },
      weights: weightStorage(src),
      tokenizer,
      graphs,
      sedac_version: SEDAC_VERSION,
      created_at: new Date().toISOString(),
    };
    writeManifest(tmp, manifest);
    replaceDir(tmp, dir);
    bar.done(`${c.nLayers} layers, weights ${manifest.weights}`);
    return manifest;
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
}
