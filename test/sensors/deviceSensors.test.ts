import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DeviceSensors, FALLBACK_RETRY_MS, withAges } from '../../agent/sensors/deviceSensors.js';
import { sensorsConfig } from '../../agent/sensors/config.js';
import type { FallbackReader } from '../../agent/sensors/fallback.js';
import { fakeVcgencmd, fixture, fixtureConfig } from './fixtures.js';

test('config defaults fill nested sections', () => {
  const c = sensorsConfig({ thermal: { median_window: 5 } });
  assert.equal(c.sysfs_root, '/sys');
  assert.equal(c.vcgencmd, 'vcgencmd');
  assert.equal(c.thermal.median_window, 5);
  assert.equal(c.thermal.max_valid_c, 150);
  assert.ok(c.thermal.zones.includes('cpu'));
  assert.ok(c.thermal.ignore.includes('PMIC-Die'));
  assert.equal(c.battery_topic, undefined);
});

test('each fixture tree gives the expected snapshot', async () => {
  const expected: Record<string, { zone: string; temp: number; battery?: number; external?: boolean; rails: number }> = {
    rpi4: { zone: 'cpu-thermal', temp: 48.686, rails: 0 },
    rpi5: { zone: 'cpu-thermal', temp: 52.15, rails: 0 },
    'jetson-nano': { zone: 'CPU-therm', temp: 24.5, rails: 0 },
    'jetson-orin': { zone: 'cpu-thermal', temp: 45.281, rails: 3 },
    laptop: { zone: 'x86_pkg_temp', temp: 56, battery: 64, external: false, rails: 0 },
  };
  for (const [board, want] of Object.entries(expected)) {
    const sensors = new DeviceSensors(fixtureConfig(fixture(board)), { now: () => 1_000 });
    const r = await sensors.read();
    assert.equal(r.thermal?.type, want.zone, board);
    assert.equal(r.thermal?.temp_c, want.temp, board);
    assert.equal(r.power.battery?.capacity_pct, want.battery, board);
    assert.equal(r.power.external_power, want.external, board);
    assert.equal(r.power.rails.length, want.rails, board);
    assert.equal(r.at_ms, 1_000, board);
  }
});

test('rpi4 with vcgencmd: throttling flags come from vcgencmd, not from the hwmon alarm', async () => {
  const fake = fakeVcgencmd('0x4');
  try {
    const sensors = new DeviceSensors(fixtureConfig(fixture('rpi4'), { vcgencmd: fake.path }));
    const r = await sensors.read();
    assert.equal(r.throttle?.source, 'vcgencmd');
    assert.equal(r.throttle?.throttled, true);
    assert.equal(r.throttle?.under_voltage, false);
  } finally {
    fake.cleanup();
  }
});

test('an MQTT battery reading is used while fresh, then ignored after battery_max_age_ms', async () => {
  let now = 10_000;
  const sensors = new DeviceSensors(fixtureConfig(fixture('rpi5'), { battery_topic: 'ups/battery', battery_max_age_ms: 60_000 }), { now: () => now });
  assert.equal((await sensors.read()).power.battery, undefined);
  assert.equal(sensors.injectBattery({ nonsense: true }), undefined);
  const injected = sensors.injectBattery({ capacity: 33, status: 'Discharging', voltage: 3.7 });
  assert.equal(injected?.source, 'mqtt:ups/battery');
  now += 30_000;
  const fresh = await sensors.read();
  assert.equal(fresh.power.battery?.capacity_pct, 33);
  assert.equal(fresh.power.external_power, false, 'a discharging battery and no supply files');
  assert.equal(withAges(fresh, now).power.battery?.age_ms, 30_000);
  now += 31_000;
  assert.equal((await sensors.read()).power.battery, undefined);
});

test('the MQTT battery wins over a sysfs battery when configured and fresh', async () => {
  const sensors = new DeviceSensors(fixtureConfig(fixture('laptop'), { battery_topic: 'ups/battery' }));
  sensors.injectBattery({ capacity: 90, charging: true });
  const r = await sensors.read();
  assert.equal(r.power.battery?.name, 'mqtt');
  assert.equal(r.power.external_power, true);
});

test('the systeminformation fallback is asked only for what sysfs lacks', async () => {
  const calls: Array<{ thermal: boolean; battery: boolean }> = [];
  const fake: FallbackReader = async (want) => {
    calls.push(want);
    return {
      thermal: want.thermal
        ? { zone: 'systeminformation', type: 'cpu', temp_c: 61, raw_c: 61, samples: 1, passive_c: undefined, critical_c: undefined, chosen_by: 'fallback', source: 'systeminformation', at_ms: 0 }
        : undefined,
      battery: want.battery ? { name: 'systeminformation', kind: 'systeminformation', capacity_pct: 20, status: 'discharging', voltage_v: undefined, source: 'systeminformation', at_ms: 0 } : undefined,
      external_power: want.battery ? false : undefined,
    };
  };
  const laptop = await new DeviceSensors(fixtureConfig(fixture('laptop')), { fallback: fake }).read();
  assert.equal(laptop.thermal?.source.includes('thermal_zone2'), true);
  assert.deepEqual(calls, []);

  const pi = await new DeviceSensors(fixtureConfig(fixture('rpi4')), { fallback: fake }).read();
  assert.deepEqual(calls, [{ thermal: false, battery: true }]);
  assert.equal(pi.thermal?.type, 'cpu-thermal');
  assert.equal(pi.power.battery?.source, 'systeminformation');
  assert.equal(pi.power.external_power, false);

  const empty = await new DeviceSensors(fixtureConfig('/nonexistent/sysfs'), { fallback: fake }).read();
  assert.deepEqual(calls[1], { thermal: true, battery: true });
  assert.equal(empty.thermal?.temp_c, 61);
  assert.equal(empty.thermal?.chosen_by, 'fallback');
});

test('a fallback that found nothing is asked again only after FALLBACK_RETRY_MS', async () => {
  let now = 0;
  const calls: Array<{ thermal: boolean; battery: boolean }> = [];
  const empty: FallbackReader = async (want) => {
    calls.push(want);
    return { thermal: undefined, battery: undefined, external_power: undefined };
  };
  const sensors = new DeviceSensors(fixtureConfig(fixture('rpi4')), { fallback: empty, now: () => now });
  await sensors.read();
  now += 5_000;
  await sensors.read();
  assert.deepEqual(calls, [{ thermal: false, battery: true }]);
  now += FALLBACK_RETRY_MS;
  await sensors.read();
  assert.equal(calls.length, 2);
});

test('nothing readable at all: every sensor undefined, no exception (real systeminformation fallback)', async () => {
  const sensors = new DeviceSensors(sensorsConfig({ sysfs_root: '/nonexistent/sysfs', vcgencmd: '/nonexistent/vcgencmd' }));
  const r = await sensors.read();
  assert.equal(r.throttle, undefined);
  assert.deepEqual(r.power.mains, []);
  assert.deepEqual(r.power.rails, []);
  // Whatever systeminformation finds on this host must carry its source.
  if (r.thermal) assert.equal(r.thermal.source, 'systeminformation');
  if (r.power.battery) assert.equal(r.power.battery.source, 'systeminformation');
});
