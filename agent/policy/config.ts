/**
 * The `policy:` section of the agent config as a TypeBox fragment with defaults, so the agent's one
 * config schema can embed it and the published JSON Schema documents every threshold. Profiles
 * reuse the rule schemas without defaults, so a profile overrides only what it names.
 */
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { validate } from 'node-cron';
import { Value } from '@sinclair/typebox/value';
import { SensorsConfigSchema } from '../sensors/config.js';

/** The default ladder of operating levels, best first (calibration may supply its own). */
export const DEFAULT_LEVELS = ['exact', 'high', 'balanced', 'eco', 'critical'];

/** With defaults for the config itself, without them for profile overrides. */
function opt<T extends TSchema>(schema: T, withDefaults: boolean, fallback: unknown): T {
  return withDefaults ? ({ ...schema, default: fallback } as T) : schema;
}

function thermalRules(d: boolean) {
  return Type.Object(
    {
      /** Apply the temperature rule (boolean); default true. */
      enabled: opt(Type.Boolean({ description: 'apply the temperature rule; default true' }), d, true),
      /** At or above passive trip minus this, one level down (°C); default 10. */
      one_down_margin_c: opt(Type.Number({ minimum: 0, description: 'at/above passive trip minus this: one level down (°C); default 10' }), d, 10),
      /** At or above passive trip minus this, two levels down (°C); default 5. */
      two_down_margin_c: opt(Type.Number({ minimum: 0, description: 'at/above passive trip minus this: two levels down (°C); default 5' }), d, 5),
      /** A step is released only this far below its threshold (°C); default 5. */
      hysteresis_c: opt(Type.Number({ minimum: 0, description: 'release a step only this far below its threshold (°C); default 5' }), d, 5),
      /** Passive trip to use instead of the zone's own (°C); default: the zone's. */
      passive_c: Type.Optional(Type.Number({ description: "passive trip instead of the zone's own (°C)" })),
      /** Critical trip to use instead of the zone's own (°C); default: the zone's. */
      critical_c: Type.Optional(Type.Number({ description: "critical trip instead of the zone's own (°C)" })),
      /** Passive trip when the zone has none (°C); default 80. */
      fallback_passive_c: opt(Type.Number({ description: 'passive trip when the zone has none (°C); default 80' }), d, 80),
      /** Critical trip when the zone has none (°C); default 100. */
      fallback_critical_c: opt(Type.Number({ description: 'critical trip when the zone has none (°C); default 100' }), d, 100),
    },
    { additionalProperties: false },
  );
}

const BatteryThresholdSchema = Type.Object(
  {
    /** Applies while capacity is below this (%). */
    below_pct: Type.Number({ minimum: 0, maximum: 100, description: 'applies while capacity is below this (%)' }),
    /** Worst level allowed then (a ladder name; the last rung marks the device critical). */
    level: Type.String({ minLength: 1, description: 'level to drop to (a ladder name)' }),
  },
  { additionalProperties: false },
);

function batteryRules(d: boolean) {
  return Type.Object(
    {
      /** Apply the battery rule (boolean); default true. */
      enabled: opt(Type.Boolean({ description: 'apply the battery rule; default true' }), d, true),
      /** While discharging: below 50 % balanced, below 25 % eco, below 10 % critical. */
      thresholds: opt(
        Type.Array(BatteryThresholdSchema, { description: 'while discharging; default <50% balanced, <25% eco, <10% critical' }),
        d,
        [
          { below_pct: 50, level: 'balanced' },
          { below_pct: 25, level: 'eco' },
          { below_pct: 10, level: 'critical' },
        ],
      ),
      /** A threshold is released only this far above it (%); default 5. */
      hysteresis_pct: opt(Type.Number({ minimum: 0, description: 'release a threshold only this far above it (%); default 5' }), d, 5),
    },
    { additionalProperties: false },
  );
}

