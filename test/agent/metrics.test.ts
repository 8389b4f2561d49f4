import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Metrics, percentile } from '../../agent/features/metrics.js';

test('latency percentiles are nearest-rank over numerically sorted values', () => {
  const m = new Metrics();
  assert.deepEqual(m.snapshot().latency_ms, { p50: null, p95: null, count: 0 });
  for (const ms of [10, 9, 100]) m.served(ms, 8, 'full');
  // numeric order 9, 10, 100 (a string sort would put 100 before 9): p50 = 2nd of 3, p95 = 3rd
  assert.deepEqual(m.snapshot().latency_ms, { p50: 10, p95: 100, count: 3 });
  assert.equal(m.snapshot().served, 3);
  assert.equal(m.snapshot().mean_layers, 8);
  assert.equal(m.snapshot().level, 'full');
});

test('the latency window keeps the last 1024 answers', () => {
  const m = new Metrics();
  for (let i = 0; i < 1024; i++) m.served(1000, 8, 'full');
  for (let i = 0; i < 1024; i++) m.served(i % 2 === 0 ? 1 : 2, 8, 'full');
  assert.deepEqual(m.snapshot().latency_ms, { p50: 1, p95: 2, count: 1024 });
});

test('percentile of plain and typed arrays', () => {
  assert.equal(percentile([1, 2, 3, 4], 50), 2);
  assert.equal(percentile(Float64Array.of(1, 2, 3, 4), 100), 4);
  assert.equal(percentile(Float64Array.of(0.123456), 50), 0.12);
  assert.equal(percentile([], 50), null);
});
