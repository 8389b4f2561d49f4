import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ThrottleSensor, decodeThrottled, parseGetThrottled, readRpiVoltAlarm } from '../../agent/sensors/throttle.js';
import { copyFixture, fakeVcgencmd, fixture } from './fixtures.js';

test('get_throttled output parses; bits 0-3 are "now", 16-19 "has occurred"', () => {
  assert.equal(parseGetThrottled('throttled=0x50005\n'), 0x50005);
  assert.equal(parseGetThrottled('throttled=0x0'), 0);
  assert.equal(parseGetThrottled('error=1 error_msg="Command not registered"'), undefined);
  const r = decodeThrottled(0x50005, 'vcgencmd', 7);
  assert.equal(r.under_voltage, true);
  assert.equal(r.arm_freq_capped, false);
  assert.equal(r.throttled, true);
  assert.equal(r.soft_temp_limit, false);
  assert.deepEqual(r.occurred, { under_voltage: true, arm_freq_capped: false, throttled: true, soft_temp_limit: false });
  const s = decodeThrottled(0x8000a, 'vcgencmd', 0);
  assert.deepEqual([s.under_voltage, s.arm_freq_capped, s.throttled, s.soft_temp_limit], [false, true, false, true]);
  assert.deepEqual(s.occurred, { under_voltage: false, arm_freq_capped: false, throttled: false, soft_temp_limit: true });
});

test('vcgencmd is spawned and its answer followed when it changes', async () => {
  const fake = fakeVcgencmd('0x50005');
  try {
    const sensor = new ThrottleSensor(fake.path, 5000, fixture('rpi4'));
    const a = await sensor.read(() => 42);
    assert.equal(a?.source, 'vcgencmd');
    assert.equal(a?.raw, 0x50005);
    assert.equal(a?.under_voltage, true);
    assert.equal(a?.at_ms, 42);
    fake.set('0x0');
    const b = await sensor.read();
    assert.equal(b?.raw, 0);
    assert.equal(b?.throttled, false);
    assert.equal(sensor.vcgencmdError, undefined);
  } finally {
    fake.cleanup();
  }
});

test('a vcgencmd that hangs is killed after the timeout and the rpi_volt alarm is used', async () => {
  const fake = fakeVcgencmd('0x0', 'vcgencmd-hang');
  try {
    const sensor = new ThrottleSensor(fake.path, 300, fixture('rpi5'));
    const t0 = Date.now();
    const r = await sensor.read();
    assert.ok(Date.now() - t0 < 5000, 'did not wait for the 30 s sleep');
    assert.match(sensor.vcgencmdError ?? '', /timed out after 300 ms/);
    assert.equal(r?.under_voltage, true, 'rpi5 fixture has in0_lcrit_alarm = 1');
    assert.ok(r?.source.endsWith(join('hwmon1', 'in0_lcrit_alarm')));
  } finally {
    fake.cleanup();
  }
});

test('missing vcgencmd: rpi_volt alarm on Pis, undefined elsewhere, and no exception', async () => {
  const missing = new ThrottleSensor('/nonexistent/vcgencmd', 1000, fixture('rpi4'));
  const r = await missing.read();
  assert.equal(r?.under_voltage, false);
  assert.equal(r?.raw, 0);
  assert.match(missing.vcgencmdError ?? '', /not found/);
  assert.equal(await new ThrottleSensor('/nonexistent/vcgencmd', 1000, fixture('jetson-orin')).read(), undefined);
  assert.equal(await new ThrottleSensor('', 1000, fixture('laptop')).read(), undefined);
});

test('rpi_volt under-voltage alarm follows the file', () => {
  const fx = copyFixture('rpi4');
  try {
    assert.equal(readRpiVoltAlarm(fx.root, 0)?.under_voltage, false);
    writeFileSync(join(fx.root, 'class/hwmon/hwmon1/in0_lcrit_alarm'), '1\n');
    assert.equal(readRpiVoltAlarm(fx.root, 0)?.under_voltage, true);
  } finally {
    fx.cleanup();
  }
});
