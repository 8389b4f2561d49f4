/**
 * The exits bench's measuring pieces: one configuration = a way to generate (full depth, a static
 * truncation, oracle exits, a calibrated level); it is replayed teacher-forced on validation text
 * and timed free-running, interleaved with every other configuration prompt by prompt.
 */
import type { Decoder } from '../agent/engine/decoder.js';
import { type ExitDecision, exitStateFrom, exitStep } from '../agent/engine/exits.js';
import { generateIds } from '../agent/engine/generation.js';
import type { ExitPlan, KvMode, LadderLevel } from '../agent/engine/ladder.js';
import { argmax, makeSampler, prng } from '../agent/engine/sampling.js';
import { median } from './stats.js';

/** A validation text as token ids, and the full model's argmax at every position. */
export interface Seq {
  ids: number[];
  target: Int32Array;
}

export interface Generated {
  tokens: number[];
  /** layers computed for each token (the first comes from the fused prefill: full depth) */
  layers: number[];
  /** wall ms from the first emitted token (end of the prefill) to the end of generation */
  decodeMs: number;
  /** process CPU ms over the same span */
  decodeCpuMs: number;
  /** tokens emitted in that span */
  decodeTokens: number;
}

/** Marks the end of the prefill (the first emitted token) and the end of decoding. */
class DecodeClock {
  private t = 0;
  private cpu: NodeJS.CpuUsage | undefined;
  first = 0;

  /** the first token (or burst of tokens) is out: decoding starts now */
  start(tokens: number): void {
    this.first = tokens;
    this.t = performance.now();
    this.cpu = process.cpuUsage();
  }

  finish(tokens: number[], layers: number[]): Generated {
    if (!this.cpu) return { tokens, layers, decodeMs: 0, decodeCpuMs: 0, decodeTokens: 0 };
    const c = process.cpuUsage(this.cpu);
    return { tokens, layers, decodeMs: performance.now() - this.t, decodeCpuMs: (c.user + c.system) / 1000, decodeTokens: tokens.length - this.first };
  }
}

export interface Replay {
  tokens: number;
  agreement: number;
  meanLayers: number;
  /** hist[e]: tokens that ran e layers, e = 0..L */
  hist: number[];
}

export interface Config {
  name: string;
  kind: 'full' | 'static' | 'oracle' | 'level' | 'plan';
  /** exit points the configuration can stop at */
  exits: number[];
  /** the calibrated levels it serves (kind level) or whose demoted exit plan it runs (kind plan) */
  levels?: string[];
  /** free-running greedy generation; `ref` is the full model's output for the prompt (with EOS) */
  generate(prompt: number[], ref: number[]): Promise<Generated>;
  /** teacher-forced replay over the validation sequences */
  replay(seqs: Seq[]): Promise<Replay>;
}

/** Per-position decision override: undefined keeps the plan's thresholds. */
export type DecideAt = (position: number, target: (p: number) => number | undefined) => ExitDecision | undefined;

/**
 * Teacher forcing through the real exit engine (as holdout.ts's replayLevel): the first token
 * through the fused graph, every later true token through exitStep; agreement with the full
 * model's argmax and the depth of every position.
 */
export async function replayPlan(d: Decoder, plan: ExitPlan, kv: KvMode, seqs: Seq[], decideAt?: DecideAt): Promise<Replay> {
  const { nLayers: L, vocabSize: V } = d.config;
  const hist = new Array<number>(L + 1).fill(0);
  let n = 0;
  let agree = 0;
  for (const { ids, target } of seqs) {
    const run = d.newState();
    const first = await d.forward([ids[0]!], run);
    n++;
    if (argmax(first, 0, V) === target[0]) agree++;
    hist[L]!++;
    const st = exitStateFrom(d, run);
    for (let p = 1; p < ids.length; p++) {
      const step = await exitStep(d, st, ids[p]!, plan, kv, decideAt?.(p, (q) => target[q]));
      n++;
      if (argmax(step.logits, 0, V) === target[p]) agree++;
      hist[step.depth]!++;
    }
  }
  return { tokens: n, agreement: n ? agree / n : 1, meanLayers: meanOf(hist, L), hist };
}

/** Full depth for every position: agreement 1 by definition. */
export function fullReplay(seqs: Seq[], L: number): Replay {
  const n = seqs.reduce((a, s) => a + s.ids.length, 0);
  const hist = new Array<number>(L + 1).fill(0);
  hist[L] = n;
  return { tokens: n, agreement: 1, meanLayers: L, hist };
}

/**
 * Free-running greedy generation with early exits, shaped like the engine's generateIds: fused
 * prefill (its last row gives the first token), then one exitStep per token; stops at EOS, after
 * `max` tokens or at the context. `decideAt(k)` may override the decision for the k-th token.
 */
export async function generateExits(d: Decoder, prompt: number[], plan: ExitPlan, kv: KvMode, max: number, ref: number[], decideAt?: DecideAt): Promise<Generated> {
  const { nLayers: L, vocabSize: V, maxSeqLen } = d.config;
  const run = d.newState();
  let tok = argmax(await d.forward(prompt, run), (prompt.length - 1) * V, V);
  let depth = L;
  const st = exitStateFrom(d, run);
  const clock = new DecodeClock();
  const tokens: number[] = [];
  const layers: number[] = [];
  for (;;) {
    if (tok === d.tokenizer.eos) return clock.finish(tokens, layers);
    tokens.push(tok);
    layers.push(depth);
    if (tokens.length === 1) clock.start(1);
    if (tokens.length >= max || prompt.length + tokens.length >= maxSeqLen) return clock.finish(tokens, layers);
    const step = await exitStep(d, st, tok, plan, kv, decideAt?.(tokens.length, (q) => ref[q]));
    tok = argmax(step.logits, 0, V);
    depth = step.depth;
  }
}