function queueRules(d: boolean) {
  return Type.Object(
    {
      /** Apply the queue rule (boolean); default true. */
      enabled: opt(Type.Boolean({ description: 'apply the queue rule; default true' }), d, true),
      /** Queue depth above which the level drops (requests); default 8. */
      depth: opt(Type.Integer({ minimum: 0, description: 'queue depth above which the level drops (requests); default 8' }), d, 8),
      /** Levels to drop then (count); default 1. */
      steps: opt(Type.Integer({ minimum: 0, description: 'levels to drop (count); default 1' }), d, 1),
    },
    { additionalProperties: false },
  );
}

const ThrottleFlag = Type.Union([Type.Literal('under_voltage'), Type.Literal('arm_freq_capped'), Type.Literal('throttled'), Type.Literal('soft_temp_limit')]);

function throttleRules(d: boolean) {
  return Type.Object(
    {
      /** Apply the throttling rule (boolean); default true. */
      enabled: opt(Type.Boolean({ description: 'apply the throttling rule; default true' }), d, true),
      /** Current flags that count; default under_voltage, arm_freq_capped, throttled, soft_temp_limit. */
      flags: opt(Type.Array(ThrottleFlag, { description: 'current throttling flags that count; default all four' }), d, [
        'under_voltage',
        'arm_freq_capped',
        'throttled',
        'soft_temp_limit',
      ]),
      /** Levels to drop while any counted flag is set (count); default 1. */
      steps: opt(Type.Integer({ minimum: 0, description: 'levels to drop while throttled (count); default 1' }), d, 1),
    },
    { additionalProperties: false },
  );
}

export const ThermalRulesSchema = thermalRules(true);
export const BatteryRulesSchema = batteryRules(true);
export const QueueRulesSchema = queueRules(true);
export const ThrottleRulesSchema = throttleRules(true);

export const ProfileSchema = Type.Object(
  {
    /** Best level allowed while the profile is active (a ladder name); default the top. */
    max_level: Type.Optional(Type.String({ minLength: 1, description: 'best level allowed while active' })),
    /** Rule overrides; only the fields given replace the base rules. */
    thermal: Type.Optional(Type.Partial(thermalRules(false), { description: 'temperature rule overrides' })),
    battery: Type.Optional(Type.Partial(batteryRules(false), { description: 'battery rule overrides' })),
    queue: Type.Optional(Type.Partial(queueRules(false), { description: 'queue rule overrides' })),
    throttle: Type.Optional(Type.Partial(throttleRules(false), { description: 'throttling rule overrides' })),
  },
  { additionalProperties: false },
);

export const ScheduleSchema = Type.Object(
  {
    /** node-cron expression (5 or 6 fields), e.g. "0 22 * * *". */
    cron: Type.String({ minLength: 1, description: 'node-cron expression, e.g. "0 22 * * *"' }),
    /** Profile that becomes active when it fires (a key of profiles). */
    profile: Type.String({ minLength: 1, description: 'profile activated when it fires' }),
  },
  { additionalProperties: false },
);

