/**
 * Timing a level against the fused full-depth graph in the same process, the one way calibration
 * and `sedac eval` both measure speed: free-running greedy generation over prompts, level and full
 * depth interleaved round by round, only decoding timed (from the first emitted token on — the
 * prompt's prefill is the same fused call at every level and would only dilute the ratio).
 */
import type { Decoder } from '../engine/decoder.js';
import { generateIds } from '../engine/generation.js';
import type { LadderLevel } from '../engine/ladder.js';
import { makeSampler } from '../engine/sampling.js';

export interface GenerationRun {
  /** generated tokens per prompt (EOS excluded) */
  outs: number[][];
  /** layers computed for the generated tokens, summed */
  layers: number;
  /** wall ms of the decode steps (after each prompt's first token) */
  decodeMs: number;
  /** decode steps timed: tokens after the first, plus the step that produced EOS */
  decodeSteps: number;
}

/** One pass over the prompts at a level (undefined = fused full depth). */
export async function generationRun(d: Decoder, level: LadderLevel | undefined, prompts: number[][], maxTokens: number): Promise<GenerationRun> {
  const greedy = makeSampler(0);
  const run: GenerationRun = { outs: [], layers: 0, decodeMs: 0, decodeSteps: 0 };
  for (const p of prompts) {
    let t0: number | undefined;
    const r = await generateIds(d, p, level, greedy, true, maxTokens, () => {
      t0 ??= performance.now();
    });
    if (t0 !== undefined) {
      run.decodeMs += performance.now() - t0;
      run.decodeSteps += r.tokens.length - 1 + (r.stop === 'eos' ? 1 : 0);
    }
    run.outs.push(r.tokens);
    run.layers += r.layers.reduce((a, b) => a + b, 0);
  }
  return run;
}

/** ms per decode step of a run. */
export function msPerStep(r: GenerationRun): number {
  return r.decodeMs / Math.max(1, r.decodeSteps);
}

/**
 * Full depth and the level, one pass each to warm up (load and prime every graph), then `rounds`
 * interleaved pairs.
 */
export async function interleavedRuns(d: Decoder, level: LadderLevel | undefined, prompts: number[][], rounds: number, maxTokens: number): Promise<{ full: GenerationRun; level: GenerationRun }[]> {
  await generationRun(d, undefined, prompts, maxTokens);
  await generationRun(d, level, prompts, maxTokens);
  const pairs: { full: GenerationRun; level: GenerationRun }[] = [];
  for (let r = 0; r < rounds; r++) {
    const full = await generationRun(d, undefined, prompts, maxTokens);
    pairs.push({ full, level: await generationRun(d, level, prompts, maxTokens) });
  }
  return pairs;
}