/**
 * The engine's own generation (full depth or a level), greedy, timed from the first emitted token.
 * Tokens emitted in one synchronous burst (a verified speculative round) share a microtask; the
 * first burst — prefill plus, for `exact`, the first draft-and-verify round — is not decode time.
 */
export async function generateLevel(d: Decoder, prompt: number[], level: LadderLevel | undefined, max: number): Promise<Generated> {
  const clock = new DecodeClock();
  let bursts = 0;
  let inBurst = false;
  let first = 0;
  const r = await generateIds(d, prompt, level, makeSampler(0), true, max, () => {
    if (!inBurst) {
      inBurst = true;
      bursts++;
      queueMicrotask(() => {
        inBurst = false;
        if (bursts === 1) clock.start(first);
      });
    }
    if (bursts === 1) first++;
  });
  return clock.finish(r.tokens, r.layers);
}

/** Oracle decision: exit at the first point whose exit head's argmax is the full model's token. */
export const oracleDecide: DecideAt = (p, target) => {
  const want = target(p);
  return (_layers, _score, logits) => want !== undefined && argmax(logits()) === want;
};

/** Static truncation: always exit at the (single) exit point. */
export const alwaysExit: DecideAt = () => () => true;

export function meanOf(hist: number[], L: number): number {
  const n = hist.reduce((a, b) => a + b, 0);
  return n ? hist.reduce((a, c, e) => a + c * e, 0) / n : L;
}

export interface Timing {
  /** median over rounds of decode tokens/s (tokens after the first, over the time after it) */
  tokensPerS: number;
  /** median over rounds of (this rate / the full-depth rate of the same round) */
  speedup: number;
  /** process CPU ms per decoded token, all rounds */
  cpuMsPerToken: number;
  /** outputs of the first timed round, per prompt */
  outs: Generated[];
  perRound: number[];
}

/**
 * Time every configuration on every prompt, `rounds` times. Within a round, each prompt runs through
 * all configurations in a shuffled order, so slow phases of the shared machine hit all of them
 * alike. configs[0] must be full depth; its warm-up outputs are the references the oracle decides
 * against. Only decoding is timed: the prefill and the first token it gives are the same for all.
 */
export async function timeConfigs(d: Decoder, configs: Config[], prompts: number[][], rounds: number, seed = 7): Promise<Timing[]> {
  // every configuration's graphs stay loaded side by side (configurations alternate prompt by
  // prompt; the engine would otherwise release and reload them): a speed bench, not a memory one
  const unpin = d.pin(Object.keys(d.manifest.graphs).filter((r) => r === 'full' || r.startsWith('seg.')));
  try {
    return await timeConfigsPinned(d, configs, prompts, rounds, seed);
  } finally {
    unpin();
  }
}

async function timeConfigsPinned(d: Decoder, configs: Config[], prompts: number[][], rounds: number, seed: number): Promise<Timing[]> {
  const eos = d.tokenizer.eos;
  // warm-up (loads every graph) and the full model's reference outputs, EOS included
  const refs: number[][] = [];
  for (const p of prompts) {
    const r = await configs[0]!.generate(p, []);
    refs.push(r.tokens.length < MAX_GEN && eos !== undefined ? [...r.tokens, eos] : r.tokens);
  }
  for (const c of configs.slice(1)) for (const [i, p] of prompts.entries()) await c.generate(p, refs[i]!);

  const rnd = prng(seed);
  const n = configs.length;
  const ms = Array.from({ length: rounds }, () => new Array<number>(n).fill(0));
  const tokens = Array.from({ length: rounds }, () => new Array<number>(n).fill(0));
  const cpu = new Array<number>(n).fill(0);
  const outs: Generated[][] = configs.map(() => []);
  const order = Array.from({ length: n }, (_, i) => i);
  for (let r = 0; r < rounds; r++) {
    for (const [i, p] of prompts.entries()) {
      for (let j = n - 1; j > 0; j--) {
        const k = Math.floor(rnd() * (j + 1));
        [order[j], order[k]] = [order[k]!, order[j]!];
      }
      for (const ci of order) {
        const g = await configs[ci]!.generate(p, refs[i]!);
        ms[r]![ci]! += g.decodeMs;
        cpu[ci]! += g.decodeCpuMs;
        tokens[r]![ci]! += g.decodeTokens;
        if (r === 0) outs[ci]!.push(g);
      }
    }
  }
  const rate = (r: number, ci: number): number => tokens[r]![ci]! / (Math.max(1e-9, ms[r]![ci]!) / 1000);
  const total = (ci: number): number => tokens.reduce((a, t) => a + t[ci]!, 0);
  return configs.map((_, ci) => {
    const perRound = Array.from({ length: rounds }, (_, r) => rate(r, ci));
    return {
      tokensPerS: median(perRound),
      speedup: median(perRound.map((x, r) => x / rate(r, 0))),
      cpuMsPerToken: cpu[ci]! / Math.max(1, total(ci)),
      outs: outs[ci]!,
      perRound,
    };
  });
}

/** Tokens generated per prompt in the free-running runs (the "first 32"). */
export const MAX_GEN = 32;
