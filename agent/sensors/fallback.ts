/**
 * systeminformation as the last resort, used only when sysfs gave no temperature or no battery
 * (other OSes, unusual kernels). Kept behind one function so tests and `--no-fallback` can turn it
 * off; the module is loaded lazily so boards that never need it never pay for it.
 */
import type { BatteryReading, ThermalReading } from './types.js';

export interface FallbackReadings {
  thermal: ThermalReading | undefined;
  battery: BatteryReading | undefined;
  /** systeminformation's acConnected, when it has a battery to ask about. */
  external_power: boolean | undefined;
}

export type FallbackReader = (want: { thermal: boolean; battery: boolean }) => Promise<FallbackReadings>;

function finite(x: unknown): x is number {
  return typeof x === 'number' && Number.isFinite(x);
}

/** Ask systeminformation for what sysfs did not give. Errors become "nothing known". */
export const systeminformationFallback: FallbackReader = async (want) => {
  const out: FallbackReadings = { thermal: undefined, battery: undefined, external_power: undefined };
  if (!want.thermal && !want.battery) return out;
  let si: typeof import('systeminformation');
  try {
    si = await import('systeminformation');
  } catch {
    return out;
  }
  if (want.thermal) {
    try {
      const t = await si.cpuTemperature();
      const temp = finite(t.main) ? t.main : finite(t.max) ? t.max : undefined;
      if (temp !== undefined && temp > -40 && temp < 150) {
        out.thermal = {
          zone: 'systeminformation',
          type: 'cpu',
          temp_c: temp,
          raw_c: temp,
          samples: 1,
          passive_c: undefined,
          critical_c: undefined,
          chosen_by: 'fallback',
          source: 'systeminformation',
          at_ms: Date.now(),
        };
      }
    } catch {
      // nothing known
    }
  }
  if (want.battery) {
    try {
      const b = await si.battery();
      if (b.hasBattery && finite(b.percent)) {
        out.battery = {
          name: 'systeminformation',
          kind: 'systeminformation',
          capacity_pct: b.percent,
          status: b.isCharging ? 'charging' : b.acConnected ? 'not_charging' : 'discharging',
          voltage_v: finite(b.voltage) && b.voltage > 0 ? b.voltage : undefined,
          source: 'systeminformation',
          at_ms: Date.now(),
        };
        out.external_power = b.acConnected;
      }
    } catch {
      // nothing known
    }
  }
  return out;
};
