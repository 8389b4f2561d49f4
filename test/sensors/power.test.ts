import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { externalPower, normalizeStatus, parseMqttBattery, readPowerSupplies, readRails } from '../../agent/sensors/power.js';
import { copyFixture, fixture } from './fixtures.js';

test('laptop: BAT0 discharging at 64 %, 11.837 V; AC and USB-C offline; the mouse battery (scope Device) skipped', () => {
  const { batteries, mains } = readPowerSupplies(fixture('laptop'), 5);
  assert.equal(batteries.length, 1);
  const b = batteries[0];
  assert.equal(b?.name, 'BAT0');
  assert.equal(b?.kind, 'Battery');
  assert.equal(b?.capacity_pct, 64);
  assert.equal(b?.status, 'discharging');
  assert.equal(b?.voltage_v, 11.837);
  assert.equal(b?.at_ms, 5);
  assert.ok(b?.source.endsWith(join('power_supply', 'BAT0')));
  assert.deepEqual(
    mains.map((m) => [m.name, m.kind, m.online]),
    [
      ['AC', 'Mains', false],
      ['ucsi-source-psy-USBC000:001', 'USB', false],
    ],
  );
  assert.equal(externalPower(mains, b), false);
});

test('laptop: plugging in AC flips external power; capacity falls back to energy_now/energy_full', () => {
  const fx = copyFixture('laptop');
  try {
    const bat = join(fx.root, 'class/power_supply/BAT0');
    writeFileSync(join(fx.root, 'class/power_supply/AC/online'), '1\n');
    writeFileSync(join(bat, 'status'), 'Charging\n');
    writeFileSync(join(bat, 'capacity'), '\n');
    const { batteries, mains } = readPowerSupplies(fx.root, 0);
    assert.equal(batteries[0]?.status, 'charging');
    assert.equal(batteries[0]?.capacity_pct, 64, '32840000 / 51300000 = 64.0 %');
    assert.equal(externalPower(mains, batteries[0]), true);
  } finally {
    fx.cleanup();
  }
});

test('boards without power_supply entries report no battery and unknown external power', () => {
  for (const board of ['rpi4', 'rpi5', 'jetson-nano', 'jetson-orin']) {
    const { batteries, mains } = readPowerSupplies(fixture(board), 0);
    assert.deepEqual(batteries, [], board);
    assert.deepEqual(mains, [], board);
    assert.equal(externalPower(mains, undefined), undefined, board);
  }
});

test('jetson-orin: INA3221 rails VDD_IN, VDD_CPU_GPU_CV, VDD_SOC from hwmon', () => {
  const rails = readRails(fixture('jetson-orin'), 0);
  assert.deepEqual(
    rails.map((r) => [r.chip, r.label, r.voltage_v, r.current_a, r.power_w]),
    [
      ['ina3221', 'VDD_IN', 5.072, 1.312, 6.654],
      ['ina3221', 'VDD_CPU_GPU_CV', 5.064, 0.372, 1.884],
      ['ina3221', 'VDD_SOC', 5.072, 0.576, 2.921],
    ],
  );
  assert.deepEqual(readRails(fixture('rpi4'), 0), [], 'rpi_volt and cpu_thermal are not rails');
});

test('kernel status strings normalize', () => {
  assert.equal(normalizeStatus('Discharging'), 'discharging');
  assert.equal(normalizeStatus('Not charging'), 'not_charging');
  assert.equal(normalizeStatus('Full'), 'full');
  assert.equal(normalizeStatus('Unknown'), 'unknown');
  assert.equal(normalizeStatus(undefined), 'unknown');
});

test('MQTT battery payloads: {capacity, status} and {capacity, charging}; junk is undefined', () => {
  const a = parseMqttBattery({ capacity: 76, status: 'Discharging', voltage: 3.91 }, 10, 'mqtt:ups/battery');
  assert.deepEqual(a, { name: 'mqtt', kind: 'mqtt', capacity_pct: 76, status: 'discharging', voltage_v: 3.91, source: 'mqtt:ups/battery', at_ms: 10 });
  assert.equal(parseMqttBattery({ capacity: '42', charging: true }, 0)?.status, 'charging');
  assert.equal(parseMqttBattery({ capacity: 42, charging: false }, 0)?.status, 'discharging');
  assert.equal(parseMqttBattery({ capacity: 42 }, 0)?.status, 'unknown');
  assert.equal(parseMqttBattery({ capacity: 142 }, 0), undefined);
  assert.equal(parseMqttBattery({ status: 'Charging' }, 0), undefined);
  assert.equal(parseMqttBattery('76', 0), undefined);
  assert.equal(parseMqttBattery(null, 0), undefined);
  assert.equal(parseMqttBattery([76], 0), undefined);
});
