/** `sedac convert <source> <bundle-dir>`: GGUF / llama2.c / Hugging Face → bundle. */
import { convertModel } from '../convert/cache.js';
import { readManifest } from '../engine/bundle.js';
import { SedacError } from '../errors.js';
import { parse } from './args.js';

const USAGE = `usage: sedac convert <source> <bundle-dir> [--quiet] [--json]
  <source>  a GGUF file (llama; F32/F16/Q8_0/Q4_0), a llama2.c checkpoint (tokenizer.bin beside it),
            or a Hugging Face folder (LlamaForCausalLM or a BERT classifier)`;

export async function main(argv: string[]): Promise<number> {
  const args = parse(argv, { quiet: { type: 'boolean' }, json: { type: 'boolean' } }, USAGE, [2, 2]);
  if (!args) return 0;
  const { values, positionals } = args;
  const [source, out] = positionals;
  if (!source || !out) throw new SedacError('E_USAGE', USAGE);
  await convertModel(source, out, { quiet: values.quiet || values.json });
  const m = readManifest(out, false);
  const summary = { bundle: out, name: m.name, task: m.task, architecture: m.architecture, weights: m.weights, graphs: Object.keys(m.graphs).length, source_sha256: m.source.sha256 };
  console.log(values.json ? JSON.stringify(summary) : `wrote ${out}: ${m.architecture} ${m.task}, weights ${m.weights}, ${summary.graphs} graphs`);
  return 0;
}
