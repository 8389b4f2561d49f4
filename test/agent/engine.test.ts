/**
 * The agent with the real engine (loadModel on caption-lm-8L-ee): answers carry the golden greedy
 * continuation from the model README (independent runtimes), over both protocols; `sedac run` with
 * the embedded broker + `sedac request` as separate processes (the `npm start` path).
 */
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import { test } from 'node:test';
import { loadModel } from '../../agent/engine/index.js';
import { topicsFor } from '../../agent/transport/topics.js';
import { startTestBroker } from '../helpers/broker.js';
import { freePort } from '../helpers/mosquitto.js';
import { DEVICE, TestClient, startAgent, testConfig, waitFor } from './harness.js';
import { captionModel, realConfig, spawnAgent } from './spawnAgent.js';

const T = topicsFor('sedac', DEVICE);
// caption-lm-8L-ee README, "Golden outputs": `the dog` → `the dog is running through the water`
const GOLDEN = { prompt: 'the dog', continuation: ' is running through the water', tokens: 5 };

for (const name of ['mosquitto', 'aedes'] as const) {
  test(`real engine over ${name}: golden continuation, exit statistics and timings`, async () => {
    const broker = await startTestBroker(name);
    const config = testConfig(broker.url, { models: { caption: { source: captionModel() } }, routes: [{ name: 'caption', task: 'generate', model: 'caption', max_tokens: 32 }] });
    const agent = await startAgent(config, { loader: (spec) => loadModel({ ...spec, quiet: true }) });
    const client = await new TestClient(broker.url, 5).connect();
    try {
      await client.listen(T.response('caption'));
      await client.publish(T.request('caption'), JSON.stringify({ text: GOLDEN.prompt, transaction: 'g' }));
      await waitFor(() => client.json(T.response('caption')).length > 0, 5000, 'answer');
      const r = client.json(T.response('caption'))[0] as { status: string; data: Record<string, unknown>; transaction: string };
      assert.equal(r.status, 'ok', JSON.stringify(r));
      assert.equal(r.transaction, 'g');
      assert.equal(r.data.text, GOLDEN.continuation);
      assert.equal(r.data.tokens, GOLDEN.tokens);
      assert.equal(r.data.stop, 'eos');
      assert.equal((r.data.layers as number[]).length, GOLDEN.tokens, 'layers per generated token');
      assert.ok((r.data.mean_layers as number) > 0 && (r.data.mean_layers as number) <= 8);
      assert.equal(typeof r.data.level, 'string');
      assert.ok(Array.isArray(r.data.reasons));
      assert.ok((r.data.infer_ms as number) > 0 && (r.data.queue_ms as number) >= 0);
    } finally {
      await client.close();
      await agent.stop();
      await broker.close();
    }
  });
}

test('`sedac run` with the embedded broker + `sedac request` (3.1.1 after fallback)', async () => {
  const port = await freePort();
  const url = `mqtt://127.0.0.1:${port}`;
  const agent = await spawnAgent(realConfig(url, { broker: { enabled: true, port } }));
  try {
    const r = spawnSync(process.execPath, ['dist/agent/cli.js', 'request', 'caption', '--text', GOLDEN.prompt, '--url', url, '--device', DEVICE, '--json', '--timeout', '10000'], { encoding: 'utf8', timeout: 20000 });
    assert.equal(r.status, 0, r.stderr);
    const resp = JSON.parse(r.stdout) as { status: string; data: { text: string } };
    assert.equal(resp.status, 'ok');
    assert.equal(resp.data.text, GOLDEN.continuation);
    const bad = spawnSync(process.execPath, ['dist/agent/cli.js', 'request', 'nope', '--text', 'x', '--url', url, '--device', DEVICE, '--json'], { encoding: 'utf8', timeout: 20000 });
    assert.equal(bad.status, 1);
    assert.equal((JSON.parse(bad.stdout) as { error: { code: string } }).error.code, 'E_UNKNOWN_ROUTE');
    const unreachable = spawnSync(process.execPath, ['dist/agent/cli.js', 'request', 'caption', '--text', 'x', '--url', `mqtt://127.0.0.1:${await freePort()}`, '--timeout', '500', '--json'], { encoding: 'utf8', timeout: 20000 });
    assert.equal(unreachable.status, 1);
    assert.match(unreachable.stdout + unreachable.stderr, /E_MQTT_CONNECT/);
  } finally {
    agent.proc.kill('SIGTERM');
    const { code } = await agent.exited;
    assert.equal(code, 0, agent.log());
  }
});

test('`sedac request` over MQTT 5 (Mosquitto) uses a response topic and correlation data', async () => {
  const broker = await startTestBroker('mosquitto');
  const config = testConfig(broker.url, { models: { caption: { source: captionModel() } }, routes: [{ name: 'caption', task: 'generate', model: 'caption', max_tokens: 32 }] });
  const agent = await startAgent(config, { loader: (spec) => loadModel({ ...spec, quiet: true }) });
  const spy = await new TestClient(broker.url, 5).connect();
  try {
    await spy.listen('sedac/_reply/#');
    // async: the agent runs in this process and must keep its event loop
    const r = await promisify(execFile)(process.execPath, ['dist/agent/cli.js', 'request', 'caption', '--text', GOLDEN.prompt, '--url', broker.url, '--device', DEVICE, '--json'], { encoding: 'utf8', timeout: 20000 });
    assert.equal((JSON.parse(r.stdout) as { data: { text: string } }).data.text, GOLDEN.continuation);
    await waitFor(() => spy.received.length > 0, 2000, 'the reply seen on the private topic');
    assert.ok(spy.received[0]?.correlationData && spy.received[0].correlationData.length > 0);
  } finally {
    await spy.close();
    await agent.stop();
    await broker.close();
  }
});
