/** `sedac generate <model> --prompt TEXT ...`: text generation from the command line. */
import { loadModel } from '../engine/index.js';
import { SedacError } from '../errors.js';
import { intOpt, numOpt, parse } from './args.js';

const USAGE = `usage: sedac generate <model> --prompt TEXT [--max-tokens N] [--temperature T --top-p P --seed S]
                      [--level L] [--threads N] [--cache-dir DIR] [--json]
  <model>  a bundle directory or any convertible source (converted once into the cache)`;

export async function main(argv: string[]): Promise<number> {
  const args = parse(
    argv,
    {
      prompt: { type: 'string', short: 'p' },
      'max-tokens': { type: 'string', short: 'n' },
      temperature: { type: 'string' },
      'top-p': { type: 'string' },
      seed: { type: 'string' },
      level: { type: 'string' },
      threads: { type: 'string' },
      'cache-dir': { type: 'string' },
      json: { type: 'boolean' },
    },
    USAGE,
    [1, 1],
  );
  if (!args) return 0;
  const { values, positionals } = args;
  const [source] = positionals;
  if (!source || values.prompt === undefined) throw new SedacError('E_USAGE', USAGE);
  const genOpts = {
    maxTokens: intOpt(values['max-tokens'], 'max-tokens', 64, 1),
    temperature: numOpt(values.temperature, 'temperature', 0, 0, 10),
    topP: numOpt(values['top-p'], 'top-p', 1, 0, 1),
    seed: intOpt(values.seed, 'seed', 0),
    level: values.level,
  };
  const model = await loadModel({ name: source, source, threads: intOpt(values.threads, 'threads', 1, 1), cacheDir: values['cache-dir'], quiet: values.json });
  try {
    if (!model.generate) throw new SedacError('E_USAGE', `${source} is a ${model.task} model; use \`sedac classify\``);
    const r = await model.generate(values.prompt, genOpts);
    if (values.json) {
      console.log(
        JSON.stringify({
          text: r.text,
          tokens: r.tokens,
          prompt_tokens: r.promptTokens,
          ms: round(r.ms),
          tokens_per_s: round(r.tokensPerS),
          layers: r.layers,
          mean_layers: round(r.meanLayers),
          level: r.level,
          stop: r.stop,
        }),
      );
    } else {
      console.log(values.prompt + r.text);
      console.error(`[${r.tokens.length} tokens, ${round(r.tokensPerS)} tok/s, level ${r.level}, mean layers ${round(r.meanLayers)}, stop: ${r.stop}]`);
    }
  } finally {
    await model.dispose();
  }
  return 0;
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}
