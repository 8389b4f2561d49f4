import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Value } from '@sinclair/typebox/value';
import { applyFloor, decideLevel, type PolicyDecision, type PolicyInput, type PolicyState } from '../../agent/policy/decide.js';
import { PolicyConfigSchema, policyConfig, type PolicyConfig } from '../../agent/policy/config.js';
import { SedacError } from '../../agent/errors.js';
import { decodeThrottled } from '../../agent/sensors/throttle.js';
import type { BatteryStatus, Readings } from '../../agent/sensors/types.js';

interface Device {
  temp?: number;
  passive?: number;
  critical?: number;
  battery?: number;
  status?: BatteryStatus;
  external?: boolean;
  throttled?: number;
}

function readings(d: Device, at = 0): Readings {
  return {
    thermal:
      d.temp === undefined
        ? undefined
        : { zone: 'thermal_zone0', type: 'cpu-thermal', temp_c: d.temp, raw_c: d.temp, samples: 3, passive_c: d.passive, critical_c: d.critical ?? 110, chosen_by: 'allow_list', source: '/sys/x', at_ms: at },
    throttle: d.throttled === undefined ? undefined : decodeThrottled(d.throttled, 'vcgencmd', at),
    power: {
      battery:
        d.battery === undefined
          ? undefined
          : { name: 'BAT0', kind: 'Battery', capacity_pct: d.battery, status: d.status ?? 'discharging', voltage_v: undefined, source: '/sys/y', at_ms: at },
      mains: [],
      external_power: d.external,
      rails: [],
    },
    at_ms: at,
  };
}

/** Runs a scripted sequence of polls through decideLevel, threading the state. */
function run(config: PolicyConfig, polls: Array<{ t: number; d: Device; queue?: number; profile?: string }>): PolicyDecision[] {
  let previous: PolicyState | undefined;
  return polls.map(({ t, d, queue, profile }) => {
    const decision = decideLevel({ readings: readings(d, t), config, queueDepth: queue ?? 0, profile, previous, now: t });
    previous = decision.state;
    return decision;
  });
}

/** At most one change per dwell period, except moves into a critical state. */
function assertDwell(decisions: PolicyDecision[], times: number[], dwell: number): void {
  let lastChange: number | undefined;
  decisions.forEach((d, i) => {
    if (!d.changed) return;
    const t = times[i] as number;
    if (lastChange !== undefined && !d.critical) assert.ok(t - lastChange >= dwell, `change at ${t} only ${t - lastChange} ms after the previous one`);
    lastChange = t;
  });
}

test('defaults: ladder, thresholds and a schema that accepts them', () => {
  const c = policyConfig();
  assert.deepEqual(c.levels, ['exact', 'high', 'balanced', 'eco', 'critical']);
  assert.equal(c.thermal.one_down_margin_c, 10);
  assert.equal(c.thermal.two_down_margin_c, 5);
  assert.equal(c.thermal.hysteresis_c, 5);
  assert.deepEqual(
    c.battery.thresholds.map((t) => [t.below_pct, t.level]),
    [
      [50, 'balanced'],
      [25, 'eco'],
      [10, 'critical'],
    ],
  );
  assert.equal(c.battery.hysteresis_pct, 5);
  assert.equal(c.dwell_ms, 30_000);
  assert.ok(Value.Check(PolicyConfigSchema, c), [...Value.Errors(PolicyConfigSchema, c)].map((e) => `${e.path} ${e.message}`).join('; '));
  assert.ok(!Value.Check(PolicyConfigSchema, { ...c, thermal: { ...c.thermal, hysteresis_c: 'five' } }));
  const props = PolicyConfigSchema.properties;
  for (const key of ['poll_interval_ms', 'dwell_ms', 'levels'] as const) assert.ok(props[key].description, `${key} is documented`);
});

test('heat-up and cool-down follow the zone trips with 5 °C hysteresis and the dwell time', () => {
  const config = policyConfig({ dwell_ms: 10_000 });
  // Pi 4: no passive trip in sysfs → fallback 80 °C; one down from 70 °C, two from 75 °C; critical 110 °C.
  const script: Array<[number, number]> = [
    [0, 50],
    [5_000, 70], // one down wanted, but the first decision was 5 s ago
    [10_000, 70],
    [15_000, 76], // two down wanted, held
    [20_000, 76],
    [25_000, 72], // still two down: released only below 70 °C
    [30_000, 69],
    [35_000, 66], // one down held until below 65 °C
    [40_000, 64],
    [45_000, 111], // critical trip: immediately, dwell or not
    [50_000, 60], // cooling from critical, but held by dwell
    [55_000, 60],
  ];
  const decisions = run(
    config,
    script.map(([t, temp]) => ({ t, d: { temp } })),
  );
  assert.deepEqual(
    decisions.map((d) => d.level),
    ['exact', 'exact', 'high', 'high', 'balanced', 'balanced', 'high', 'high', 'exact', 'critical', 'critical', 'exact'],
  );
  assert.deepEqual(
    decisions.map((d) => d.target),
    ['exact', 'high', 'high', 'balanced', 'balanced', 'balanced', 'high', 'high', 'exact', 'critical', 'exact', 'exact'],
  );
  assert.equal(decisions[1]?.held, true);
  assert.match(decisions[1]?.reasons.join(' | ') ?? '', /held at exact for 5 s more/);
  assert.match(decisions[2]?.reasons[0] ?? '', /cpu-thermal 70 °C ≥ 70 °C \(passive 80 − 10\): one level down/);
  assert.match(decisions[5]?.reasons[0] ?? '', /two levels down \(held until below 70 °C\)/);
  assert.equal(decisions[9]?.critical, true);
  assert.match(decisions[9]?.reasons[0] ?? '', /at\/above critical trip 110 °C: critical/);
  assertDwell(
    decisions,
    script.map(([t]) => t),
    10_000,
  );
});

