/**
 * Throttling flags of a Raspberry Pi: `vcgencmd get_throttled` where the command exists (spawned
 * with a timeout), else the firmware's under-voltage alarm exposed by the `rpi_volt` hwmon device
 * (in0_lcrit_alarm), which is readable inside containers without /dev/vchiq.
 */
import { execFile, type ExecFileException } from 'node:child_process';
import { join, listDir, readInt, readText } from './sysfs.js';
import type { ThrottleReading } from './types.js';

/** Bits of get_throttled (Raspberry Pi firmware documentation). */
export const THROTTLE_BITS = {
  under_voltage: 0,
  arm_freq_capped: 1,
  throttled: 2,
  soft_temp_limit: 3,
  under_voltage_occurred: 16,
  arm_freq_capped_occurred: 17,
  throttled_occurred: 18,
  soft_temp_limit_occurred: 19,
} as const;

/** Decode a get_throttled value into flags. */
export function decodeThrottled(raw: number, source: string, at_ms: number): ThrottleReading {
  const bit = (n: number): boolean => ((raw >>> n) & 1) === 1;
  return {
    raw,
    under_voltage: bit(THROTTLE_BITS.under_voltage),
    arm_freq_capped: bit(THROTTLE_BITS.arm_freq_capped),
    throttled: bit(THROTTLE_BITS.throttled),
    soft_temp_limit: bit(THROTTLE_BITS.soft_temp_limit),
    occurred: {
      under_voltage: bit(THROTTLE_BITS.under_voltage_occurred),
      arm_freq_capped: bit(THROTTLE_BITS.arm_freq_capped_occurred),
      throttled: bit(THROTTLE_BITS.throttled_occurred),
      soft_temp_limit: bit(THROTTLE_BITS.soft_temp_limit_occurred),
    },
    source,
    at_ms,
  };
}

/** Parse `throttled=0x50005` (the whole stdout of vcgencmd get_throttled); undefined if it is not that. */
export function parseGetThrottled(stdout: string): number | undefined {
  const m = /throttled=(0x[0-9a-f]+|\d+)/i.exec(stdout);
  if (!m) return undefined;
  const value = Number(m[1]);
  return Number.isSafeInteger(value) && value >= 0 ? value : undefined;
}

function run(command: string, args: string[], timeoutMs: number): Promise<{ stdout: string } | { error: ExecFileException }> {
  return new Promise((resolve) => {
    execFile(command, args, { timeout: timeoutMs, windowsHide: true, encoding: 'utf8' }, (error, stdout) => {
      resolve(error ? { error } : { stdout });
    });
  });
}

/** Under-voltage alarm of the rpi_volt hwmon device, if there is one. */
export function readRpiVoltAlarm(sysfsRoot: string, at_ms: number): ThrottleReading | undefined {
  const base = join(sysfsRoot, 'class', 'hwmon');
  for (const hw of listDir(base)) {
    const dir = join(base, hw);
    if (readText(join(dir, 'name')) !== 'rpi_volt') continue;
    const path = join(dir, 'in0_lcrit_alarm');
    const alarm = readInt(path);
    if (alarm === undefined) return undefined;
    return decodeThrottled(alarm ? 1 << THROTTLE_BITS.under_voltage : 0, path, at_ms);
  }
  return undefined;
}

export class ThrottleSensor {
  /** Set once vcgencmd turned out not to exist, so it is not spawned on every poll. */
  private missing = false;
  private lastError: string | undefined;

  constructor(
    private readonly command: string,
    private readonly timeoutMs: number,
    private readonly sysfsRoot: string,
  ) {}

  /** Why vcgencmd gave nothing last time (missing, timeout, unparsable output), for `sedac sensors`. */
  get vcgencmdError(): string | undefined {
    return this.lastError;
  }

  async read(now: () => number = Date.now): Promise<ThrottleReading | undefined> {
    if (this.command && !this.missing) {
      const r = await run(this.command, ['get_throttled'], this.timeoutMs);
      if ('stdout' in r) {
        const raw = parseGetThrottled(r.stdout);
        if (raw !== undefined) {
          this.lastError = undefined;
          return decodeThrottled(raw, 'vcgencmd', now());
        }
        this.lastError = `unexpected output: ${JSON.stringify(r.stdout.slice(0, 80))}`;
      } else if (r.error.code === 'ENOENT') {
        this.missing = true;
        this.lastError = `${this.command} not found`;
      } else {
        this.lastError = r.error.killed ? `timed out after ${this.timeoutMs} ms` : r.error.message.split('\n')[0];
      }
    }
    return readRpiVoltAlarm(this.sysfsRoot, now());
  }
}
