/**
 * Timing a level against the fused full-depth graph in the same process, the one way calibration
 * and `sedac eval` both measure speed: free-running greedy generation over prompts, level and full
 * depth interleaved prompt by prompt, only decoding timed (from the first emitted token on: the
 * prompt's prefill runs all layers at every uncapped level and would only dilute the ratio).
 */
import type { Decoder } from '../engine/decoder.js';
import { generateIds, levelRoles } from '../engine/generation.js';
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
  const run: GenerationRun = { outs: [], layers: 0, decodeMs: 0, decodeSteps: 0 };
  for (const p of prompts) await generateInto(run, d, level, p, maxTokens);
  return run;
}

/** One prompt at a level, added to `run`. */
async function generateInto(run: GenerationRun, d: Decoder, level: LadderLevel | undefined, prompt: number[], maxTokens: number): Promise<void> {
  let t0: number | undefined;
  const r = await generateIds(d, prompt, level, makeSampler(0), true, maxTokens, () => {
    t0 ??= performance.now();
  });
  if (t0 !== undefined) {
    run.decodeMs += performance.now() - t0;
    run.decodeSteps += r.tokens.length - 1 + (r.stop === 'eos' ? 1 : 0);
  }
  run.outs.push(r.tokens);
  run.layers += r.layers.reduce((a, b) => a + b, 0);
}

/** ms per decode step of a run. */
export function msPerStep(r: GenerationRun): number {
  return r.decodeMs / Math.max(1, r.decodeSteps);
}

/**
 * Full depth and the level, one pass each to warm up, then `rounds` rounds in which every prompt
 * runs at full depth and at the level back to back (which one first alternates), so a slow spell of
 * this shared machine hits both sides alike. That needs both sets of graphs loaded (two copies of
 * the weights, for the length of the measurement); where they do not fit the decoder's memory limit
 * (DecoderOptions.memoryMb) the sides alternate pass by pass instead, and each pass loads its own.
 */
export async function interleavedRuns(d: Decoder, level: LadderLevel | undefined, prompts: number[][], rounds: number, maxTokens: number): Promise<{ full: GenerationRun; level: GenerationRun }[]> {
  const roles = [...levelRoles(d, level, true), 'full'];
  if (!d.fitsTogether(roles)) {
    const pairs: { full: GenerationRun; level: GenerationRun }[] = [];
    await generationRun(d, level, prompts.slice(0, 2), maxTokens);
    for (let r = 0; r < rounds; r++) {
      const full = await generationRun(d, undefined, prompts, maxTokens);
      pairs.push({ full, level: await generationRun(d, level, prompts, maxTokens) });
    }
    return pairs;
  }
  const unpin = d.pin(roles);
  try {
    await generationRun(d, undefined, prompts, maxTokens);
    await generationRun(d, level, prompts, maxTokens);
    const pairs: { full: GenerationRun; level: GenerationRun }[] = [];
    for (let r = 0; r < rounds; r++) {
      const full: GenerationRun = { outs: [], layers: 0, decodeMs: 0, decodeSteps: 0 };
      const lvl: GenerationRun = { outs: [], layers: 0, decodeMs: 0, decodeSteps: 0 };
      for (const [i, p] of prompts.entries()) {
        const sides: [GenerationRun, LadderLevel | undefined][] = [[full, undefined], [lvl, level]];
        if ((i + r) % 2) sides.reverse();
        for (const [into, at] of sides) await generateInto(into, d, at, p, maxTokens);
      }
      pairs.push({ full, level: lvl });
    }
    return pairs;
  } finally {
    unpin();
  }
}
