/**
 * Power: batteries and UPSes (class/power_supply, type Battery or UPS), external supplies (Mains,
 * USB... `online`), INA219 / INA3221 rails via class/hwmon, and a battery reading injected from an
 * MQTT topic for UPS HATs that publish their own state.
 */
import { join, listDir, readInt, readText } from './sysfs.js';
import type { BatteryReading, BatteryStatus, MainsReading, MqttBatteryPayload, RailReading } from './types.js';

/** Kernel status strings (power_supply class ABI) → ours. */
export function normalizeStatus(status: string | undefined): BatteryStatus {
  switch ((status ?? '').trim().toLowerCase().replace(/[\s-]+/g, '_')) {
    case 'charging':
      return 'charging';
    case 'discharging':
      return 'discharging';
    case 'full':
      return 'full';
    case 'not_charging':
      return 'not_charging';
    default:
      return 'unknown';
  }
}

const BATTERY_TYPES = new Set(['battery', 'ups']);

export interface SupplyScan {
  batteries: BatteryReading[];
  mains: MainsReading[];
}

/** Read every supply under class/power_supply. Device-scoped batteries (a wireless mouse) are skipped. */
export function readPowerSupplies(sysfsRoot: string, at_ms: number): SupplyScan {
  const base = join(sysfsRoot, 'class', 'power_supply');
  const batteries: BatteryReading[] = [];
  const mains: MainsReading[] = [];
  for (const name of listDir(base)) {
    const dir = join(base, name);
    const type = readText(join(dir, 'type'));
    if (type === undefined) continue;
    if (readText(join(dir, 'scope'))?.toLowerCase() === 'device') continue;
    if (BATTERY_TYPES.has(type.toLowerCase())) {
      if (readInt(join(dir, 'present')) === 0) continue;
      const microvolts = readInt(join(dir, 'voltage_now'));
      batteries.push({
        name,
        kind: type,
        capacity_pct: batteryCapacity(dir),
        status: normalizeStatus(readText(join(dir, 'status'))),
        voltage_v: microvolts === undefined ? undefined : microvolts / 1e6,
        source: dir,
        at_ms,
      });
      continue;
    }
    const online = readInt(join(dir, 'online'));
    if (online !== undefined) mains.push({ name, kind: type, online: online === 1, source: join(dir, 'online'), at_ms });
  }
  return { batteries, mains };
}

/** `capacity` (%), or energy_now/energy_full, or charge_now/charge_full when a driver omits it. */
function batteryCapacity(dir: string): number | undefined {
  const capacity = readInt(join(dir, 'capacity'));
  if (capacity !== undefined) return clampPct(capacity);
  for (const [now, full] of [
    ['energy_now', 'energy_full'],
    ['charge_now', 'charge_full'],
  ] as const) {
    const n = readInt(join(dir, now));
    const f = readInt(join(dir, full));
    if (n !== undefined && f !== undefined && f > 0) return clampPct((100 * n) / f);
  }
  return undefined;
}

function clampPct(p: number): number {
  return Math.max(0, Math.min(100, Math.round(p * 10) / 10));
}

const RAIL_CHIPS = new Set(['ina219', 'ina220', 'ina226', 'ina230', 'ina231', 'ina3221']);

/** INA2xx / INA3221 channels from class/hwmon: bus voltage (inN_input, mV), current (currN_input, mA). */
export function readRails(sysfsRoot: string, at_ms: number): RailReading[] {
  const base = join(sysfsRoot, 'class', 'hwmon');
  const rails: RailReading[] = [];
  for (const hw of listDir(base)) {
    const dir = join(base, hw);
    const chip = readText(join(dir, 'name'));
    if (chip === undefined || !RAIL_CHIPS.has(chip)) continue;
    for (let ch = 1; ch <= 8; ch++) {
      const milliamps = readInt(join(dir, `curr${ch}_input`));
      if (milliamps === undefined) continue;
      const millivolts = readInt(join(dir, `in${ch}_input`));
      const microwatts = readInt(join(dir, `power${ch}_input`));
      const voltage_v = millivolts === undefined ? undefined : millivolts / 1000;
      const current_a = milliamps / 1000;
      const power_w = microwatts !== undefined ? microwatts / 1e6 : voltage_v !== undefined ? round3(voltage_v * current_a) : undefined;
      rails.push({ chip, label: readText(join(dir, `in${ch}_label`)) ?? `in${ch}`, voltage_v, current_a, power_w, source: dir, at_ms });
    }
  }
  return rails;
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}

/**
 * A UPS HAT's own report, e.g. `{"capacity": 76, "status": "Discharging", "voltage": 3.91}` or
 * `{"capacity": 76, "charging": true}`. Returns undefined when the payload has no usable capacity.
 */
export function parseMqttBattery(payload: unknown, at_ms: number, source = 'mqtt'): BatteryReading | undefined {
  if (typeof payload !== 'object' || payload === null || Array.isArray(payload)) return undefined;
  const p = payload as Record<string, unknown> & MqttBatteryPayload;
  const num = (v: unknown): number | undefined => {
    const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : v;
    return typeof n === 'number' && Number.isFinite(n) ? n : undefined;
  };
  const capacity = num(p.capacity);
  if (capacity === undefined || capacity < 0 || capacity > 100) return undefined;
  let status: BatteryStatus = normalizeStatus(typeof p.status === 'string' ? p.status : undefined);
  if (status === 'unknown' && typeof p.charging === 'boolean') status = p.charging ? 'charging' : 'discharging';
  const voltage = num(p.voltage);
  return { name: 'mqtt', kind: 'mqtt', capacity_pct: clampPct(capacity), status, voltage_v: voltage, source, at_ms };
}

/**
 * Is external power present? Any online Mains/USB supply says yes; a charging or full battery says
 * yes; all supplies offline (or a discharging battery and no supply files) says no; nothing known
 * is undefined.
 */
export function externalPower(mains: MainsReading[], battery: BatteryReading | undefined): boolean | undefined {
  if (mains.some((m) => m.online)) return true;
  if (battery && (battery.status === 'charging' || battery.status === 'full')) return true;
  if (mains.length > 0) return false;
  if (battery && battery.status === 'discharging') return false;
  return undefined;
}
