/**
 * Process lifecycle of the real daemon with the real engine (caption-lm-8L-ee) over a real
 * Mosquitto (MQTT 5): the last will on SIGKILL, graceful SIGTERM under load.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { topicsFor } from '../../agent/transport/topics.js';
import { startMosquitto, type Mosquitto } from '../helpers/mosquitto.js';
import { DEVICE, TestClient, waitFor } from './harness.js';
import { realConfig, spawnAgent } from './spawnAgent.js';

const T = topicsFor('sedac', DEVICE);
let broker: Mosquitto;

before(async () => {
  broker = await startMosquitto();
});
after(async () => {
  await broker?.close();
});

test('the last will {"state":"offline"} is published (retained) when the agent is killed with SIGKILL', async () => {
  const agent = await spawnAgent(realConfig(broker.url));
  const client = await new TestClient(broker.url, 5).connect();
  try {
    await client.listen(T.state);
    await waitFor(() => client.json(T.state).at(-1)?.state === 'online', 5000, 'online');
    agent.proc.kill('SIGKILL');
    await agent.exited;
    await waitFor(() => client.json(T.state).at(-1)?.state === 'offline', 5000, 'last will');
  } finally {
    await client.close();
  }
  // retained: a new subscriber sees offline
  const late = await new TestClient(broker.url, 5).connect();
  try {
    await late.listen(T.state);
    await waitFor(() => late.json(T.state).length > 0, 3000, 'retained state');
    assert.deepEqual(late.json(T.state).at(-1), { state: 'offline' });
  } finally {
    await late.close();
  }
});

test('SIGTERM under load: every in-flight request is answered, offline is published, exit 0 within 10 s', async () => {
  const agent = await spawnAgent(realConfig(broker.url, { queue: { size: 64, drain_ms: 8000 } }));
  const client = await new TestClient(broker.url, 5).connect();
  try {
    await client.listen('sedac/#');
    const n = 40;
    const ids = Array.from({ length: n }, (_, i) => `load-${i}`);
    await Promise.all(ids.map((id) => client.publish(T.request('caption'), JSON.stringify({ text: 'a man in a red', transaction: id }))));
    await waitFor(() => client.json(T.response('caption')).length >= 3, 10000, 'first answers');
    const t0 = performance.now();
    agent.proc.kill('SIGTERM');
    const { code, signal } = await agent.exited;
    const ms = performance.now() - t0;
    assert.equal(signal, null, agent.log());
    assert.equal(code, 0, agent.log());
    assert.ok(ms < 10000, `exited in ${Math.round(ms)} ms`);
    await client.sync();
    const answers = client.json(T.response('caption'));
    for (const id of ids) {
      const a = answers.filter((r) => r.transaction === id);
      assert.equal(a.length, 1, `${id} answered once`);
      assert.equal(a[0]?.status, 'ok', `${id}: ${JSON.stringify(a[0])}`);
      assert.equal((a[0]?.data as { text: string }).text, ' shirt is standing on a rock next to a tree', 'golden continuation (caption-lm-8L-ee README)');
    }
    assert.deepEqual(client.json(T.state).at(-1), { state: 'offline' });
  } finally {
    await client.close();
  }
});
