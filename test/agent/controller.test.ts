/**
 * Controller and transport behaviour that needs no model: abortable startup, a failing feature is
 * not fatal, route/model checks, retained topics republished after a broker restart, the connection
 * supervisor, and the systemd watchdog feature. In-process aedes brokers (fast, restartable).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startBroker } from '../../agent/broker.js';
import { Controller, StartAborted } from '../../agent/controller.js';
import type { LoadedModel } from '../../agent/engine/types.js';
import { SedacError } from '../../agent/errors.js';
import { Metrics } from '../../agent/features/metrics.js';
import type { AgentContext } from '../../agent/features/context.js';
import { WatchdogFeature } from '../../agent/features/watchdog.js';
import { silentLogger } from '../../agent/log.js';
import { MqttTransport } from '../../agent/transport/mqttClient.js';
import { topicsFor } from '../../agent/transport/topics.js';
import { freePort } from '../helpers/mosquitto.js';
import { fakeLoader } from '../helpers/fakeModel.js';
import { AGENT_FEATURES, DEVICE, TestClient, startAgent, testConfig, waitFor } from './harness.js';

const T = topicsFor('sedac', DEVICE);

test('SIGTERM during startup: a model load in progress is abandoned and start() rejects with StartAborted', async () => {
  const broker = await startBroker({ port: 0 });
  let disposed = false;
  let release: (m: LoadedModel) => void = () => undefined;
  const slow = new Promise<LoadedModel>((r) => (release = r));
  const c = new Controller({ config: testConfig(broker.url), log: silentLogger, modelLoader: () => slow, features: AGENT_FEATURES });
  const abort = new AbortController();
  setTimeout(() => abort.abort(), 50);
  const t0 = performance.now();
  await assert.rejects(c.start(abort.signal), StartAborted);
  assert.ok(performance.now() - t0 < 2000);
  const fake = await fakeLoader()({ name: 'm', source: 'x' });
  release({ ...fake, dispose: async () => void (disposed = true) });
  await waitFor(() => disposed, 1000, 'the late model to be disposed');
  await broker.close();
});

test('a feature that fails to start is logged and the others run', async () => {
  const broker = await startBroker({ port: 0 });
  const agent = await startAgent(testConfig(broker.url), {
    features: [() => ({ name: 'broken', start: () => Promise.reject(new Error('boom')), stop: () => undefined }), ...AGENT_FEATURES],
  });
  const client = await new TestClient(broker.url, 4).connect();
  try {
    await client.listen(T.response('echo'));
    await client.publish(T.request('echo'), JSON.stringify({ text: 'still works', transaction: 1 }));
    await waitFor(() => client.json(T.response('echo')).length > 0, 3000, 'answer');
    assert.equal(client.json(T.response('echo'))[0]?.status, 'ok');
  } finally {
    await client.close();
    await agent.stop();
    await broker.close();
  }
});

test('a route whose task does not match its model is refused with E_CONFIG_INVALID', async () => {
  const broker = await startBroker({ port: 0 });
  const c = new Controller({ config: testConfig(broker.url), log: silentLogger, modelLoader: fakeLoader({ m: { task: 'classify' } }), features: AGENT_FEATURES });
  await assert.rejects(c.start(), (e: unknown) => e instanceof SedacError && e.code === 'E_CONFIG_INVALID' && /generate route/.test(e.message));
  await broker.close();
});

test('after a broker restart (retained messages lost) the agent republishes state, info and health', async () => {
  const port = await freePort();
  let broker = await startBroker({ port });
  const agent = await startAgent(testConfig(broker.url, { health: { cron: '0 0 * * * *' } }));
  try {
    await broker.close();
    broker = await startBroker({ port });
    await waitFor(() => agent.ctx.transport.connected, 5000, 'reconnect');
    const client = await new TestClient(broker.url, 4).connect();
    await client.listen(`${T.root}/+`);
    await waitFor(() => [T.state, T.info, T.health].every((t) => client.json(t).length > 0), 3000, 'retained topics on the new broker');
    assert.deepEqual(client.json(T.state).at(-1), { state: 'online' });
    assert.ok(agent.ctx.transport.counters().reconnects >= 1);
    await client.close();
  } finally {
    await agent.stop();
    await broker.close();
  }
});

test('the supervisor recreates a client that stopped reconnecting', async () => {
  const port = await freePort();
  let broker = await startBroker({ port });
  // reconnectPeriod 10 min: mqtt.js will not retry in time; only the supervisor can bring it back
  const t = new MqttTransport({ url: broker.url, protocolVersion: 4, reconnectPeriodMs: 600000, supervisorTimeoutMs: 400 });
  t.start();
  try {
    await t.waitConnected(3000);
    await broker.close();
    broker = await startBroker({ port });
    await waitFor(() => !t.connected, 2000, 'disconnect');
    await t.waitConnected(5000);
    assert.ok(t.counters().client_recreations >= 1);
  } finally {
    await t.stop();
    await broker.close();
  }
});

test('watchdog: READY=1, WATCHDOG=1 only while healthy, STOPPING=1', async () => {
  const sent: string[] = [];
  const metrics = new Metrics();
  const ctx = { config: testConfig('mqtt://127.0.0.1:1'), log: silentLogger, metrics } as unknown as AgentContext;
  const w = new WatchdogFeature(ctx, { env: { NOTIFY_SOCKET: '/run/x', WATCHDOG_USEC: '200000' }, notify: async (a) => void sent.push(...a), stuckMs: 1000 });
  await w.start();
  assert.equal(sent[0], 'READY=1');
  await waitFor(() => sent.includes('WATCHDOG=1'), 1000, 'a ping');
  metrics.inFlightSince = performance.now() - 5000; // a stuck inference
  await new Promise((r) => setTimeout(r, 150));
  const pings = sent.filter((s) => s === 'WATCHDOG=1').length;
  await new Promise((r) => setTimeout(r, 400));
  assert.equal(sent.filter((s) => s === 'WATCHDOG=1').length, pings, 'no ping while unhealthy');
  await w.stop();
  await waitFor(() => sent.at(-1) === 'STOPPING=1', 1000, 'STOPPING=1');
  const quiet: string[] = [];
  const off = new WatchdogFeature(ctx, { env: {}, notify: async (a) => void quiet.push(...a) });
  await off.start();
  await off.stop();
  assert.deepEqual(quiet, [], 'no NOTIFY_SOCKET: no notifications');
});
