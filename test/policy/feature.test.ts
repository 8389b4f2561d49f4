/**
 * The policy feature end to end: an agent whose sensors read a fixture sysfs tree that the test
 * rewrites while the agent runs; everything is observed over MQTT only (the retained `policy`
 * topic and request/response), over both brokers. The agent runs its real feature list
 * (DEFAULT_FEATURES), so the wiring of the policy before inference is tested too.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { DEFAULT_FEATURES } from '../../agent/features/index.js';
import { DEFAULT_LEVELS } from '../../agent/policy/config.js';
import { topicsFor } from '../../agent/transport/topics.js';
import { DEVICE, TestClient, startAgent, testConfig, waitFor, type RunningAgent } from '../agent/harness.js';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { fakeLoader } from '../helpers/fakeModel.js';
import { copyFixture } from '../sensors/fixtures.js';

const T = topicsFor('sedac', DEVICE);
const POLL_MS = 100;
const DWELL_MS = 800;

interface PolicyMsg {
  level: string;
  target: string;
  critical: boolean;
  profile: string | null;
  reasons: string[];
  since: string;
  readings: { thermal: { temp_c: number; source: string } | null; power: { battery: { capacity_pct: number } | null; external_power: boolean | null } };
}

interface Response {
  status: 'ok' | 'error';
  data?: { level: string; reasons: string[] };
  error?: { code: string; message: string };
  transaction: string;
}

function policyMessages(c: TestClient): PolicyMsg[] {
  return c.json(T.policy) as unknown as PolicyMsg[];
}

async function waitLevel(c: TestClient, level: string, timeoutMs = 5000): Promise<PolicyMsg> {
  await waitFor(() => policyMessages(c).at(-1)?.level === level, timeoutMs, `policy level ${level} (last: ${policyMessages(c).at(-1)?.level})`);
  return policyMessages(c).at(-1) as PolicyMsg;
}

let txn = 0;
async function request(c: TestClient, extra: Record<string, unknown> = {}): Promise<Response> {
  const transaction = `t${++txn}`;
  await c.publish(T.request('echo'), JSON.stringify({ text: 'a b', transaction, ...extra }));
  await waitFor(() => c.json(T.response('echo')).some((r) => r.transaction === transaction), 5000, `response ${transaction}`);
  return c.json(T.response('echo')).find((r) => r.transaction === transaction) as unknown as Response;
}

/** The response ran at the level the retained policy message names, for the same reasons. */
function assertMatches(r: Response, p: PolicyMsg): void {
  assert.equal(r.status, 'ok', JSON.stringify(r));
  assert.equal(r.data?.level, p.level);
  assert.deepEqual(r.data?.reasons, p.reasons);
}

/** Distinct consecutive levels, and the agent's change times of each. */
function changes(msgs: PolicyMsg[]): Array<{ level: string; since: number; critical: boolean }> {
  const out: Array<{ level: string; since: number; critical: boolean }> = [];
  for (const m of msgs) if (out.at(-1)?.level !== m.level) out.push({ level: m.level, since: Date.parse(m.since), critical: m.critical });
  return out;
}

function assertDwell(ch: Array<{ level: string; since: number; critical: boolean }>): void {
  for (let i = 1; i < ch.length; i++) {
    const gap = (ch[i]?.since as number) - (ch[i - 1]?.since as number);
    if (!ch[i]?.critical) assert.ok(gap >= DWELL_MS, `${ch[i - 1]?.level} → ${ch[i]?.level} after ${gap} ms < dwell ${DWELL_MS} ms`);
  }
}

