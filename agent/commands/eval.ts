/** `sedac eval <bundle> --data FILE [--level L] [--json]`: measure a level against full depth. */
import { evaluateLevel } from '../calibrate/evaluate.js';
import { readTexts } from '../calibrate/decoderCalibrate.js';
import type { Decoder } from '../engine/decoder.js';
import { loadModel } from '../engine/index.js';
import { SedacError } from '../errors.js';
import { intOpt, parse } from './args.js';

const USAGE = `usage: sedac eval <model> --data FILE [--level L] [--texts N] [--prompts N] [--rounds N] [--threads N] [--json]
  Teacher-forced agreement with full depth on the texts, and free-running speed (first 32 tokens of
  prompts taken from the texts) against the fused full-depth path, interleaved in one process.`;

export async function main(argv: string[]): Promise<number> {
  const args = parse(
    argv,
    { data: { type: 'string' }, level: { type: 'string' }, texts: { type: 'string' }, prompts: { type: 'string' }, rounds: { type: 'string' }, threads: { type: 'string' }, json: { type: 'boolean' } },
    USAGE,
    [1, 1],
  );
  if (!args) return 0;
  const { values, positionals } = args;
  const [source] = positionals;
  if (!source || !values.data) throw new SedacError('E_USAGE', USAGE);
  const opts = { maxTexts: intOpt(values.texts, 'texts', 300, 1), prompts: intOpt(values.prompts, 'prompts', 40, 1), rounds: intOpt(values.rounds, 'rounds', 5, 1) };
  const texts = readTexts(values.data);
  const d = (await loadModel({ name: source, source, threads: intOpt(values.threads, 'threads', 1, 1), quiet: values.json })) as Decoder;
  try {
    if (d.task !== 'generate') throw new SedacError('E_USAGE', `${source} is a ${d.task} model; use \`sedac classify --input\``);
    const names = values.level ? [values.level] : d.levels.length ? d.levels : ['full'];
    for (const name of names) {
      const r = await evaluateLevel(d, name, texts, opts);
      if (values.json) console.log(JSON.stringify(r));
      else
        console.log(
          `${r.level.padEnd(9)} agreement ${(r.agreement * 100).toFixed(2)} %  mean layers ${r.mean_layers.toFixed(2)}  ${r.tokens_per_s} tok/s vs full ${r.full_tokens_per_s} (×${r.speedup})  first-32 exact ${(r.first32_exact_match * 100).toFixed(0)} %`,
        );
    }
  } finally {
    await d.dispose();
  }
  return 0;
}
