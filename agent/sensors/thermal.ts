/**
 * Thermal zones under <sysfs>/class/thermal/thermal_zone*: picks the zone the policy should watch
 * (allow-list first, hottest valid zone otherwise), median-filters it against single bogus samples
 * (some Pis read 85000 once in a while), and drops zones that read absurd values or sit on one
 * constant value while another zone moves by several degrees (Jetson `PMIC-Die` reads 100000
 * forever); known offenders are also on the ignore list so they are never used, not even once.
 */
import { join, listDir, readInt, readText } from './sysfs.js';
import type { ThermalSensorConfig } from './config.js';
import type { ThermalReading, TripPoint, ZoneSample, ZoneStatus } from './types.js';

const TRIP_TEMP = /^trip_point_(\d+)_temp$/;
const ZONE_SUFFIX = /[-_](thermal|therm)$/;

/** Read every thermal zone once (no filtering). */
export function readZones(sysfsRoot: string): ZoneSample[] {
  const base = join(sysfsRoot, 'class', 'thermal');
  const zones: ZoneSample[] = [];
  for (const zone of listDir(base)) {
    if (!zone.startsWith('thermal_zone')) continue;
    const dir = join(base, zone);
    const type = readText(join(dir, 'type'));
    if (type === undefined) continue;
    const milli = readInt(join(dir, 'temp'));
    zones.push({ zone, type, temp_c: milli === undefined ? undefined : milli / 1000, trips: readTrips(dir), source: join(dir, 'temp') });
  }
  return zones;
}

function readTrips(dir: string): TripPoint[] {
  const trips: TripPoint[] = [];
  for (const name of listDir(dir)) {
    const m = TRIP_TEMP.exec(name);
    if (!m) continue;
    const index = Number(m[1]);
    const milli = readInt(join(dir, name));
    const type = readText(join(dir, `trip_point_${index}_type`));
    if (milli === undefined || type === undefined) continue;
    trips.push({ index, type, temp_c: milli / 1000 });
  }
  return trips.sort((a, b) => a.index - b.index);
}

/** Does a zone type match an allow-list entry? Case-insensitive, with or without a -thermal/-therm suffix. */
export function zoneMatches(type: string, entry: string): boolean {
  const t = type.toLowerCase();
  const e = entry.toLowerCase();
  return t === e || t.replace(ZONE_SUFFIX, '') === e.replace(ZONE_SUFFIX, '');
}

/**
 * The zone's own limits: the lowest passive trip (or, lacking one, the lowest `hot` trip) and the
 * lowest critical trip. Trips at or below 0 °C are disabled ones (x86_pkg_temp writes 0; Tegra
 * writes -127000 for unset trips) and are skipped, as are values above `maxValid`.
 */
export function resolveTrips(trips: TripPoint[], maxValid = 150): { passive_c: number | undefined; critical_c: number | undefined } {
  const usable = trips.filter((t) => t.temp_c > 0 && t.temp_c <= maxValid);
  const lowest = (type: string): number | undefined => {
    const temps = usable.filter((t) => t.type.toLowerCase() === type).map((t) => t.temp_c);
    return temps.length ? Math.min(...temps) : undefined;
  };
  return { passive_c: lowest('passive') ?? lowest('hot'), critical_c: lowest('critical') };
}

export function median(values: readonly number[]): number | undefined {
  if (values.length === 0) return undefined;
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

interface ZoneHistory {
  /** Last valid samples for the median, newest last (°C). */
  window: number[];
  /** Last `stuck_samples` valid samples, newest last (°C). */
  recent: number[];
}

const spread = (xs: readonly number[]): number => (xs.length ? Math.max(...xs) - Math.min(...xs) : 0);

export interface ThermalSample {
  reading: ThermalReading | undefined;
  zones: ZoneStatus[];
}

function push(xs: number[], x: number, max: number): void {
  xs.push(x);
  if (xs.length > max) xs.splice(0, xs.length - max);
}

/** A full window of one identical value. */
function isStuck(h: ZoneHistory, n: number): boolean {
  return h.recent.length >= n && spread(h.recent) === 0;
}

/** Stateful thermal reader: call `sample()` once per poll. */
export class ThermalSensor {
  private readonly history = new Map<string, ZoneHistory>();

  constructor(
    private readonly config: ThermalSensorConfig,
    private readonly sysfsRoot: string,
  ) {}

  sample(now: number = Date.now()): ThermalSample {
    return this.update(readZones(this.sysfsRoot), now);
  }

  /** Feed one set of zone samples (exposed so the filter can be tested without files). */
  update(samples: ZoneSample[], now: number): ThermalSample {
    const c = this.config;
    for (const s of samples) {
      const h = this.history.get(s.zone) ?? { window: [], recent: [] };
      this.history.set(s.zone, h);
      if (s.temp_c === undefined || s.temp_c < c.min_valid_c || s.temp_c > c.max_valid_c) continue;
      push(h.window, s.temp_c, c.median_window);
      push(h.recent, s.temp_c, c.stuck_samples);
    }
    const moving = samples.filter((s) => spread(this.history.get(s.zone)?.recent ?? []) >= c.stuck_spread_c).map((s) => s.zone);
    const zones: ZoneStatus[] = samples.map((s) => this.status(s, moving));
    const valid = zones.filter((z) => z.rejected === undefined && z.filtered_c !== undefined);
    let chosen: ZoneStatus | undefined;
    let chosenBy: ThermalReading['chosen_by'] = 'allow_list';
    for (const entry of c.zones) {
      chosen = valid.find((z) => zoneMatches(z.type, entry));
      if (chosen) break;
    }
    if (!chosen && c.hottest_fallback && valid.length > 0) {
      chosen = valid.reduce((a, b) => ((b.filtered_c as number) > (a.filtered_c as number) ? b : a));
      chosenBy = 'hottest';
    }
    if (!chosen) return { reading: undefined, zones };
    const sample = samples.find((s) => s.zone === chosen.zone) as ZoneSample;
    const h = this.history.get(chosen.zone) as ZoneHistory;
    const trips = resolveTrips(sample.trips, c.max_valid_c);
    return {
      zones,
      reading: {
        zone: chosen.zone,
        type: chosen.type,
        temp_c: chosen.filtered_c as number,
        raw_c: sample.temp_c as number,
        samples: h.window.length,
        passive_c: trips.passive_c,
        critical_c: trips.critical_c,
        chosen_by: chosenBy,
        source: sample.source,
        at_ms: now,
      },
    };
  }

  private status(s: ZoneSample, moving: readonly string[]): ZoneStatus {
    const c = this.config;
    const h = this.history.get(s.zone) as ZoneHistory;
    const allowed = c.zones.some((e) => zoneMatches(s.type, e));
    const base = { zone: s.zone, type: s.type, temp_c: s.temp_c, filtered_c: median(h.window), allowed, source: s.source };
    if (c.ignore.some((e) => zoneMatches(s.type, e))) return { ...base, rejected: 'ignored' };
    if (s.temp_c === undefined) return { ...base, rejected: 'unreadable' };
    if (s.temp_c < c.min_valid_c || s.temp_c > c.max_valid_c) return { ...base, rejected: 'absurd' };
    if (isStuck(h, c.stuck_samples) && moving.some((z) => z !== s.zone)) return { ...base, rejected: 'stuck' };
    return base;
  }
}
