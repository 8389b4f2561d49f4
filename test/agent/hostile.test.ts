/**
 * 2,000 generated malformed or hostile payloads against the real daemon (spawned, real engine,
 * Mosquitto, MQTT 5), with valid requests mixed in: every hostile payload with a reply address
 * gets exactly one coded error, every valid request is served, the agent keeps serving, and its
 * RSS grows by less than 20 %.
 */
import { prng } from '../../agent/engine/sampling.js';
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { ERROR_CODES } from '../../agent/errors.js';
import type { PublishOptions } from '../../agent/transport/mqttClient.js';
import { topicsFor } from '../../agent/transport/topics.js';
import { startMosquitto, type Mosquitto } from '../helpers/mosquitto.js';
import { DEVICE, TestClient, waitFor } from './harness.js';
import { realConfig, spawnAgent, type SpawnedAgent } from './spawnAgent.js';

const T = topicsFor('sedac', DEVICE);
const REPLY = 'hostile/reply';
const MAX_PAYLOAD = 4096;
const MAX_CHARS = 200;

interface Case {
  id: string;
  topic: string;
  payload: Buffer;
  opts: PublishOptions;
  /** expected error code, or 'ok' for the valid requests mixed in */
  expect: string;
  /** where the answer comes and how it is matched */
  replyTopic: string;
  match: 'correlation' | 'transaction';
}


function hostileCase(i: number, rnd: () => number): Case {
  const id = `h-${i}`;
  const cd = Buffer.from(id);
  const base = { id, topic: T.request('caption'), opts: { responseTopic: REPLY, correlationData: cd }, replyTopic: REPLY, match: 'correlation' as const };
  const json = (o: unknown): Buffer => Buffer.from(JSON.stringify(o));
  const pick = <X>(xs: X[]): X => xs[Math.floor(rnd() * xs.length)] as X;
  switch (i % 16) {
    case 0:
      return { ...base, payload: Buffer.from(Array.from({ length: Math.floor(rnd() * 300) }, () => Math.floor(rnd() * 256))), expect: 'E_BAD_REQUEST' };
    case 1:
      return { ...base, payload: Buffer.concat([Buffer.from('{"text":"a '), Buffer.from([0xff, 0xfe, 0xc3]), Buffer.from('"}')]), expect: 'E_BAD_REQUEST' };
    case 2: {
      const full = JSON.stringify({ text: 'a dog runs', transaction: id });
      return { ...base, payload: Buffer.from(full.slice(0, 1 + Math.floor(rnd() * (full.length - 2)))), expect: 'E_BAD_REQUEST' };
    }
    case 3:
      return { ...base, payload: json({ text: pick<unknown>([42, ['a'], { t: 1 }, null, true]) }), expect: 'E_BAD_REQUEST' };
    case 4:
      return { ...base, payload: json(pick<unknown>([{}, { transaction: id }, { txt: 'typo' }])), expect: 'E_BAD_REQUEST' };
    case 5:
      return { ...base, payload: json({ text: 'w '.repeat(MAX_CHARS) }), expect: 'E_TOO_LARGE' };
    case 6:
      return { ...base, payload: Buffer.alloc(MAX_PAYLOAD + 1 + Math.floor(rnd() * 2000), 0x61), expect: 'E_TOO_LARGE' };
    case 7:
      return { ...base, topic: T.request(`nope${Math.floor(rnd() * 1e6)}`), payload: json({ text: 'x' }), expect: 'E_UNKNOWN_ROUTE' };
    case 8: {
      const responseTopic = pick(['a/+/b', '#', 'x/#', '+']);
      return { ...base, opts: { responseTopic, correlationData: cd }, payload: json({ text: 'x' }), expect: 'E_BAD_REQUEST', replyTopic: T.response('caption') };
    }
    case 9:
      return { ...base, opts: { responseTopic: REPLY, correlationData: Buffer.alloc(257 + Math.floor(rnd() * 500), 7) }, payload: json({ text: 'x', transaction: id }), expect: 'E_TOO_LARGE', match: 'transaction' };
    case 10:
      return { ...base, payload: json({ text: 'x', ...pick<object>([{ max_tokens: -1 }, { max_tokens: 1.5 }, { max_tokens: '3' }, { max_tokens: 1e9 }, { deadline_ms: 0 }, { level: 7 }, { quality: '' }]) }), expect: 'E_BAD_REQUEST' };
    case 11: {
      const depth = 500 + Math.floor(rnd() * 1400);
      return { ...base, payload: Buffer.from('['.repeat(depth) + ']'.repeat(depth)), expect: 'E_BAD_REQUEST' };
    }
    case 12:
      return { ...base, payload: Buffer.from('{"text":"x\\ud800y"}'), expect: 'E_BAD_REQUEST' };
    case 13:
      return { ...base, payload: Buffer.from(pick(['{"__proto__":{"text":"x"}}', '{"constructor":{"prototype":{"text":"x"}}}'])), expect: 'E_BAD_REQUEST' };
    case 14:
      return { ...base, payload: Buffer.from(pick(['', ' ', 'null', '[]', '"text"', '123', '{"text":"   "}'])), expect: 'E_BAD_REQUEST' };
    default:
      return { ...base, payload: json({ text: 'x', transaction: { nested: [1, 2, 3] } }), expect: 'E_BAD_REQUEST' };
  }
}