test("the zone's own passive trip is used (Orin 99 °C), and config can override it", () => {
  const orin = { passive: 99, critical: 104.5 };
  const at = (temp: number, cfg: PolicyConfig = policyConfig()) => decideLevel({ readings: readings({ temp, ...orin }), config: cfg, queueDepth: 0, now: 0 }).level;
  assert.equal(at(88.9), 'exact');
  assert.equal(at(89), 'high');
  assert.equal(at(94), 'balanced');
  assert.equal(at(104.5), 'critical');
  const override = policyConfig({ thermal: { passive_c: 70 } });
  assert.equal(at(60, override), 'high');
});

test('discharge 100 % → 5 % steps down at 50 / 25 / 10 %, returns to exact on mains', () => {
  const config = policyConfig({ dwell_ms: 0 });
  const polls: Array<{ t: number; d: Device }> = [];
  for (let pct = 100, t = 0; pct >= 5; pct--, t += 1000) polls.push({ t, d: { battery: pct, status: 'discharging', external: false } });
  const end = polls.length * 1000;
  polls.push({ t: end, d: { battery: 5, status: 'charging', external: true } });
  polls.push({ t: end + 1000, d: { battery: 6, status: 'charging', external: true } });
  const decisions = run(config, polls);
  const levelAt = (pct: number) => decisions[100 - pct]?.level;
  assert.equal(levelAt(100), 'exact');
  assert.equal(levelAt(50), 'exact');
  assert.equal(levelAt(49), 'balanced');
  assert.equal(levelAt(25), 'balanced');
  assert.equal(levelAt(24), 'eco');
  assert.equal(levelAt(10), 'eco');
  assert.equal(levelAt(9), 'critical');
  assert.equal(decisions[100 - 9]?.critical, true);
  assert.match(decisions[100 - 9]?.reasons[0] ?? '', /battery 9 % < 10 % on battery: at most critical/);
  assert.equal(levelAt(5), 'critical');
  const changes = decisions.filter((d) => d.changed).map((d) => d.level);
  assert.deepEqual(changes, ['exact', 'balanced', 'eco', 'critical', 'exact']);
  assert.equal(decisions.at(-2)?.level, 'exact', 'external power lifts the battery constraint at once');
  assert.deepEqual(decisions.at(-2)?.reasons, ['nominal: no rule in force']);
});

test('battery hysteresis: 49 → 52 % stays balanced, 55 % releases it', () => {
  const config = policyConfig({ dwell_ms: 0 });
  const levels = run(
    config,
    [49, 52, 54, 55, 51].map((battery, i) => ({ t: i * 1000, d: { battery, status: 'discharging' as const } })),
  ).map((d) => d.level);
  assert.deepEqual(levels, ['balanced', 'balanced', 'balanced', 'exact', 'exact']);
});

test('with dwell: a fast discharge is followed one change per dwell period; entering critical is immediate', () => {
  const config = policyConfig({ dwell_ms: 30_000 });
  const polls = [60, 45, 40, 20, 8, 7].map((battery, i) => ({ t: i * 10_000, d: { battery, external: false } }));
  const decisions = run(config, polls);
  assert.deepEqual(
    decisions.map((d) => d.level),
    ['exact', 'exact', 'exact', 'eco', 'critical', 'critical'],
  );
  assert.equal(decisions[4]?.held, false, 'critical 10 s after the last change');
  assertDwell(
    decisions,
    polls.map((p) => p.t),
    30_000,
  );
});

test('queue depth above the limit drops one level; it adds to thermal steps', () => {
  const config = policyConfig();
  const at = (queueDepth: number, temp = 40) => decideLevel({ readings: readings({ temp }), config, queueDepth, now: 0 });
  assert.equal(at(8).level, 'exact');
  const busy = at(9);
  assert.equal(busy.level, 'high');
  assert.deepEqual(busy.reasons, ['queue depth 9 > 8: 1 level(s) down']);
  assert.equal(at(9, 71).level, 'balanced');
  assert.equal(decideLevel({ readings: readings({}), config: policyConfig({ queue: { depth: 2, steps: 2 } }), queueDepth: 3, now: 0 }).level, 'balanced');
});

