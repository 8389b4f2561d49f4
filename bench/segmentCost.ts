/**
 * What a segment boundary really costs, measured through the engine's own calls in one process:
 * caption-lm-8L-ee converted into a temp dir, decode steps (one token after a short prefill) timed
 * per configuration, configurations interleaved in a shuffled order each round, medians reported.
 *
 * - `fused`: the full-depth graph, one call per token;
 * - `seg[a,b)`: one exit segment alone (a static truncation when a = 0), for a = 0 at every depth;
 * - `chain [0,3)+[3,6)+[6,8)`: every token runs all three segments of a never-exiting [3, 6] plan;
 * - the chain's cost minus the fused graph's = what two extra boundaries cost, in µs and in layers
 *   (layer = the fused graph's per-layer slope from seg[0,1) to seg[0,7)).
 * The calibration cost model's own numbers (`measureCosts`) are printed beside it: its "call" is a
 * graph without kernels, which is why its predictions run ahead of the measured speed.
 *
 * Run: `npm run build && node dist/bench/segmentCost.js [--signal margin|entropy] [--rounds 9]`
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { measureCosts } from '../agent/calibrate/costs.js';
import { addSegmentsToBundle } from '../agent/calibrate/segments.js';
import { convertModel } from '../agent/convert/cache.js';
import { loadSource } from '../agent/convert/detect.js';
import type { Decoder } from '../agent/engine/decoder.js';
import { exitStateFrom, exitStep } from '../agent/engine/exits.js';
import { loadModel } from '../agent/engine/index.js';
import { type ExitPlan, type ExitSignal, segmentsFor } from '../agent/engine/ladder.js';
import { sharedPath } from '../test/helpers/shared.js';
import { markdownTable, median, round } from './stats.js';

const GGUF = 'models/caption-lm-8L-ee/caption-lm-8L-ee.gguf';
const STEPS = 40;

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { signal: { type: 'string', default: 'margin' }, rounds: { type: 'string', default: '9' } } });
  const signal = values.signal as ExitSignal;
  const rounds = Number(values.rounds);
  const root = mkdtempSync(join(tmpdir(), 'sedac-segcost-'));
  try {
    const dir = join(root, 'b');
    await convertModel(sharedPath(GGUF), dir, { quiet: true });
    await addSegmentsToBundle(dir, [[1], [2], [3], [4], [5], [6], [7], [3, 6]], 'recompute', signal);
    const d = (await loadModel({ name: 'segcost', source: dir, quiet: true })) as Decoder;
    try {
      const L = d.config.nLayers;
      const capped = (e: number): ExitPlan => ({ exits: [e], thresholds: [1], cap: e, segments: segmentsFor([e], L, 'recompute', e, signal) });
      const chain: ExitPlan = { exits: [3, 6], thresholds: [-1, -1], segments: segmentsFor([3, 6], L, 'recompute', undefined, signal) };
      const configs: [string, ExitPlan | undefined][] = [['fused', undefined], ...Array.from({ length: L - 1 }, (_, i) => [`seg[0,${i + 1})`, capped(i + 1)] as [string, ExitPlan]), ['chain [0,3)+[3,6)+[6,8)', chain]];
      const times = new Map<string, number[]>(configs.map(([name]) => [name, []]));
      for (let r = 0; r < rounds; r++) {
        for (const [name, plan] of [...configs].sort(() => Math.random() - 0.5)) {
          const run = d.newState();
          await d.forward([1, 259, 293], run);
          const st = exitStateFrom(d, run);
          const t0 = performance.now();
          for (let i = 0; i < STEPS; i++) {
            if (plan) await exitStep(d, st, 300, plan, 'recompute');
            else await d.forward([300], run);
          }
          times.get(name)!.push(((performance.now() - t0) / STEPS) * 1000);
        }
      }
      const us = (name: string) => median(times.get(name)!);
      const layer = (us(`seg[0,${L - 1})`) - us('seg[0,1)')) / (L - 2);
      const rows = configs.map(([name]) => ({ config: name, us_per_token: round(us(name), 1), vs_fused: round(us(name) / us('fused'), 3) }));
      const extra = us('chain [0,3)+[3,6)+[6,8)') - us('fused');
      const costs = await measureCosts(d, await loadSource(sharedPath(GGUF)), signal);
      console.log(`caption-lm-8L-ee, exit score ${signal}, ${rounds} rounds × ${STEPS} decode steps per configuration, medians (µs per token)\n`);
      console.log(markdownTable(rows));
      console.log(`\nlayer slope seg[0,1)→seg[0,${L - 1}): ${round(layer, 1)} µs; two extra segment boundaries (chain − fused): ${round(extra, 1)} µs = ${round(extra / 2, 1)} µs (${round(extra / 2 / layer, 2)} layers) each`);
      console.log(`calibration cost model (measureCosts): call ${costs.call_us} µs, layer ${costs.layer_us} µs, exit head ${costs.head_us} µs`);
    } finally {
      await d.dispose();
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
