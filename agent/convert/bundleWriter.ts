/**
 * Writing a bundle directory, the same way for every architecture: graphs built one at a time
 * (bounded memory) into a sibling temp directory with a progress bar, the tokenizer, and the
 * manifest last; then the temp directory replaces the target. A failure leaves nothing behind.
 */
import { mkdirSync, rmSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { BUNDLE_FORMAT, BUNDLE_VERSION, type GraphEntry, type Manifest, SEDAC_VERSION, replaceDir, writeBundleFile, writeManifest } from '../engine/bundle.js';
import type { GraphBuilder } from './onnx.js';
import { progressBar } from './progress.js';
import { type WeightSink, WeightFileWriter } from '../engine/weightFile.js';

/** The file every graph of a bundle takes its large initializers from. */
export const WEIGHTS_FILE = 'weights.bin';

export interface BundleContent {
  /** graph role → builder, called in order */
  graphs: [role: string, build: () => GraphBuilder][];
  /** the tokenizer file's JSON text */
  tokenizer: string;
  /** the manifest fields that describe the model */
  manifest: Omit<Manifest, 'format' | 'version' | 'tokenizer' | 'graphs' | 'weight_files' | 'sedac_version' | 'created_at'>;
}

/** Write one graph into a bundle directory, its large weights into `weights`; returns its manifest entry. */
export function writeGraph(dir: string, role: string, g: GraphBuilder, weights: WeightSink): GraphEntry {
  const bytes = g.toBytes(undefined, weights);
  return { ...writeBundleFile(dir, `${role}.onnx`, bytes), ...g.signature(), weight_files: [...g.externalFiles].sort() };
}

export function writeBundle(outDir: string, content: BundleContent, opts: { quiet?: boolean; summary?: string } = {}): Manifest {
  const dir = resolve(outDir);
  const tmp = join(dirname(dir), `.${basename(dir)}.tmp-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  const bar = progressBar(`convert ${content.manifest.name}`, content.graphs.length + 1, process.stderr, opts.quiet);
  const weights = new WeightFileWriter(tmp, WEIGHTS_FILE);
  try {
    const graphs: Record<string, GraphEntry> = {};
    for (const [role, build] of content.graphs) {
      const g = build();
      graphs[role] = writeGraph(tmp, role, g, weights);
      bar.tick(role);
    }
    const manifest: Manifest = {
      format: BUNDLE_FORMAT,
      version: BUNDLE_VERSION,
      ...content.manifest,
      tokenizer: writeBundleFile(tmp, 'tokenizer.json', content.tokenizer),
      graphs,
      weight_files: [weights.finish()],
      sedac_version: SEDAC_VERSION,
      created_at: new Date().toISOString(),
    };
    bar.tick('manifest');
    writeManifest(tmp, manifest);
    replaceDir(tmp, dir);
    bar.done(opts.summary);
    return manifest;
  } catch (err) {
    weights.abort();
    rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
}