test('throttling or under-voltage drops one level; "has occurred" bits alone do not', () => {
  const config = policyConfig();
  const at = (throttled: number, cfg = config) => decideLevel({ readings: readings({ throttled }), config: cfg, queueDepth: 0, now: 0 });
  assert.equal(at(0).level, 'exact');
  assert.equal(at(0x50000).level, 'exact');
  const uv = at(0x1);
  assert.equal(uv.level, 'high');
  assert.match(uv.reasons[0] ?? '', /^under_voltage \(vcgencmd\): 1 level\(s\) down$/);
  assert.equal(at(0x4).level, 'high');
  assert.equal(at(0x5).level, 'high', 'several flags still count once');
  assert.equal(at(0x4, policyConfig({ throttle: { flags: ['under_voltage'] } })).level, 'exact');
});

test('a quality floor is honoured unless the device is critical and config forbids it', () => {
  const config = policyConfig();
  const base: PolicyInput = { readings: readings({ temp: 72 }), config, queueDepth: 0, now: 0 };
  const warm = decideLevel({ ...base, requestFloor: 'exact' });
  assert.equal(warm.level, 'high', 'the device level is not changed by a request');
  assert.equal(warm.served_level, 'exact');
  assert.match(warm.reasons.at(-1) ?? '', /quality floor 'exact' requested/);
  assert.equal(decideLevel({ ...base, requestFloor: 'eco' }).served_level, 'high', 'a floor below the device level changes nothing');

  const hot: PolicyInput = { ...base, readings: readings({ temp: 111 }) };
  assert.throws(
    () => decideLevel({ ...hot, requestFloor: 'exact' }),
    (e: unknown) => e instanceof SedacError && e.code === 'E_DEGRADED' && /device is critical at critical/.test(e.message),
  );
  const lenient = policyConfig({ refuse_floor_when_critical: false });
  assert.equal(decideLevel({ ...hot, config: lenient, requestFloor: 'exact' }).served_level, 'exact');
  assert.throws(
    () => applyFloor(decideLevel(base), 'ultra', config),
    (e: unknown) => e instanceof SedacError && e.code === 'E_BAD_REQUEST',
  );
});

test('profiles cap the best level and can override rules', () => {
  const config = policyConfig({
    profiles: {
      night: { max_level: 'balanced' },
      quiet: { thermal: { one_down_margin_c: 30 } },
    },
  });
  const at = (profile: string | undefined, temp = 40) => decideLevel({ readings: readings({ temp }), config, queueDepth: 0, profile, now: 0 });
  const night = at('night');
  assert.equal(night.level, 'balanced');
  assert.equal(night.profile, 'night');
  assert.deepEqual(night.reasons, ["profile 'night' caps at balanced"]);
  assert.equal(at('night', 71).level, 'eco', 'steps count from the cap');
  assert.equal(at('quiet', 55).level, 'high', 'one down from 80 − 30 = 50 °C');
  assert.equal(at(undefined, 55).level, 'exact');
  assert.equal(config.thermal.one_down_margin_c, 10, 'the base config is untouched');
  const unknown = at('weekend');
  assert.equal(unknown.level, 'exact');
  assert.match(unknown.reasons[0] ?? '', /unknown profile 'weekend' ignored/);
});

test('a calibrated ladder replaces the default one; battery level names keep their rank', () => {
  const config = policyConfig({ dwell_ms: 0 });
  const ladder = ['exact', 'fast', 'fastest'];
  const at = (battery: number) => decideLevel({ readings: readings({ battery, external: false }), config, queueDepth: 0, now: 0, ladder });
  assert.equal(at(40).level, 'fastest', "'balanced' is rung 2 of the default ladder");
  assert.equal(at(5).level, 'fastest');
  assert.equal(at(5).critical, true);
  assert.equal(decideLevel({ readings: readings({ temp: 76 }), config, queueDepth: 9, now: 0, ladder }).level, 'fastest', 'clamped to the last rung');
});

test('no readings at all: the top level, nominal', () => {
  const d = decideLevel({ readings: undefined, config: policyConfig(), queueDepth: 0, now: 5 });
  assert.equal(d.level, 'exact');
  assert.equal(d.changed, true);
  assert.deepEqual(d.state, { level: 'exact', changed_at_ms: 5, thermal_step: 0, battery_step: 0 });
});

test('pure: the same input gives the same output and is not mutated', () => {
  const input: PolicyInput = {
    readings: readings({ temp: 77, battery: 30, throttled: 1 }),
    config: policyConfig({ profiles: { night: { max_level: 'high' } } }),
    queueDepth: 20,
    profile: 'night',
    previous: { level: 'high', changed_at_ms: 0, thermal_step: 1, battery_step: 0 },
    now: 100_000,
  };
  const frozen = structuredClone(input);
  const a = decideLevel(input);
  const b = decideLevel(input);
  assert.deepEqual(a, b);
  assert.deepEqual(input, frozen);
  assert.equal(a.level, 'critical', 'high + 2 thermal + 1 queue + 1 throttle');
  assert.equal(a.critical, false, 'reached by steps, not by a critical cause');
});
