/**
 * The `sensors:` section of the agent config: where to read and how to filter. A TypeBox fragment
 * so the agent's single config schema can embed it; defaults live here and only here.
 */
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';

/** Zone types tried in this order (case-insensitive; a `-thermal`, `_thermal` or `-therm` suffix is ignored). */
export const DEFAULT_ZONE_ALLOW_LIST = ['cpu', 'cpu0', 'bcpu', 'mcpu', 'x86_pkg_temp', 'soc', 'soc0', 'tj'];

/** Zones known to report a constant or meaningless value. */
export const DEFAULT_ZONE_IGNORE_LIST = ['PMIC-Die', 'thermal-fan-est'];

export const ThermalSensorConfigSchema = Type.Object(
  {
    /** Zone types to use, best first; default cpu, cpu0, bcpu, mcpu, x86_pkg_temp, soc, soc0, tj. */
    zones: Type.Array(Type.String({ minLength: 1 }), {
      default: DEFAULT_ZONE_ALLOW_LIST,
      description: 'zone types to use, best first (case-insensitive; -thermal/_thermal/-therm suffix ignored)',
    }),
    /** Zone types never used, even as the hottest-zone fallback; default PMIC-Die, thermal-fan-est. */
    ignore: Type.Array(Type.String({ minLength: 1 }), {
      default: DEFAULT_ZONE_IGNORE_LIST,
      description: 'zone types never used (constant or estimated readings)',
    }),
    /** Samples in the median filter (count); default 3. */
    median_window: Type.Integer({ minimum: 1, maximum: 31, default: 3, description: 'samples in the median filter; default 3' }),
    /** A zone whose last this-many samples are identical counts as stuck (count); default 12. */
    stuck_samples: Type.Integer({ minimum: 2, default: 12, description: 'identical samples after which a zone may be stuck (count); default 12' }),
    /** ...but only while another zone moved at least this much over the same samples (°C); default 3. */
    stuck_spread_c: Type.Number({ minimum: 0, default: 3, description: 'another zone must move this much meanwhile (°C); default 3' }),
    /** Readings below this are absurd and ignored (°C); default -40. */
    min_valid_c: Type.Number({ default: -40, description: 'readings below this are ignored (°C); default -40' }),
    /** Readings above this are absurd and ignored (°C); default 150. */
    max_valid_c: Type.Number({ default: 150, description: 'readings above this are ignored (°C); default 150' }),
    /** When no allow-listed zone is valid, use the hottest valid zone (boolean); default true. */
    hottest_fallback: Type.Boolean({ default: true, description: 'use the hottest valid zone when no allow-listed zone exists; default true' }),
  },
  { default: {} },
);

export const SensorsConfigSchema = Type.Object(
  {
    /** Root of the sysfs tree (path); default /sys. Tests point it at test/fixtures/sysfs/<board>. */
    sysfs_root: Type.String({ default: '/sys', description: 'root of the sysfs tree; default /sys' }),
    thermal: ThermalSensorConfigSchema,
    /** Command run as `<vcgencmd> get_throttled` (path or name); default vcgencmd. Empty disables it. */
    vcgencmd: Type.String({ default: 'vcgencmd', description: 'vcgencmd command (name or path), empty disables; default vcgencmd' }),
    /** Time allowed for vcgencmd (ms); default 2000. */
    vcgencmd_timeout_ms: Type.Integer({ minimum: 100, default: 2000, description: 'time allowed for vcgencmd (ms); default 2000' }),
    /** Read INA219/INA3221 rails from class/hwmon (boolean); default true. */
    hwmon_rails: Type.Boolean({ default: true, description: 'read INA219/INA3221 power rails from hwmon; default true' }),
    /** Use systeminformation when sysfs gives no temperature or battery (boolean); default true. */
    systeminformation_fallback: Type.Boolean({ default: true, description: 'use systeminformation when sysfs gives nothing; default true' }),
    /** MQTT topic of a UPS HAT publishing {capacity, status|charging, voltage}; default none. */
    battery_topic: Type.Optional(Type.String({ minLength: 1, description: 'MQTT topic with {capacity, status|charging, voltage} from a UPS HAT' })),
    /** An MQTT battery reading older than this is ignored (ms); default 300000. */
    battery_max_age_ms: Type.Integer({ minimum: 1000, default: 300_000, description: 'MQTT battery readings older than this are ignored (ms); default 300000' }),
  },
  { default: {} },
);

export type ThermalSensorConfig = Static<typeof ThermalSensorConfigSchema>;
export type SensorsConfig = Static<typeof SensorsConfigSchema>;

/** Fill defaults into a partial `sensors:` section (does not validate; the agent's schema does). */
export function sensorsConfig(partial: unknown = {}): SensorsConfig {
  return Value.Default(SensorsConfigSchema, structuredClone(partial ?? {})) as SensorsConfig;
}
