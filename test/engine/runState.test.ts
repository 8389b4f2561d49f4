import assert from 'node:assert/strict';
import { test } from 'node:test';
import { IO } from '../../agent/convert/llamaGraphs.js';
import { f32 } from '../../agent/engine/ort.js';
import { KvCache } from '../../agent/engine/runState.js';

const dims = { nLayers: 2, nKvHeads: 3, kvHeadDim: 4, maxSeqLen: 300 };

/** new_kv for layers [0, 2): value = 1000·layer + 100·kv + 10·head + position + j/10. */
function rows(at: number, n: number) {
  const H = dims.nKvHeads;
  const hd = dims.kvHeadDim;
  const data = new Float32Array(4 * H * n * hd);
  for (let l = 0; l < 2; l++)
    for (let kv = 0; kv < 2; kv++)
      for (let h = 0; h < H; h++)
        for (let p = 0; p < n; p++) for (let j = 0; j < hd; j++) data[(((l * 2 + kv) * H + h) * n + p) * hd + j] = 1000 * l + 100 * kv + 10 * h + (at + p) + j / 10;
  return { [IO.newKv]: f32(data, [4, H, n, hd]) };
}

test('rows written at any position survive capacity growth, per layer and head', () => {
  const kv = new KvCache(dims, 8);
  let pos = 0;
  for (const n of [5, 1, 1, 9, 30, 1, 100]) {
    kv.ensure(pos + n, pos);
    kv.store(rows(pos, n), 0, 2, pos, n);
    pos += n;
  }
  assert.ok(kv.capacity >= pos && kv.capacity <= dims.maxSeqLen);
  for (let l = 0; l < 2; l++) {
    for (const [k, which] of [[0, 'k'], [1, 'v']] as const) {
      const r = kv.rows(l, which, pos);
      for (let h = 0; h < dims.nKvHeads; h++) for (let p = 0; p < pos; p++) assert.equal(r[(h * pos + p) * dims.kvHeadDim + 1], Math.fround(1000 * l + 100 * k + 10 * h + p + 0.1), `layer ${l} ${which} head ${h} pos ${p}`);
    }
  }
  assert.throws(() => kv.ensure(301, pos), /context of 300/);
});

test('feeds expose the whole buffers without copying', () => {
  const kv = new KvCache(dims, 16);
  const feeds = kv.feeds(1, 2, {});
  assert.deepEqual(Object.keys(feeds), [IO.pastKey(1), IO.pastValue(1)]);
  assert.equal(feeds[IO.pastKey(1)]!.data, kv.keys[1]);
  assert.deepEqual(feeds[IO.pastKey(1)]!.dims, [1, 3, 16, 4]);
});
