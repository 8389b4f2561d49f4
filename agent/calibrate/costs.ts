/**
 * The cost model behind a level's exit points, measured on this machine at calibration time:
 * per session call, per layer inside a fused graph, and per exit head (norm + LM head + its score).
 * Four timings, interleaved, the fastest of several rounds: a one-layer segment with an exit head
 * (call + layer + head), the same without the head (call + layer), a graph that only takes the same
 * per-step inputs and returns one of them (the call itself: binding, feeds, dispatch floor), and the
 * fused full-depth graph (call + L·layer + head, with the whole model's cache footprint). Then the
 * fused graph on 1…maxBatch tokens at once: what a speculative verification of that many costs.
 */
import { IO, segmentGraph } from '../convert/llamaGraphs.js';
import type { LlamaSource } from '../convert/source.js';
import type { Decoder } from '../engine/decoder.js';
import type { CostModel, ExitSignal } from '../engine/ladder.js';
import { type Feeds, Session } from '../engine/ort.js';
import { DType, GraphBuilder } from '../convert/onnx.js';

/** The fastest round: on a shared machine, slower rounds measure other processes, not the graph. */
function best(xs: number[]): number {
  return Math.min(...xs);
}

async function timeIt(fn: () => Promise<unknown>, reps: number): Promise<number> {
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) await fn();
  return ((performance.now() - t0) / reps) * 1000;
}

export async function measureCosts(d: Decoder, src: LlamaSource, signal: ExitSignal = 'entropy', rounds = 9, reps = 40, maxBatch = 9): Promise<CostModel> {
  const { nLayers: L, maxSeqLen } = d.config;
  const tok = d.tokenizer.bos ?? 1;
  const run = d.newState();
  await d.forward(Array.from({ length: Math.min(16, maxSeqLen - 2) }, () => tok), run);
  const nop = new GraphBuilder('call floor');
  nop.input(IO.inputIds, DType.INT64, [1, 1]);
  for (const [name, type, shape] of [[IO.seqlensK, DType.INT32, [1]], [IO.totalLen, DType.INT32, []], [IO.kvStart, DType.INT64, [1]], [IO.kvEnd, DType.INT64, [1]]] as const) nop.input(name, type, [...shape]);
  nop.node('Identity', [IO.inputIds], ['out']);
  nop.output('out', DType.INT64, [1, 1]);
  const floor = await Session.load(nop.toBytes(), 'cost probe 0');
  const seg1 = await Session.load(segmentGraph(src, 0, 1, L === 1 ? { kind: 'final', rows: 'last' } : { kind: 'exit', name: 'probe', signal }).toBytes(), 'cost probe 1');
  const seg2 = await Session.load(segmentGraph(src, 0, 1, { kind: 'none' }).toBytes(), 'cost probe 2');
  const past: Feeds = run.kv.feeds(0, 1, {});
  const one: number[] = [];
  const exit1: number[] = [];
  const exit2: number[] = [];
  const full: number[] = [];
  try {
    for (let r = 0; r < rounds; r++) {
      full.push(await timeIt(() => d.forward([tok], d.newState(run)), reps));
      one.push(await timeIt(() => floor.run({ [IO.inputIds]: d.idsTensor([tok]), ...d.stepFeeds(run.pos, 1) }), reps));
      exit1.push(await timeIt(() => seg1.run({ [IO.inputIds]: d.idsTensor([tok]), ...d.stepFeeds(run.pos, 1), ...past }), reps));
      exit2.push(await timeIt(() => seg2.run({ [IO.inputIds]: d.idsTensor([tok]), ...d.stepFeeds(run.pos, 1), ...past }), reps));
    }
  } finally {
    await Promise.all([seg1.release(), seg2.release(), floor.release()]);
  }
  const call = best(one);
  const head = Math.max(0.5, best(exit1) - best(exit2));
  // a layer as it costs inside the whole model: a lone one-layer graph stays in cache and runs
  // faster than the layers of a model whose weights do not fit (caption-lm-8L: 7.5 MB vs 2 MB L2)
  const layer = Math.max(0.5, best(exit2) - call, (best(full) - call - head) / L);
  const round = (x: number) => Math.round(x * 10) / 10;

  // verification of n tokens: the fused graph from the same position, n = 1 … maxBatch
  const batches = Array.from({ length: Math.max(1, Math.min(maxBatch, maxSeqLen - run.pos)) }, (_, i) => i + 1);
  const verify = batches.map(() => [] as number[]);
  for (let r = 0; r < Math.ceil(rounds / 2); r++) {
    for (const n of batches) verify[n - 1]!.push(await timeIt(() => d.forward(Array.from({ length: n }, () => tok), d.newState(run)), Math.ceil(reps / 2)));
  }
  return { call_us: round(call), layer_us: round(layer), head_us: round(head), verify_us: verify.map((v) => round(best(v))) };
}
