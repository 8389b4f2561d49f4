import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Dedupe } from '../../agent/features/dedupe.js';
import { WorkQueue, type Job } from '../../agent/features/workQueue.js';

function job(log: string[], name: string, ms: number, deadline = Infinity): Job {
  return {
    deadline,
    run: async () => {
      log.push(`start ${name}`);
      await new Promise((r) => setTimeout(r, ms));
      log.push(`end ${name}`);
    },
    expire: () => log.push(`expired ${name}`),
    cancel: () => log.push(`cancelled ${name}`),
  };
}

test('one job at a time, FIFO, bounded waiting', async () => {
  const log: string[] = [];
  const depths: number[] = [];
  const q = new WorkQueue(2, (d) => depths.push(d));
  assert.ok(q.push(job(log, 'a', 10)));
  assert.ok(q.push(job(log, 'b', 1)));
  assert.ok(q.push(job(log, 'c', 1)));
  assert.ok(!q.push(job(log, 'd', 1)), 'two waiting: full');
  assert.ok(await q.drain(1000));
  assert.deepEqual(log, ['start a', 'end a', 'start b', 'end b', 'start c', 'end c']);
  assert.equal(Math.max(...depths), 2);
  assert.equal(depths.at(-1), 0);
});

test('a job whose deadline passed while waiting expires instead of running', async () => {
  const log: string[] = [];
  const q = new WorkQueue(4);
  q.push(job(log, 'slow', 30));
  q.push(job(log, 'late', 1, performance.now() + 5));
  assert.ok(await q.drain(1000));
  assert.deepEqual(log, ['start slow', 'end slow', 'expired late']);
});

test('close + drain timeout + cancelWaiting: waiting jobs are cancelled, nothing new accepted', async () => {
  const log: string[] = [];
  const q = new WorkQueue(4);
  q.push(job(log, 'a', 50));
  q.push(job(log, 'b', 1));
  q.close();
  assert.ok(!q.push(job(log, 'c', 1)));
  assert.equal(await q.drain(10), false);
  q.cancelWaiting();
  assert.ok(await q.drain(1000));
  assert.deepEqual(log, ['start a', 'cancelled b', 'end a']);
});

test('a job that rejects does not stop the queue', async () => {
  const log: string[] = [];
  const q = new WorkQueue(4);
  q.push({ deadline: Infinity, run: () => Promise.reject(new Error('x')), expire: () => undefined, cancel: () => undefined });
  q.push(job(log, 'after', 1));
  assert.ok(await q.drain(1000));
  assert.deepEqual(log, ['start after', 'end after']);
});

test('Dedupe: seen within the window, forgotten after it, bounded', () => {
  let now = 0;
  const d = new Dedupe(1000, 3, () => now);
  assert.equal(d.seenBefore('a'), false);
  assert.equal(d.seenBefore('a'), true);
  now = 1500;
  assert.equal(d.seenBefore('a'), false, 'window passed');
  d.seenBefore('b');
  d.seenBefore('c');
  d.seenBefore('d');
  assert.equal(d.size, 3, 'bounded');
  d.forget('d');
  assert.equal(d.seenBefore('d'), false);
  assert.equal(new Dedupe(0).seenBefore('x'), false);
});

test('InflightLimiter: at most `limit` slots, FIFO hand-over, a lowered limit holds waiters back', async () => {
  const { InflightLimiter } = await import('../../agent/transport/inflight.js');
  const l = new InflightLimiter(2);
  const order: number[] = [];
  await l.acquire();
  await l.acquire();
  const third = l.acquire().then(() => order.push(3));
  const fourth = l.acquire().then(() => order.push(4));
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(order, []);
  assert.deepEqual(l.state, { inflight: 2, waiting: 2, limit: 2 });
  l.setLimit(1);
  l.release();
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(order, [], 'limit lowered to 1 with 1 in flight: nobody enters');
  l.release();
  await third;
  assert.deepEqual(order, [3]);
  l.setLimit(5);
  await fourth;
  assert.deepEqual(order, [3, 4]);
  assert.equal(l.state.inflight, 2);
});
