/**
 * All device sensors behind one object: `read()` once per poll gives a `Readings` snapshot the
 * policy consumes. Read-only; nothing here throws for a missing sensor.
 *
 * Sources, in order of preference:
 *   temperature  sysfs thermal zones → systeminformation
 *   throttling   vcgencmd get_throttled → rpi_volt hwmon under-voltage alarm
 *   battery      MQTT topic (when configured and fresh) → sysfs Battery/UPS → systeminformation
 * systeminformation is asked only for what sysfs lacks, and not again for FALLBACK_RETRY_MS after
 * it found nothing either (it may spawn helper programs).
 */
import type { SensorsConfig } from './config.js';
import { systeminformationFallback, type FallbackReader } from './fallback.js';
import { externalPower, parseMqttBattery, readPowerSupplies, readRails } from './power.js';
import { ThermalSensor } from './thermal.js';
import { ThrottleSensor } from './throttle.js';
import type { BatteryReading, Readings, ZoneStatus } from './types.js';

/** After systeminformation found nothing, ask it again only this much later (ms). */
export const FALLBACK_RETRY_MS = 10 * 60_000;

export interface DeviceSensorsOptions {
  /** The systeminformation fallback; null disables it (tests), default systeminformation. */
  fallback?: FallbackReader | null;
  /** Clock, epoch ms; default Date.now. */
  now?: () => number;
}

export class DeviceSensors {
  private readonly thermal: ThermalSensor;
  private readonly throttle: ThrottleSensor;
  private readonly fallback: FallbackReader | null;
  private readonly now: () => number;
  private mqttBattery: BatteryReading | undefined;
  private lastZones: ZoneStatus[] = [];
  private lastBatteries: BatteryReading[] = [];
  private readonly fallbackQuietUntil = { thermal: 0, battery: 0 };

  constructor(
    readonly config: SensorsConfig,
    options: DeviceSensorsOptions = {},
  ) {
    this.thermal = new ThermalSensor(config.thermal, config.sysfs_root);
    this.throttle = new ThrottleSensor(config.vcgencmd, config.vcgencmd_timeout_ms, config.sysfs_root);
    this.fallback = options.fallback === undefined ? (config.systeminformation_fallback ? systeminformationFallback : null) : options.fallback;
    this.now = options.now ?? Date.now;
  }

  /** Every zone seen by the last `read()`, with why it was or was not used. */
  get zones(): readonly ZoneStatus[] {
    return this.lastZones;
  }

  /** Every battery/UPS seen in sysfs by the last `read()`. */
  get batteries(): readonly BatteryReading[] {
    return this.lastBatteries;
  }

  /** Why vcgencmd gave nothing on the last read, if it did not. */
  get vcgencmdError(): string | undefined {
    return this.throttle.vcgencmdError;
  }

  /**
   * Hand in a payload received on the battery topic (already JSON-parsed). Returns the reading, or
   * undefined when the payload has no usable `capacity` (the caller logs and counts it).
   */
  injectBattery(payload: unknown): BatteryReading | undefined {
    const reading = parseMqttBattery(payload, this.now(), this.config.battery_topic ? `mqtt:${this.config.battery_topic}` : 'mqtt');
    if (reading) this.mqttBattery = reading;
    return reading;
  }

  async read(): Promise<Readings> {
    const at = this.now();
    const t = this.thermal.sample(at);
    this.lastZones = t.zones;
    const supplies = readPowerSupplies(this.config.sysfs_root, at);
    this.lastBatteries = supplies.batteries;
    const rails = this.config.hwmon_rails ? readRails(this.config.sysfs_root, at) : [];
    const throttle = await this.throttle.read(this.now);

    const mqtt = this.mqttBattery && at - this.mqttBattery.at_ms <= this.config.battery_max_age_ms ? this.mqttBattery : undefined;
    let battery = mqtt ?? supplies.batteries.find((b) => b.capacity_pct !== undefined) ?? supplies.batteries[0];
    let thermal = t.reading;
    let external = externalPower(supplies.mains, battery);

    const want = { thermal: thermal === undefined && at >= this.fallbackQuietUntil.thermal, battery: battery === undefined && at >= this.fallbackQuietUntil.battery };
    if (this.fallback && (want.thermal || want.battery)) {
      const fb = await this.fallback(want);
      // Hardware systeminformation cannot see now is not asked about again for a while.
      if (want.thermal && !fb.thermal) this.fallbackQuietUntil.thermal = at + FALLBACK_RETRY_MS;
      if (want.battery && !fb.battery) this.fallbackQuietUntil.battery = at + FALLBACK_RETRY_MS;
      thermal ??= fb.thermal;
      if (battery === undefined && fb.battery) {
        battery = fb.battery;
        external = supplies.mains.length > 0 ? externalPower(supplies.mains, battery) : (fb.external_power ?? externalPower([], battery));
      }
    }
    return { thermal, throttle, power: { battery, mains: supplies.mains, external_power: external, rails }, at_ms: at };
  }
}

/** A copy of the readings with `age_ms` filled in for every reading, as published. */
export function withAges(readings: Readings, now: number): Readings {
  const age = <T extends { at_ms: number }>(r: T | undefined): T | undefined => (r ? { ...r, age_ms: Math.max(0, now - r.at_ms) } : undefined);
  return {
    thermal: age(readings.thermal),
    throttle: age(readings.throttle),
    power: {
      battery: age(readings.power.battery),
      mains: readings.power.mains.map((m) => age(m) as typeof m),
      external_power: readings.power.external_power,
      rails: readings.power.rails.map((r) => age(r) as typeof r),
    },
    at_ms: readings.at_ms,
  };
}
