import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ThermalSensor, median, resolveTrips, zoneMatches } from '../../agent/sensors/thermal.js';
import { sensorsConfig } from '../../agent/sensors/config.js';
import { copyFixture, fixture } from './fixtures.js';

function sensorFor(root: string, thermal: Record<string, unknown> = {}): ThermalSensor {
  const c = sensorsConfig({ sysfs_root: root, thermal });
  return new ThermalSensor(c.thermal, c.sysfs_root);
}

test('zone allow-list matching is case-insensitive and ignores -thermal/-therm suffixes', () => {
  assert.ok(zoneMatches('CPU-therm', 'cpu'));
  assert.ok(zoneMatches('cpu-thermal', 'cpu'));
  assert.ok(zoneMatches('cpu_thermal', 'CPU'));
  assert.ok(zoneMatches('tj-thermal', 'tj'));
  assert.ok(zoneMatches('x86_pkg_temp', 'X86_PKG_TEMP'));
  assert.ok(!zoneMatches('cv0-thermal', 'cpu'));
  assert.ok(!zoneMatches('soc0-thermal', 'soc'));
  assert.ok(!zoneMatches('acpitz', 'cpu'));
});

test('trip resolution: lowest passive, else lowest hot; disabled (<= 0) trips skipped; active trips never used', () => {
  assert.deepEqual(
    resolveTrips([
      { index: 0, type: 'critical', temp_c: 110 },
      { index: 1, type: 'active', temp_c: 50 },
    ]),
    { passive_c: undefined, critical_c: 110 },
  );
  assert.deepEqual(
    resolveTrips([
      { index: 0, type: 'critical', temp_c: 102.5 },
      { index: 1, type: 'hot', temp_c: 100.5 },
    ]),
    { passive_c: 100.5, critical_c: 102.5 },
  );
  assert.deepEqual(
    resolveTrips([
      { index: 0, type: 'passive', temp_c: 0 },
      { index: 1, type: 'passive', temp_c: -127 },
      { index: 2, type: 'passive', temp_c: 95 },
      { index: 3, type: 'passive', temp_c: 90 },
    ]),
    { passive_c: 90, critical_c: undefined },
  );
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 2, 3]), 2.5);
  assert.equal(median([]), undefined);
});

test('rpi4: cpu-thermal zone, its only trip is critical 110 °C', () => {
  const { reading, zones } = sensorFor(fixture('rpi4')).sample(1000);
  assert.ok(reading);
  assert.equal(reading.zone, 'thermal_zone0');
  assert.equal(reading.type, 'cpu-thermal');
  assert.equal(reading.temp_c, 48.686);
  assert.equal(reading.passive_c, undefined);
  assert.equal(reading.critical_c, 110);
  assert.equal(reading.chosen_by, 'allow_list');
  assert.ok(reading.source.endsWith(join('class', 'thermal', 'thermal_zone0', 'temp')));
  assert.equal(reading.at_ms, 1000);
  assert.equal(zones.length, 1);
});

test('rpi5: critical 110 °C; the four fan (active) trips are not mistaken for passive ones', () => {
  const { reading } = sensorFor(fixture('rpi5')).sample(0);
  assert.ok(reading);
  assert.equal(reading.type, 'cpu-thermal');
  assert.equal(reading.temp_c, 52.15);
  assert.equal(reading.passive_c, undefined);
  assert.equal(reading.critical_c, 110);
});

test('jetson-nano: CPU-therm chosen, hot trip serves as passive, PMIC-Die and thermal-fan-est ignored', () => {
  const { reading, zones } = sensorFor(fixture('jetson-nano')).sample(0);
  assert.ok(reading);
  assert.equal(reading.zone, 'thermal_zone1');
  assert.equal(reading.type, 'CPU-therm');
  assert.equal(reading.temp_c, 24.5);
  assert.equal(reading.passive_c, 100.5);
  assert.equal(reading.critical_c, 102.5);
  const byType = new Map(zones.map((z) => [z.type, z]));
  assert.deepEqual([...byType.keys()], ['AO-therm', 'CPU-therm', 'GPU-therm', 'PLL-therm', 'PMIC-Die', 'thermal-fan-est']);
  assert.equal(byType.get('PMIC-Die')?.rejected, 'ignored');
  assert.equal(byType.get('PMIC-Die')?.temp_c, 100);
  assert.equal(byType.get('thermal-fan-est')?.rejected, 'ignored');
  assert.equal(byType.get('GPU-therm')?.rejected, undefined);
});