function policyConfig(root: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { poll_interval_ms: POLL_MS, dwell_ms: DWELL_MS, ...extra, sensors: { sysfs_root: root, vcgencmd: '', systeminformation_fallback: false, ...(extra.sensors as object | undefined) } };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

for (const brokerName of ['aedes', 'mosquitto'] as const) {
  describe(`policy over ${brokerName}`, () => {
    let broker: TestBroker;
    before(async () => {
      broker = await startTestBroker(brokerName);
    });
    after(async () => {
      await broker?.close();
    });

    async function run(board: string, policy: (root: string) => Record<string, unknown>, body: (ctx: { root: string; agent: RunningAgent; client: TestClient }) => Promise<void>, prepare?: (root: string) => void): Promise<void> {
      const fx = copyFixture(board);
      let agent: RunningAgent | undefined;
      let client: TestClient | undefined;
      try {
        prepare?.(fx.root);
        client = await new TestClient(broker.url, 5).connect();
        // Clear the retained policy message an earlier agent on this broker left behind.
        await client.publish(T.policy, '', { retain: true });
        await client.listen('sedac/#');
        agent = await startAgent(testConfig(broker.url, { policy: policy(fx.root) }), { loader: fakeLoader({ m: { levels: DEFAULT_LEVELS } }), features: [...DEFAULT_FEATURES] });
        await body({ root: fx.root, agent, client });
      } finally {
        await client?.close();
        await agent?.stop();
        fx.cleanup();
      }
    }

    test('scripted heat-up and cool-down: the level follows with hysteresis and dwell; policy topic and responses agree', async () => {
      await run(
        'rpi4',
        (root) => policyConfig(root),
        async ({ root, client }) => {
          const temp = (milli: number): void => writeFileSync(join(root, 'class/thermal/thermal_zone0/temp'), `${milli}\n`);
          let p = await waitLevel(client, 'exact');
          assert.equal(p.readings.thermal?.temp_c, 50);
          assert.ok(p.readings.thermal?.source.endsWith('thermal_zone0/temp'));
          assertMatches(await request(client), p);

          temp(72_000); // ≥ 80 − 10: one level down
          p = await waitLevel(client, 'high');
          assert.match(p.reasons[0] ?? '', /cpu-thermal 72 °C ≥ 70 °C \(passive 80 − 10\): one level down/);
          assertMatches(await request(client), p);

          temp(77_000); // ≥ 80 − 5: two levels down
          p = await waitLevel(client, 'balanced');
          assertMatches(await request(client), p);

          temp(72_000); // back under 75 °C but not under 75 − 5: stays
          await sleep(DWELL_MS + 6 * POLL_MS);
          p = policyMessages(client).at(-1) as PolicyMsg;
          assert.equal(p.level, 'balanced');
          assert.match(p.reasons[0] ?? '', /two levels down \(held until below 70 °C\)/);
          assertMatches(await request(client), p);

          temp(68_000);
          p = await waitLevel(client, 'high');
          assertMatches(await request(client), p);
          temp(60_000);
          p = await waitLevel(client, 'exact');
          assertMatches(await request(client), p);

          const ch = changes(policyMessages(client));
          assert.deepEqual(
            ch.map((c) => c.level),
            ['exact', 'high', 'balanced', 'high', 'exact'],
          );
          assertDwell(ch);

          const late = await new TestClient(broker.url, 5).connect();
          try {
            await late.listen(T.policy);
            await waitFor(() => policyMessages(late).length > 0, 3000, 'retained policy');
            assert.equal(policyMessages(late)[0]?.level, 'exact');
            assert.deepEqual(policyMessages(late)[0]?.reasons, policyMessages(client).at(-1)?.reasons);
          } finally {
            await late.close();
          }
        },
        (root) => writeFileSync(join(root, 'class/thermal/thermal_zone0/temp'), '50000\n'),
      );
    });

    test('discharge 100 % → 5 % and back to mains; a quality floor is refused while critical', async () => {
      await run(
        'laptop',
        (root) => policyConfig(root),
        async ({ root, client }) => {
          const bat = join(root, 'class/power_supply/BAT0');
          const capacity = (pct: number): void => writeFileSync(join(bat, 'capacity'), `${pct}\n`);
          let p = await waitLevel(client, 'exact');
          assert.equal(p.readings.power.battery?.capacity_pct, 100);
          assert.equal(p.readings.power.external_power, false);
          for (const pct of [90, 75, 60, 51]) {
            capacity(pct);
            await sleep(2 * POLL_MS);
          }
          assert.equal(policyMessages(client).at(-1)?.level, 'exact');
          capacity(49);
          p = await waitLevel(client, 'balanced');
          assertMatches(await request(client), p);
          capacity(30);
          await sleep(2 * POLL_MS);
          capacity(24);
          p = await waitLevel(client, 'eco');
          assertMatches(await request(client), p);
          capacity(12);
          await sleep(2 * POLL_MS);
          capacity(9);
          p = await waitLevel(client, 'critical');
          assert.equal(p.critical, true);
          assertMatches(await request(client), p);
          const refused = await request(client, { quality: 'exact' });
          assert.equal(refused.status, 'error');
          assert.equal(refused.error?.code, 'E_DEGRADED');
          capacity(5);
          await sleep(2 * POLL_MS);

          writeFileSync(join(root, 'class/power_supply/AC/online'), '1\n');
          writeFileSync(join(bat, 'status'), 'Charging\n');
          p = await waitLevel(client, 'exact');
          assert.equal(p.readings.power.external_power, true);
          assert.deepEqual(p.reasons, ['nominal: no rule in force']);
          assertMatches(await request(client), p);
          const honoured = await request(client, { quality: 'exact' });
          assert.equal(honoured.data?.level, 'exact');

          const ch = changes(policyMessages(client));
          assert.deepEqual(
            ch.map((c) => c.level),
            ['exact', 'balanced', 'eco', 'critical', 'exact'],
          );
          assertDwell(ch);
        },
        (root) => writeFileSync(join(root, 'class/power_supply/BAT0/capacity'), '100\n'),
      );
    });

    test('a UPS HAT battery topic and a cron-scheduled profile feed the policy', async () => {
      await run(
        'rpi5',
        (root) =>
          policyConfig(root, {
            dwell_ms: 0,
            profiles: { night: { max_level: 'high' } },
            schedules: [{ cron: '* * * * * *', profile: 'night' }],
            sensors: { battery_topic: 'ups/battery' },
          }),
        async ({ client }) => {
          // rpi5 fixture: rpi_volt under-voltage alarm set → one down from the profile cap.
          let p = await waitLevel(client, 'balanced');
          assert.equal(p.profile, 'night');
          assert.deepEqual(p.reasons.slice(0, 1), ["profile 'night' caps at high"]);
          assert.match(p.reasons[1] ?? '', /^under_voltage \(.*in0_lcrit_alarm\): 1 level\(s\) down$/);
          await client.publish('ups/battery', JSON.stringify({ capacity: 20, status: 'Discharging', voltage: 3.6 }));
          p = await waitLevel(client, 'eco');
          assert.equal(p.readings.power.battery?.capacity_pct, 20);
          await client.publish('ups/battery', 'not json');
          await client.publish('ups/battery', JSON.stringify({ capacity: 95, charging: true }));
          p = await waitLevel(client, 'balanced');
          assertMatches(await request(client), p);
        },
      );
    });
  });
}
