#!/usr/bin/env node
/**
 * The `sedac` command. Each subcommand lives in agent/commands/<name>.ts and exports
 * `main(argv: string[]): Promise<number>`. This is the only place errors become exit codes.
 */
import { SedacError, asSedacError } from './errors.js';

type Command = { summary: string; load: () => Promise<{ main(argv: string[]): Promise<number> }> };

const COMMANDS: Record<string, Command> = {
  convert: { summary: 'convert a GGUF / llama2.c / Hugging Face model into a bundle', load: () => import('./commands/convert.js') },
  generate: { summary: 'generate text from a prompt', load: () => import('./commands/generate.js') },
  calibrate: { summary: 'fit exit heads and the ladder of operating levels on calibration text', load: () => import('./commands/calibrate.js') },
  eval: { summary: 'measure a level: agreement with full depth, mean layers, speed against full depth', load: () => import('./commands/eval.js') },
  classify: { summary: 'classify a text or a JSONL file with a BERT-family classifier (early exit by level)', load: () => import('./commands/classify.js') },
  run: { summary: 'run the agent daemon (MQTT; embedded broker if enabled)', load: () => import('./commands/run.js') },
  request: { summary: 'send one request to an agent over MQTT and print the response', load: () => import('./commands/request.js') },
  sensors: { summary: 'show what the agent reads on this machine (temperature, throttling, power) and where from', load: () => import('./commands/sensors.js') },
};

function usage(): string {
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(10)} ${c.summary}`);
  return `usage: sedac <command> [options]\n\ncommands:\n${lines.join('\n')}\n\nRun \`sedac <command> --help\` for a command's options.`;
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h') {
    console.log(usage());
    return name ? 0 : 2;
  }
  const cmd = COMMANDS[name];
  if (!cmd) {
    console.error(`sedac: unknown command '${name}'\n${usage()}`);
    return 2;
  }
  const mod = await cmd.load();
  return mod.main(rest);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    const e = asSedacError(err);
    if (process.argv.includes('--json')) console.log(JSON.stringify({ error: e.toJSON() }));
    else console.error(`sedac: ${e.code}: ${e.message}`);
    if (!(err instanceof SedacError) && process.env.SEDAC_DEBUG) console.error(err);
    process.exitCode = e.code === 'E_USAGE' ? 2 : 1;
  },
);