test('jetson-nano: with no allow-listed zone the hottest valid zone is used, never PMIC-Die at 100 °C', () => {
  const { reading } = sensorFor(fixture('jetson-nano'), { zones: ['no-such-zone'] }).sample(0);
  assert.ok(reading);
  assert.equal(reading.type, 'AO-therm');
  assert.equal(reading.temp_c, 31);
  assert.equal(reading.chosen_by, 'hottest');
  const none = sensorFor(fixture('jetson-nano'), { zones: ['no-such-zone'], hottest_fallback: false }).sample(0);
  assert.equal(none.reading, undefined);
});

test('jetson-nano: zones stuck on one value while another moves >= 3 °C are dropped even when not on the ignore list', () => {
  const fx = copyFixture('jetson-nano');
  try {
    const sensor = sensorFor(fx.root, { zones: ['no-such-zone'], ignore: [], stuck_samples: 5 });
    const cpuTemp = join(fx.root, 'class/thermal/thermal_zone1/temp');
    const first = sensor.sample(0);
    // Before anything is known, PMIC-Die (100 °C) is simply the hottest zone.
    assert.equal(first.reading?.type, 'PMIC-Die');
    let last = first;
    for (let i = 1; i < 5; i++) {
      writeFileSync(cpuTemp, `${24500 + i * 1000}\n`);
      last = sensor.sample(i * 1000);
    }
    const pmic = last.zones.find((z) => z.type === 'PMIC-Die');
    assert.equal(pmic?.rejected, 'stuck');
    // Every zone that sat still while CPU-therm rose 4 °C is suspect; the moving one is used.
    assert.equal(last.zones.find((z) => z.type === 'AO-therm')?.rejected, 'stuck');
    assert.equal(last.reading?.type, 'CPU-therm');
    assert.equal(last.reading?.temp_c, 27.5);
  } finally {
    fx.cleanup();
  }
});

test('jetson-orin: cpu-thermal with passive 99 / critical 104.5; cv zones at -256 °C are absurd', () => {
  const { reading, zones } = sensorFor(fixture('jetson-orin')).sample(0);
  assert.ok(reading);
  assert.equal(reading.type, 'cpu-thermal');
  assert.equal(reading.temp_c, 45.281);
  assert.equal(reading.passive_c, 99);
  assert.equal(reading.critical_c, 104.5);
  for (const cv of ['cv0-thermal', 'cv1-thermal', 'cv2-thermal']) {
    const z = zones.find((x) => x.type === cv);
    assert.equal(z?.rejected, 'absurd', cv);
    assert.equal(z?.filtered_c, undefined, `${cv} never enters the median window`);
  }
});

test('laptop: x86_pkg_temp chosen; its 0 °C trips are disabled ones; unreadable iwlwifi zone reported', () => {
  const { reading, zones } = sensorFor(fixture('laptop')).sample(0);
  assert.ok(reading);
  assert.equal(reading.type, 'x86_pkg_temp');
  assert.equal(reading.zone, 'thermal_zone2');
  assert.equal(reading.temp_c, 56);
  assert.equal(reading.passive_c, undefined);
  assert.equal(reading.critical_c, undefined);
  assert.equal(zones.find((z) => z.type === 'iwlwifi_1')?.rejected, 'unreadable');
  assert.equal(zones.find((z) => z.type === 'acpitz')?.allowed, false);
});

test('median filter rejects a single bogus 85000 sample but follows a sustained rise within two samples', () => {
  const fx = copyFixture('rpi4');
  try {
    const temp = join(fx.root, 'class/thermal/thermal_zone0/temp');
    const sensor = sensorFor(fx.root);
    const at = (milli: number, t: number) => {
      writeFileSync(temp, `${milli}\n`);
      return sensor.sample(t).reading;
    };
    assert.equal(at(50000, 0)?.temp_c, 50);
    assert.equal(at(50500, 1)?.temp_c, 50.25);
    const spike = at(85000, 2);
    assert.equal(spike?.raw_c, 85);
    assert.equal(spike?.temp_c, 50.5, 'the spike is out-voted by its neighbours');
    assert.equal(at(50000, 3)?.temp_c, 50.5);
    assert.equal(at(50000, 4)?.temp_c, 50);
    // A real rise: the second hot sample already moves the median.
    assert.equal(at(78000, 5)?.temp_c, 50);
    assert.equal(at(78000, 6)?.temp_c, 78);
  } finally {
    fx.cleanup();
  }
});

test('a missing thermal class is undefined, not an exception', () => {
  const { reading, zones } = sensorFor('/nonexistent/sysfs/root').sample(0);
  assert.equal(reading, undefined);
  assert.deepEqual(zones, []);
});
