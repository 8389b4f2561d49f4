import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createTask } from 'node-cron';
import { activeProfile, scheduleErrors } from '../../agent/policy/schedule.js';

const UTC = { timezone: 'UTC' };
const at = (iso: string): Date => new Date(`${iso}Z`);
const dayNight = [
  { cron: '0 22 * * *', profile: 'night' },
  { cron: '0 7 * * *', profile: 'day' },
];

test('day/night: the schedule that fired last wins, across midnight', () => {
  assert.deepEqual(activeProfile(dayNight, at('2024-05-10T23:00:00'), UTC), { profile: 'night', index: 0, fired_at: '2024-05-10 22:00:00' });
  assert.deepEqual(activeProfile(dayNight, at('2024-05-11T06:59:59'), UTC), { profile: 'night', index: 0, fired_at: '2024-05-10 22:00:00' });
  assert.deepEqual(activeProfile(dayNight, at('2024-05-11T07:00:00'), UTC), { profile: 'day', index: 1, fired_at: '2024-05-11 07:00:00' });
  assert.equal(activeProfile(dayNight, at('2024-05-11T21:59:59'), UTC).profile, 'day');
});

test('time zone: 13:30 UTC is 22:30 in Tokyo', () => {
  assert.equal(activeProfile(dayNight, at('2024-05-10T13:30:00'), { timezone: 'Asia/Tokyo' }).profile, 'night');
  assert.equal(activeProfile(dayNight, at('2024-05-10T13:30:00'), UTC).profile, 'day');
});

test('weekday and weekend schedules', () => {
  const s = [
    { cron: '0 9 * * 1-5', profile: 'work' },
    { cron: '0 10 * * sat,sun', profile: 'weekend' },
  ];
  // 2024-05-11 is a Saturday.
  assert.deepEqual(activeProfile(s, at('2024-05-11T09:30:00'), UTC), { profile: 'work', index: 0, fired_at: '2024-05-10 09:00:00' });
  assert.equal(activeProfile(s, at('2024-05-11T10:30:00'), UTC).profile, 'weekend');
  assert.deepEqual(activeProfile(s, at('2024-05-13T08:00:00'), UTC), { profile: 'weekend', index: 1, fired_at: '2024-05-12 10:00:00' });
});

test('node-cron extensions: L, nL, nW, seconds field', () => {
  const one = (cron: string, iso: string) => activeProfile([{ cron, profile: 'p' }], at(iso), UTC).fired_at;
  assert.equal(one('0 0 L * *', '2024-02-29T12:00:00'), '2024-02-29 00:00:00');
  assert.equal(one('0 0 L * *', '2024-02-28T12:00:00'), '2024-01-31 00:00:00');
  assert.equal(one('0 0 * * 5L', '2024-05-30T00:00:00'), '2024-04-26 00:00:00');
  // 2024-06-01 is a Saturday: 1W is Monday the 3rd.
  assert.equal(one('0 0 1W * *', '2024-06-02T00:00:00'), '2024-05-01 00:00:00');
  assert.equal(one('0 0 1W * *', '2024-06-04T00:00:00'), '2024-06-03 00:00:00');
  assert.equal(one('30 */15 * * * *', '2024-06-04T10:44:10'), '2024-06-04 10:30:30');
  assert.equal(one('@daily', '2024-06-04T10:44:10'), '2024-06-04 00:00:00');
});

test("every firing found is a moment node-cron's own matcher accepts", async () => {
  const cases: Array<[string, string]> = [
    ['0 22 * * *', '2024-05-11T06:00:00'],
    ['*/7 3-5 * * 2', '2024-07-04T12:00:00'],
    ['0 0 L-2 * *', '2024-03-15T00:00:00'],
    ['15 8 * * 1#2', '2024-09-30T00:00:00'],
    ['0 12 29 2 *', '2025-01-01T00:00:00'],
  ];
  for (const [cron, iso] of cases) {
    const fired = activeProfile([{ cron, profile: 'p' }], at(iso), UTC).fired_at;
    assert.ok(fired, cron);
    const when = new Date(`${fired.replace(' ', 'T')}Z`);
    assert.ok(when.getTime() <= at(iso).getTime(), cron);
    const task = createTask(cron, () => undefined, { timezone: 'UTC' });
    try {
      assert.ok(task.match(when), `${cron} fired at ${fired} according to activeProfile, node-cron disagrees`);
      // Nothing later than that and before `at` matches (checked minute by minute over the last day).
      for (let t = Math.max(when.getTime() + 1000, at(iso).getTime() - 86_400_000); t <= at(iso).getTime(); t += 60_000) {
        const d = new Date(Math.floor(t / 60_000) * 60_000);
        if (d.getTime() > when.getTime() && d.getTime() <= at(iso).getTime()) assert.ok(!task.match(d), `${cron} also matches ${d.toISOString()}`);
      }
    } finally {
      await task.destroy();
    }
  }
});

test('ties go to the later entry; no schedule gives the fallback; bad syntax is reported and skipped', () => {
  const tie = [
    { cron: '0 22 * * *', profile: 'a' },
    { cron: '0 22 * * *', profile: 'b' },
  ];
  assert.equal(activeProfile(tie, at('2024-05-10T23:00:00'), UTC).profile, 'b');
  assert.deepEqual(activeProfile([], at('2024-05-10T23:00:00'), { ...UTC, fallback: 'default' }), { profile: 'default' });
  const bad = [{ cron: 'every night', profile: 'x' }, ...dayNight];
  assert.deepEqual(scheduleErrors(bad), ["schedules[0].cron 'every night' is not a valid cron expression"]);
  assert.deepEqual(scheduleErrors(dayNight), []);
  assert.equal(activeProfile(bad, at('2024-05-10T23:00:00'), UTC).profile, 'night');
});
