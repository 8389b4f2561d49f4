import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Value } from '@sinclair/typebox/value';
import { PolicyConfigSchema, policyConfig, policyProblems } from '../../agent/policy/config.js';

test('the policy section carries the sensors settings with their defaults', () => {
  const p = policyConfig({ sensors: { sysfs_root: '/host/sys', thermal: { zones: ['soc'] } } });
  assert.equal(p.sensors.sysfs_root, '/host/sys');
  assert.deepEqual(p.sensors.thermal.zones, ['soc']);
  assert.equal(p.sensors.thermal.median_window, 3);
  assert.equal(p.sensors.vcgencmd_timeout_ms, 2000);
  assert.equal(p.poll_interval_ms, 5000);
  assert.ok(Value.Check(PolicyConfigSchema, p));
});

test('profile overrides get no defaults: only the fields given replace the base rules', () => {
  const p = policyConfig({ profiles: { night: { thermal: { hysteresis_c: 2 } } } });
  assert.deepEqual(p.profiles.night, { thermal: { hysteresis_c: 2 } });
  assert.ok(Value.Check(PolicyConfigSchema, p));
  assert.ok(!Value.Check(PolicyConfigSchema, policyConfig({ profiles: { night: { thermal: { hysteresis: 2 } } } })), 'misspelt keys are rejected');
});

test('every option of the fragment is documented (unit and default in its description)', () => {
  const missing: string[] = [];
  const walk = (schema: Record<string, unknown>, path: string): void => {
    const props = schema.properties as Record<string, Record<string, unknown>> | undefined;
    if (!props) return;
    for (const [key, sub] of Object.entries(props)) {
      const items = sub.items as Record<string, unknown> | undefined;
      if (sub.type !== 'object' && typeof sub.description !== 'string') missing.push(`${path}/${key}`);
      walk(sub, `${path}/${key}`);
      if (items) walk(items, `${path}/${key}/items`);
    }
  };
  walk(PolicyConfigSchema as unknown as Record<string, unknown>, '/policy');
  assert.deepEqual(missing, []);
});

test('policyProblems: cron syntax, unknown profiles and level names, bad time zone', () => {
  assert.deepEqual(policyProblems(policyConfig()), []);
  const p = policyConfig({
    profile: 'weekend',
    profiles: { night: { max_level: 'turbo' } },
    schedules: [
      { cron: '0 22 * * *', profile: 'night' },
      { cron: 'nightly', profile: 'day' },
    ],
    battery: { thresholds: [{ below_pct: 20, level: 'frugal' }] },
    timezone: 'Mars/Olympus_Mons',
  });
  assert.deepEqual(policyProblems(p), [
    "/policy/schedules/1/cron: 'nightly' is not a valid cron expression",
    "/policy/schedules/1/profile: no profile named 'day'",
    "/policy/profile: no profile named 'weekend'",
    "/policy/profiles/night/max_level: 'turbo' is not one of levels (exact, high, balanced, eco, critical)",
    "/policy/battery/thresholds/0/level: 'frugal' is not one of levels (exact, high, balanced, eco, critical)",
    "/policy/timezone: unknown time zone 'Mars/Olympus_Mons'",
  ]);
});
