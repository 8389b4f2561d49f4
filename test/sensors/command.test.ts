import { test } from 'node:test';
import assert from 'node:assert/strict';
import { main } from '../../agent/commands/sensors.js';
import { SedacError } from '../../agent/errors.js';
import { fakeVcgencmd, fixture } from './fixtures.js';

async function capture(argv: string[]): Promise<{ code: number; out: string }> {
  const lines: string[] = [];
  const log = console.log;
  console.log = (...args: unknown[]) => void lines.push(args.join(' '));
  try {
    const code = await main(argv);
    return { code, out: lines.join('\n') };
  } finally {
    console.log = log;
  }
}

test('sedac sensors --json on the Jetson Nano tree names the zone, its trips and why others are unused', async () => {
  const { code, out } = await capture(['--sysfs', fixture('jetson-nano'), '--vcgencmd', '', '--no-fallback', '--json']);
  assert.equal(code, 0);
  const doc = JSON.parse(out);
  assert.equal(doc.readings.thermal.type, 'CPU-therm');
  assert.equal(doc.readings.thermal.passive_c, 100.5);
  assert.ok(doc.readings.thermal.source.endsWith('thermal_zone1/temp'));
  assert.equal(typeof doc.readings.thermal.age_ms, 'number');
  assert.equal(doc.readings.throttle, null);
  assert.equal(doc.readings.power.battery, null);
  assert.equal(doc.zones.find((z: { type: string }) => z.type === 'PMIC-Die').rejected, 'ignored');
  assert.equal(doc.policy.level, 'exact');
});

test('sedac sensors text output on a Pi 4 with vcgencmd reporting under-voltage', async () => {
  const fake = fakeVcgencmd('0x50005');
  try {
    const { code, out } = await capture(['--sysfs', fixture('rpi4'), '--vcgencmd', fake.path, '--no-fallback']);
    assert.equal(code, 0);
    assert.match(out, /temperature {2}48\.7 °C .* cpu-thermal via allow_list/);
    assert.match(out, /passive trip 80\.0 °C \(fallback\), critical trip 110\.0 °C \(zone\)/);
    assert.match(out, /throttling {3}0x50005: now under_voltage, throttled; since boot under_voltage, throttled {2}\(vcgencmd\)/);
    assert.match(out, /policy {7}level high/);
  } finally {
    fake.cleanup();
  }
});

test('sedac sensors rejects stray arguments with E_USAGE', async () => {
  await assert.rejects(capture(['extra']), (e: unknown) => e instanceof SedacError && e.code === 'E_USAGE');
  await assert.rejects(capture(['--samples', '0']), (e: unknown) => e instanceof SedacError && e.code === 'E_USAGE');
});
