/**
 * One behaviour suite over both brokers: Mosquitto (the agent speaks MQTT 5) and the embedded
 * aedes (the agent falls back to 3.1.1). Request/response both ways, route subscriptions, retained
 * availability topics, flow control (busy, expired, duplicates). Model: the fake engine double
 * (these tests are about the MQTT contract; the engine is covered by engine.test.ts in this folder).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { topicsFor } from '../../agent/transport/topics.js';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { fakeLoader } from '../helpers/fakeModel.js';
import { DEVICE, TestClient, startAgent, testConfig, waitFor, type RunningAgent } from './harness.js';

const T = topicsFor('sedac', DEVICE);

for (const brokerName of ['mosquitto', 'aedes'] as const) {
  describe(`agent over ${brokerName}`, () => {
    let broker: TestBroker;
    let agent: RunningAgent;
    let client: TestClient;

    before(async () => {
      broker = await startTestBroker(brokerName);
      agent = await startAgent(testConfig(broker.url, { queue: { size: 2 } }), { loader: fakeLoader({ m: { msPerToken: 2 } }) });
      client = await new TestClient(broker.url, 5).connect();
      await client.listen('sedac/#');
    });

    after(async () => {
      await client?.close();
      await agent?.stop();
      await broker?.close();
    });

    test(`the agent speaks MQTT ${brokerName === 'mosquitto' ? 5 : '3.1.1 after falling back'}`, () => {
      assert.equal(agent.ctx.transport.counters().protocol_version, broker.protocol);
      assert.equal(client.transport.protocolVersion, broker.protocol);
    });

    test('retained state online, info and health are published', async () => {
      await waitFor(() => client.json(T.state).length > 0 && client.json(T.info).length > 0 && client.json(T.health).length > 0, 3000, 'state/info/health');
      assert.deepEqual(client.json(T.state).at(-1), { state: 'online' });
      const info = client.json(T.info).at(-1) as { device_id: string; models: Record<string, { bundle_hash: string }>; versions: Record<string, string> };
      assert.equal(info.device_id, DEVICE);
      assert.equal(info.models.m?.bundle_hash, 'f'.repeat(64));
      assert.equal(info.versions.sedac, 'test');
      const health = client.json(T.health).at(-1) as Record<string, unknown>;
      for (const k of ['uptime_s', 'rss_mb', 'event_loop_lag_ms', 'queue', 'mqtt', 'errors', 'latency_ms', 'mean_layers', 'level']) assert.ok(k in health, `health has ${k}`);
    });

    test('request with transaction → response/<route> with the transaction echoed (3.1.1 style)', async () => {
      await client.publish(T.request('echo'), JSON.stringify({ text: 'one two three', transaction: 'tx-311' }));
      await waitFor(() => client.json(T.response('echo')).some((r) => r.transaction === 'tx-311'), 3000, 'response');
      const r = client.json(T.response('echo')).find((x) => x.transaction === 'tx-311') as { status: string; data: Record<string, unknown> };
      assert.equal(r.status, 'ok');
      assert.equal(r.data.text, 'three two one');
      assert.equal(r.data.level, 'exact', 'no policy: the model best level');
      assert.deepEqual(r.data.reasons, ['no policy', 'best level']);
      assert.deepEqual(r.data.layers, [8, 8, 8]);
      assert.equal(r.data.mean_layers, 8);
      assert.equal(typeof r.data.queue_ms, 'number');
      assert.ok((r.data.infer_ms as number) >= 4, `infer_ms ${String(r.data.infer_ms)} covers 3 tokens × 2 ms`);
    });

    test('MQTT 5 responseTopic and correlationData are honoured (Mosquitto only; aedes has no MQTT 5)', async (t) => {
      if (broker.protocol !== 5) {
        // over 3.1.1 there are no properties to honour; the transaction test above is the contract
        assert.equal(client.transport.protocolVersion, 4);
        return;
      }
      await client.publish(T.request('echo'), JSON.stringify({ text: 'alpha beta', level: 'eco' }), { responseTopic: 'sedac/replies/me', correlationData: Buffer.from([1, 2, 3]) });
      await waitFor(() => client.received.some((m) => m.topic === 'sedac/replies/me'), 3000, 'v5 response');
      const m = client.received.find((x) => x.topic === 'sedac/replies/me');
      assert.ok(m);
      assert.deepEqual([...(m.correlationData ?? [])], [1, 2, 3]);
      const r = JSON.parse(m.payload.toString()) as { data: { text: string; level: string; layers: number[] } };
      assert.equal(r.data.text, 'beta alpha');
      assert.equal(r.data.level, 'eco');
      assert.deepEqual(r.data.layers, [2, 2]);
      t.diagnostic('v5 response ok');
    });

    test('a route subscription publishes its result to the output topic with wildcard levels filled', async () => {
      await client.publish('cams/front/caption', JSON.stringify({ text: 'a dog runs' }));
      await client.publish('cams/back/caption', 'plain text works');
      const out = 'sedac/testdev/caption/front';
      await waitFor(() => client.json(out).length > 0 && client.json('sedac/testdev/caption/back').length > 0, 3000, 'caption outputs');
      const r = client.json(out)[0] as { status: string; data: { text: string; source_topic: string } };
      assert.equal(r.status, 'ok');
      assert.equal(r.data.text, 'runs dog a caption:', 'prompt template applied');
      assert.equal(r.data.source_topic, 'cams/front/caption');
      assert.equal((client.json('sedac/testdev/caption/back')[0] as { data: { text: string } }).data.text, 'works text plain caption:');
    });

    test('unknown route → E_UNKNOWN_ROUTE on response/<route>', async () => {
      await client.publish(T.request('nope'), JSON.stringify({ text: 'x', transaction: 7 }));
      await waitFor(() => client.json(T.response('nope')).length > 0, 3000, 'unknown route answer');
      const r = client.json(T.response('nope'))[0] as { status: string; error: { code: string }; transaction: number };
      assert.equal(r.status, 'error');
      assert.equal(r.error.code, 'E_UNKNOWN_ROUTE');
      assert.equal(r.transaction, 7);
    });

    test('a full queue answers E_BUSY; everything accepted is served', async () => {
      const long = Array.from({ length: 16 }, (_, i) => `w${i}`).join(' '); // 16 tokens × 2 ms
      const ids = Array.from({ length: 8 }, (_, i) => `busy-${i}`);
      await Promise.all(ids.map((id) => client.publish(T.request('echo'), JSON.stringify({ text: long, transaction: id }))));
      await waitFor(() => ids.every((id) => client.json(T.response('echo')).some((r) => r.transaction === id)), 5000, 'all busy answers');
      const rs = ids.map((id) => client.json(T.response('echo')).filter((r) => r.transaction === id));
      assert.ok(rs.every((x) => x.length === 1), 'each answered once');
      const busy = rs.filter((x) => (x[0] as { error?: { code: string } }).error?.code === 'E_BUSY').length;
      const ok = rs.filter((x) => x[0]?.status === 'ok').length;
      assert.ok(busy >= 1, `some E_BUSY (got ${busy})`);
      assert.ok(ok >= 3, `running + 2 queued served (got ${ok})`);
      assert.equal(busy + ok, 8);
    });

    test('deadline_ms passed while queued → E_EXPIRED', async () => {
      const long = Array.from({ length: 16 }, (_, i) => `w${i}`).join(' ');
      await client.publish(T.request('echo'), JSON.stringify({ text: long, transaction: 'slow' }));
      await client.publish(T.request('echo'), JSON.stringify({ text: 'late', transaction: 'late', deadline_ms: 5 }));
      await waitFor(() => client.json(T.response('echo')).some((r) => r.transaction === 'late'), 3000, 'late answer');
      const r = client.json(T.response('echo')).find((x) => x.transaction === 'late') as { error: { code: string } };
      assert.equal(r.error.code, 'E_EXPIRED');
    });

    test('the same transaction twice within the window is answered once', async () => {
      const body = JSON.stringify({ text: 'dup check', transaction: 'dup-1' });
      await client.publish(T.request('echo'), body);
      await client.publish(T.request('echo'), body);
      await waitFor(() => client.json(T.response('echo')).some((r) => r.transaction === 'dup-1'), 3000, 'dup answer');
      await new Promise((r) => setTimeout(r, 150));
      await client.sync();
      assert.equal(client.json(T.response('echo')).filter((r) => r.transaction === 'dup-1').length, 1);
      assert.ok(agent.ctx.metrics.snapshot().duplicates >= 1);
    });
  });
}
