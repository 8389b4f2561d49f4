/**
 * `npm run bench -- <suite...>`: runs the named suites (default: generate), prints a readable table
 * and writes JSON + Markdown under bench/results/. Suites: generate, exits, classify, agent, policy, signals, memory.
 * Numbers are medians of several runs measured side by side in one run (the machine is shared).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cpus } from 'node:os';

type Suite = () => Promise<{ rows: Record<string, unknown>[]; table: string; extra?: Record<string, string> }>;

const SUITES: Record<string, () => Promise<Suite>> = {
  generate: async () => (await import('./generate.js')).benchGenerate,
  classify: async () => (await import('./classify.js')).benchClassify,
  agent: async () => (await import('./agent.js')).benchAgent,
  exits: async () => (await import('./exits.js')).benchExits,
  policy: async () => (await import('./policy.js')).benchPolicy,
  signals: async () => (await import('./signals.js')).benchSignals,
  memory: async () => (await import('./memory.js')).benchMemory,
};

async function main(): Promise<void> {
  const names = process.argv.slice(2).filter((a) => !a.startsWith('-'));
  const chosen = names.length ? names : ['generate'];
  const outDir = join(process.cwd(), 'bench', 'results');
  mkdirSync(outDir, { recursive: true });
  for (const name of chosen) {
    const load = SUITES[name];
    if (!load) {
      console.error(`unknown bench suite '${name}'; known: ${Object.keys(SUITES).join(', ')}`);
      process.exitCode = 2;
      return;
    }
    const run = await load();
    const started = new Date().toISOString();
    const res = await run();
    const meta = { suite: name, started, node: process.version, cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length };
    writeFileSync(join(outDir, `${name}.json`), JSON.stringify({ ...meta, rows: res.rows }, null, 2) + '\n');
    writeFileSync(join(outDir, `${name}.md`), `# bench: ${name}\n\n${started}, ${meta.cpu}, ${meta.cores} cores, Node ${meta.node}\n\n${res.table}`);
    for (const [file, content] of Object.entries(res.extra ?? {})) writeFileSync(join(outDir, file), content);
    console.log(`\n## ${name}\n\n${res.table}\n(JSON: bench/results/${name}.json)`);
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
