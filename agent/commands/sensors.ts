/**
 * `sedac sensors`: what the agent would read on this machine, where from, and the level the policy
 * would pick from it. Read-only; useful on a new board before deploying.
 */
import { readConfigFile } from '../config/load.js';
import { policyConfig, type PolicyConfig } from '../policy/config.js';
import { decideLevel } from '../policy/decide.js';
import { DeviceSensors, withAges } from '../sensors/deviceSensors.js';
import type { Readings, ZoneStatus } from '../sensors/types.js';
import { intOpt, parse } from './args.js';

const USAGE = `usage: sedac sensors [--sysfs ROOT] [--config FILE] [--samples N] [--interval-ms MS] [--no-fallback] [--json]
  --sysfs ROOT       sysfs root to read (default: policy.sensors.sysfs_root, else /sys)
  --config FILE      take the policy and sensors settings from this agent config
  --vcgencmd CMD     vcgencmd command to run (default: policy.sensors.vcgencmd; '' disables)
  --samples N        read N times to fill the median filter (default 1)
  --interval-ms MS   wait between samples (default 1000)
  --no-fallback      do not ask systeminformation when sysfs gives nothing
  --json             print one JSON object instead of text`;

export async function main(argv: string[]): Promise<number> {
  const args = parse(
    argv,
    {
      sysfs: { type: 'string' },
      config: { type: 'string', short: 'c' },
      vcgencmd: { type: 'string' },
      samples: { type: 'string' },
      'interval-ms': { type: 'string' },
      'no-fallback': { type: 'boolean' },
      json: { type: 'boolean' },
    },
    USAGE,
    [0, 0],
  );
  if (!args) return 0;
  const { values } = args;
  const samples = intOpt(values.samples, 'samples', 1, 1);
  const interval = intOpt(values['interval-ms'], 'interval-ms', 1000, 0);

  const policy: PolicyConfig = policyConfig(values.config ? (await readConfigFile(values.config)).policy : {});
  const sensorsCfg = { ...policy.sensors };
  if (values.sysfs !== undefined) sensorsCfg.sysfs_root = values.sysfs;
  if (values.vcgencmd !== undefined) sensorsCfg.vcgencmd = values.vcgencmd;
  if (values['no-fallback']) sensorsCfg.systeminformation_fallback = false;

  const sensors = new DeviceSensors(sensorsCfg);
  let readings: Readings = await sensors.read();
  for (let i = 1; i < samples; i++) {
    await new Promise((r) => setTimeout(r, interval));
    readings = await sensors.read();
  }
  const now = Date.now();
  const decision = decideLevel({ readings, config: policy, queueDepth: 0, profile: policy.profile, now });

  if (values.json) {
    console.log(
      JSON.stringify(
        {
          sysfs_root: sensorsCfg.sysfs_root,
          readings: withAges(readings, now),
          zones: sensors.zones,
          batteries: sensors.batteries,
          vcgencmd_error: sensors.vcgencmdError ?? null,
          policy: { level: decision.level, reasons: decision.reasons, critical: decision.critical },
        },
        (_key, value: unknown) => (value === undefined ? null : value),
        2,
      ),
    );
    return 0;
  }
  console.log(report(readings, sensors, { ...policy, sensors: sensorsCfg }, decision.level, decision.reasons).join('\n'));
  return 0;
}

const c1 = (x: number | undefined): string => (x === undefined ? '—' : `${(Math.round(x * 10) / 10).toFixed(1)} °C`);

function zoneLine(z: ZoneStatus, chosen: string | undefined): string {
  const state = z.zone === chosen ? 'USED' : (z.rejected ?? (z.allowed ? 'allowed' : 'not in allow-list'));
  return `    ${z.zone.padEnd(15)} ${z.type.padEnd(18)} ${c1(z.temp_c).padStart(9)}  ${state}`;
}

function report(r: Readings, sensors: DeviceSensors, policy: PolicyConfig, level: string, reasons: string[]): string[] {
  const out = [`sysfs root: ${policy.sensors.sysfs_root}`, ''];
  const t = r.thermal;
  if (t) {
    const trip = (v: number | undefined, fallback: number, override: number | undefined): string =>
      override !== undefined ? `${c1(override)} (config)` : v !== undefined ? `${c1(v)} (zone)` : `${c1(fallback)} (fallback)`;
    out.push(`temperature  ${c1(t.temp_c)} median of ${t.samples} (last ${c1(t.raw_c)})  ${t.type} via ${t.chosen_by}`);
    out.push(`             from ${t.source}`);
    out.push(`             passive trip ${trip(t.passive_c, policy.thermal.fallback_passive_c, policy.thermal.passive_c)}, critical trip ${trip(t.critical_c, policy.thermal.fallback_critical_c, policy.thermal.critical_c)}`);
  } else {
    out.push(`temperature  none (no usable thermal zone${policy.sensors.systeminformation_fallback ? '; systeminformation found none' : ''})`);
  }
  if (sensors.zones.length > 0) {
    out.push('  zones:');
    for (const z of sensors.zones) out.push(zoneLine(z, t?.zone));
  }
  out.push('');
  const th = r.throttle;
  if (th) {
    const now = (['under_voltage', 'arm_freq_capped', 'throttled', 'soft_temp_limit'] as const).filter((k) => th[k]);
    const past = (['under_voltage', 'arm_freq_capped', 'throttled', 'soft_temp_limit'] as const).filter((k) => th.occurred[k]);
    out.push(`throttling   0x${th.raw.toString(16)}: now ${now.join(', ') || 'none'}; since boot ${past.join(', ') || 'none'}  (${th.source})`);
  } else {
    out.push('throttling   none known');
  }
  if (sensors.vcgencmdError) out.push(`             vcgencmd: ${sensors.vcgencmdError}`);
  out.push('');
  const b = r.power.battery;
  if (b) {
    const v = b.voltage_v === undefined ? '' : ` ${b.voltage_v.toFixed(2)} V`;
    out.push(`battery      ${b.name} (${b.kind}) ${b.capacity_pct ?? '?'} % ${b.status}${v}  (${b.source})`);
  } else {
    out.push('battery      none');
  }
  const ext = r.power.external_power;
  const supplies = r.power.mains.map((m) => `${m.name} ${m.kind} ${m.online ? 'online' : 'offline'}`).join(', ');
  out.push(`external     ${ext === undefined ? 'unknown' : ext ? 'yes' : 'no'}${supplies ? ` (${supplies})` : ''}`);
  for (const rail of r.power.rails) {
    const f = (x: number | undefined, u: string): string => (x === undefined ? `? ${u}` : `${x.toFixed(2)} ${u}`);
    out.push(`rail         ${rail.label.padEnd(16)} ${f(rail.voltage_v, 'V')} ${f(rail.current_a, 'A')} ${f(rail.power_w, 'W')}  (${rail.chip}, ${rail.source})`);
  }
  out.push('', `policy       level ${level} on ladder ${policy.levels.join(' > ')}`);
  for (const reason of reasons) out.push(`             ${reason}`);
  return out;
}
