/**
 * What the sensors report. Every reading names where it came from (`source`: a sysfs path,
 * 'vcgencmd', 'systeminformation' or 'mqtt') and when (`at_ms`, epoch milliseconds); `age_ms` is
 * filled in when a snapshot is taken. A sensor that is missing is `undefined`, never an error.
 * Field names are snake_case because these objects are published as-is on the `policy` topic.
 */

export type TripType = 'passive' | 'hot' | 'critical' | 'active' | string;

export interface TripPoint {
  /** Index N of trip_point_N_* in sysfs. */
  index: number;
  type: TripType;
  temp_c: number;
}

/** One thermal zone as read from class/thermal/thermal_zone*. */
export interface ZoneSample {
  /** Directory name, e.g. `thermal_zone1`. */
  zone: string;
  /** Contents of `type`, e.g. `CPU-therm`. */
  type: string;
  /** Raw reading in °C (temp / 1000), undefined when unreadable. */
  temp_c: number | undefined;
  trips: TripPoint[];
  /** Path of the `temp` file. */
  source: string;
}

/** Why a zone is not used. */
export type ZoneRejection = 'ignored' | 'absurd' | 'stuck' | 'unreadable';

export interface ZoneStatus {
  zone: string;
  type: string;
  temp_c: number | undefined;
  /** Median of the last samples (what the policy would use). */
  filtered_c: number | undefined;
  rejected?: ZoneRejection;
  allowed: boolean;
  source: string;
}

export interface ThermalReading {
  /** Zone directory (`thermal_zone0`) or 'systeminformation'. */
  zone: string;
  /** Zone type (`cpu-thermal`) or 'cpu' for the fallback. */
  type: string;
  /** Median-filtered temperature, °C. */
  temp_c: number;
  /** Latest raw sample, °C. */
  raw_c: number;
  /** Samples in the median window. */
  samples: number;
  /** Lowest passive trip of the zone (or its lowest `hot` trip when it has no passive one), °C. */
  passive_c: number | undefined;
  /** Lowest critical trip of the zone, °C. */
  critical_c: number | undefined;
  /** How the zone was chosen: listed in the allow-list, or the hottest valid zone as a fallback. */
  chosen_by: 'allow_list' | 'hottest' | 'fallback';
  source: string;
  at_ms: number;
  age_ms?: number;
}

export interface ThrottleReading {
  /** The raw bit field (vcgencmd get_throttled), 0 when only under-voltage is known. */
  raw: number;
  under_voltage: boolean;
  arm_freq_capped: boolean;
  throttled: boolean;
  soft_temp_limit: boolean;
  /** Sticky "has occurred since boot" bits 16–19. */
  occurred: { under_voltage: boolean; arm_freq_capped: boolean; throttled: boolean; soft_temp_limit: boolean };
  /** 'vcgencmd' or the hwmon alarm path (rpi_volt in0_lcrit_alarm). */
  source: string;
  at_ms: number;
  age_ms?: number;
}

export type BatteryStatus = 'charging' | 'discharging' | 'full' | 'not_charging' | 'unknown';

export interface BatteryReading {
  /** Power-supply name (`BAT0`), 'mqtt' or 'systeminformation'. */
  name: string;
  /** Kernel type: Battery or UPS; 'mqtt' / 'systeminformation' otherwise. */
  kind: string;
  capacity_pct: number | undefined;
  status: BatteryStatus;
  voltage_v: number | undefined;
  source: string;
  at_ms: number;
  age_ms?: number;
}

export interface MainsReading {
  /** Power-supply name (`AC`, `ADP1`, `ucsi-source-psy-…`). */
  name: string;
  kind: string;
  online: boolean;
  source: string;
  at_ms: number;
  age_ms?: number;
}

/** A power rail measured by an INA219 / INA3221 via hwmon. */
export interface RailReading {
  chip: string;
  label: string;
  voltage_v: number | undefined;
  current_a: number | undefined;
  power_w: number | undefined;
  source: string;
  at_ms: number;
  age_ms?: number;
}

export interface PowerReading {
  /** The battery the policy uses (sysfs first, then MQTT, then systeminformation). */
  battery: BatteryReading | undefined;
  /** Every external supply seen (Mains, USB, USB_C...). */
  mains: MainsReading[];
  /** True when any external supply is online or the battery says charging/full. */
  external_power: boolean | undefined;
  rails: RailReading[];
}

export interface Readings {
  thermal: ThermalReading | undefined;
  throttle: ThrottleReading | undefined;
  power: PowerReading;
  /** When the snapshot was taken, epoch ms. */
  at_ms: number;
}

/** Battery state published by a UPS HAT over MQTT, after parsing. */
export interface MqttBatteryPayload {
  capacity?: number;
  status?: string;
  charging?: boolean;
  voltage?: number;
}