let broker: Mosquitto;
let agent: SpawnedAgent;
let client: TestClient;

before(async () => {
  broker = await startMosquitto();
  agent = await spawnAgent(realConfig(broker.url, { mqtt: { max_payload_bytes: MAX_PAYLOAD }, queue: { size: 256 }, routes: [{ name: 'caption', task: 'generate', model: 'caption', max_tokens: 8, max_chars: MAX_CHARS }] }));
  client = await new TestClient(broker.url, 5).connect();
  await client.listen(REPLY);
  await client.listen(`${T.root}/response/#`);
  await client.listen(T.health);
});

after(async () => {
  await client?.close();
  agent?.proc.kill('SIGTERM');
  await agent?.exited;
  await broker?.close();
});

function answersFor(c: Case): Record<string, unknown>[] {
  return client.received
    .filter((m) => m.topic === c.replyTopic && (c.match === 'correlation' ? m.correlationData?.toString() === c.id : true))
    .map((m) => JSON.parse(m.payload.toString()) as Record<string, unknown>)
    .filter((r) => c.match === 'correlation' || r.transaction === c.id);
}

async function send(cases: Case[]): Promise<void> {
  for (let i = 0; i < cases.length; i += 100) {
    await Promise.all(cases.slice(i, i + 100).map((c) => client.publish(c.topic, c.payload, { qos: 1, ...c.opts })));
  }
}

test('2,000 hostile payloads: each answered once with the expected code; valid requests still served; RSS growth < 20 %', async (t) => {
  const rnd = prng(20240501);
  const valid = (i: number): Case => ({ id: `v-${i}`, topic: T.request('caption'), payload: Buffer.from(JSON.stringify({ text: 'the dog' })), opts: { responseTopic: REPLY, correlationData: Buffer.from(`v-${i}`) }, expect: 'ok', replyTopic: REPLY, match: 'correlation' });
  // warm-up: a slice of everything, so that the baseline RSS includes steady-state buffers
  const warm = [...Array.from({ length: 160 }, (_, i) => hostileCase(100000 + i, rnd)), ...Array.from({ length: 20 }, (_, i) => valid(1000 + i))];
  await send(warm);
  await waitFor(() => warm.every((c) => answersFor(c).length > 0), 20000, 'warm-up answers');
  const rss0 = agent.rss();

  const cases: Case[] = [];
  for (let i = 0; i < 2000; i++) {
    cases.push(hostileCase(i, rnd));
    if (i % 50 === 25) cases.push(valid(i));
  }
  await send(cases);
  await waitFor(() => cases.every((c) => answersFor(c).length > 0), 30000, 'every answer');
  await new Promise((r) => setTimeout(r, 200));
  await client.sync();
  const rss1 = agent.rss();

  const wrong: string[] = [];
  for (const c of cases) {
    const a = answersFor(c);
    const got = a.length === 1 ? (a[0]?.status === 'ok' ? 'ok' : (a[0]?.error as { code?: string } | undefined)?.code) : `${a.length} answers`;
    if (got !== c.expect) wrong.push(`${c.id}: expected ${c.expect}, got ${got}`);
    if (got !== 'ok' && got !== undefined && a.length === 1) assert.ok(got in ERROR_CODES, `${got} is a catalogued code`);
  }
  assert.deepEqual(wrong.slice(0, 10), [], `${wrong.length} wrong answers`);
  t.diagnostic(`agent RSS after warm-up ${(rss0 / 1048576).toFixed(1)} MB, after 2,000 hostile + 40 valid ${(rss1 / 1048576).toFixed(1)} MB`);
  assert.ok(rss1 < rss0 * 1.2, `RSS ${(rss0 / 1048576).toFixed(1)} MB → ${(rss1 / 1048576).toFixed(1)} MB`);

  // still serving, and the health counters saw every refusal
  const after = valid(99999);
  await send([after]);
  await waitFor(() => answersFor(after).length === 1, 5000, 'a request after the barrage');
  assert.equal((answersFor(after)[0]?.data as { text: string }).text, ' is running through the water');
  const hostileTotal = 2000 + 160;
  await waitFor(() => {
    const h = client.json(T.health).at(-1) as { errors?: Record<string, number> } | undefined;
    return Object.values(h?.errors ?? {}).reduce((a, b) => a + b, 0) >= hostileTotal;
  }, 5000, 'health errors to count every refusal');
  assert.equal(agent.proc.exitCode, null, 'the agent is still running');
});