export const PolicyConfigSchema = Type.Object(
  {
    /** Ladder of level names, best first; default exact, high, balanced, eco, critical (calibration may override). */
    levels: Type.Array(Type.String({ minLength: 1 }), { minItems: 1, uniqueItems: true, default: DEFAULT_LEVELS, description: 'ladder of levels, best first' }),
    /** Sensor polling interval (ms); default 5000. */
    poll_interval_ms: Type.Integer({ minimum: 100, default: 5000, description: 'sensor polling interval (ms); default 5000' }),
    /** Minimum time between two level changes (ms); default 30000. */
    dwell_ms: Type.Integer({ minimum: 0, default: 30_000, description: 'minimum time between two level changes (ms); default 30000' }),
    /** A move into a critical state ignores the dwell time (boolean); default true. */
    dwell_bypass_critical: Type.Boolean({ default: true, description: 'entering a critical state ignores the dwell time; default true' }),
    /** Refuse a request's quality floor with E_DEGRADED while critical (boolean); default true. */
    refuse_floor_when_critical: Type.Boolean({ default: true, description: 'refuse quality floors with E_DEGRADED while critical; default true' }),
    thermal: { ...ThermalRulesSchema, default: {} },
    battery: { ...BatteryRulesSchema, default: {} },
    queue: { ...QueueRulesSchema, default: {} },
    throttle: { ...ThrottleRulesSchema, default: {} },
    /** Profile active when no schedule has fired; default none. */
    profile: Type.Optional(Type.String({ minLength: 1, description: 'profile active when no schedule has fired' })),
    /** Named profiles: a cap on the best level and/or rule overrides; default none. */
    profiles: Type.Record(Type.String(), ProfileSchema, { default: {}, description: 'named profiles' }),
    /** Cron schedules switching profiles; the one that fired last wins; default none. */
    schedules: Type.Array(ScheduleSchema, { default: [], description: 'cron schedules switching profiles; last fired wins' }),
    /** IANA time zone for schedules (e.g. Europe/Berlin); default the system's. */
    timezone: Type.Optional(Type.String({ minLength: 1, description: "IANA time zone for schedules; default the system's" })),
    /** Where readings come from (sysfs root, zone lists, vcgencmd, battery topic). */
    sensors: SensorsConfigSchema,
  },
  { additionalProperties: false, default: {}, description: 'device-aware operating-level policy and its sensors' },
);

export type ThermalRules = Static<typeof ThermalRulesSchema>;
export type BatteryRules = Static<typeof BatteryRulesSchema>;
export type QueueRules = Static<typeof QueueRulesSchema>;
export type ThrottleRules = Static<typeof ThrottleRulesSchema>;
export type Profile = Static<typeof ProfileSchema>;
export type Schedule = Static<typeof ScheduleSchema>;
export type PolicyConfig = Static<typeof PolicyConfigSchema>;

/** Fill defaults into a partial `policy:` section (no validation; the agent's schema validates). */
export function policyConfig(partial: unknown = {}): PolicyConfig {
  return Value.Default(PolicyConfigSchema, structuredClone(partial ?? {})) as PolicyConfig;
}

/**
 * Problems the schema cannot see, each as `/policy/<path>: message`: cron syntax, schedules naming
 * missing profiles, level names missing from the ladder, a time zone Intl does not know.
 */
export function policyProblems(p: PolicyConfig): string[] {
  const out: string[] = [];
  const level = (name: string, path: string): void => {
    if (!p.levels.includes(name)) out.push(`/policy/${path}: '${name}' is not one of levels (${p.levels.join(', ')})`);
  };
  p.schedules.forEach((s, i) => {
    if (!validate(s.cron)) out.push(`/policy/schedules/${i}/cron: '${s.cron}' is not a valid cron expression`);
    if (!Object.prototype.hasOwnProperty.call(p.profiles, s.profile)) out.push(`/policy/schedules/${i}/profile: no profile named '${s.profile}'`);
  });
  if (p.profile !== undefined && !Object.prototype.hasOwnProperty.call(p.profiles, p.profile)) out.push(`/policy/profile: no profile named '${p.profile}'`);
  for (const [name, prof] of Object.entries(p.profiles)) {
    if (prof.max_level !== undefined) level(prof.max_level, `profiles/${name}/max_level`);
    prof.battery?.thresholds?.forEach((t, i) => level(t.level, `profiles/${name}/battery/thresholds/${i}/level`));
  }
  p.battery.thresholds.forEach((t, i) => level(t.level, `battery/thresholds/${i}/level`));
  if (p.timezone !== undefined) {
    try {
      new Intl.DateTimeFormat('en-US', { timeZone: p.timezone });
    } catch {
      out.push(`/policy/timezone: unknown time zone '${p.timezone}'`);
    }
  }
  return out;
}
