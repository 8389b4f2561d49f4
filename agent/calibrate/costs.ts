/**
 * The cost model behind a level's exit points, measured on this machine at calibration time:
 * per session call, per layer inside a fused graph, and per exit head (norm + LM head + entropy).
 * Three timings, interleaved, medians: the fused full graph (call + L·layer + head), one layer
 * graph (call + layer) and a one-layer segment with an exit head (call + layer + head).
 */
import { IO, segmentGraph } from '../convert/llamaGraphs.js';
import type { LlamaSource } from '../convert/source.js';
import type { Decoder, RunState } from '../engine/decoder.js';
import type { CostModel } from '../engine/ladder.js';
import { type Feeds, Session, f32 } from '../engine/ort.js';

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1]!;
}

async function timeIt(fn: () => Promise<unknown>, reps: number): Promise<number> {
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) await fn();
  return ((performance.now() - t0) / reps) * 1000;
}

export async function measureCosts(d: Decoder, src: LlamaSource, rounds = 7, reps = 40): Promise<CostModel> {
  const { nLayers: L, dim, maxSeqLen } = d.config;
  const tok = d.tokenizer.bos ?? 1;
  const run = d.newState();
  await d.forward(Array.from({ length: Math.min(16, maxSeqLen - 2) }, () => tok), run);
  const clone = (): RunState => d.newState(run);
  const layer0 = (await d.ensureLayered()).layers[0]!;
  const seg = await Session.load(segmentGraph(src, 0, 1, { kind: 'exit', name: 'probe' }).toBytes(), 'cost probe');
  const past: Feeds = run.kv.feeds(0, 1, {});
  const hidden = f32(new Float32Array(dim).fill(0.1), [1, 1, dim]);
  const full: number[] = [];
  const one: number[] = [];
  const exit: number[] = [];
  try {
    for (let r = 0; r < rounds; r++) {
      full.push(await timeIt(() => d.forward([tok], clone()), reps));
      one.push(await timeIt(() => layer0.run({ [IO.hidden]: hidden, ...d.stepFeeds(run.pos, 1), ...past }), reps));
      exit.push(await timeIt(() => seg.run({ [IO.inputIds]: d.idsTensor([tok]), ...d.stepFeeds(run.pos, 1), ...past }), reps));
    }
  } finally {
    await seg.release();
  }
  const tFull = median(full);
  const tOne = median(one);
  const head = Math.max(1, median(exit) - tOne);
  const layer = Math.max(1, (tFull - head - tOne) / Math.max(1, L - 1));
  const call = Math.max(1, tOne - layer);
  const round = (x: number) => Math.round(x * 10) / 10;
  return { call_us: round(call), layer_us: round(layer), head_us: round(head) };
}
