/**
 * Which profile is active at a given moment: among `schedules: [{cron, profile}]`, the one that
 * fired most recently at or before that moment wins (so "0 22 * * *" → night and "0 7 * * *" → day
 * alternate). Pure: the agent only wires node-cron timers that call this again when one fires.
 * Cron syntax is node-cron's (validated and expanded by node-cron itself); day-of-month and
 * day-of-week must both match, as node-cron does it.
 */
import { parse, validate, type ParsedFields } from 'node-cron';
import type { Schedule } from './config.js';

/** Wall-clock parts in the schedule's time zone. */
interface Wall {
  year: number;
  month: number; // 1-12
  day: number;
  hour: number;
  minute: number;
  second: number;
}

export interface ActiveProfile {
  /** The active profile, or the fallback when no schedule has fired within the look-back. */
  profile: string | undefined;
  /** Index into schedules of the one that fired last. */
  index?: number;
  /** When it fired, wall clock in the schedule time zone, `YYYY-MM-DD HH:MM:SS`. */
  fired_at?: string;
}

/** Syntax errors of each schedule, `[]` when all are valid. */
export function scheduleErrors(schedules: readonly Schedule[]): string[] {
  return schedules.flatMap((s, i) => (validate(s.cron) ? [] : [`schedules[${i}].cron '${s.cron}' is not a valid cron expression`]));
}

function wallClock(date: Date, timezone: string | undefined): Wall {
  if (!timezone) {
    return { year: date.getFullYear(), month: date.getMonth() + 1, day: date.getDate(), hour: date.getHours(), minute: date.getMinutes(), second: date.getSeconds() };
  }
  const parts = new Intl.DateTimeFormat('en-US', {
    timeZone: timezone,
    hourCycle: 'h23',
    year: 'numeric',
    month: 'numeric',
    day: 'numeric',
    hour: 'numeric',
    minute: 'numeric',
    second: 'numeric',
  }).formatToParts(date);
  const get = (t: string): number => Number(parts.find((p) => p.type === t)?.value);
  return { year: get('year'), month: get('month'), day: get('day'), hour: get('hour'), minute: get('minute'), second: get('second') };
}

const lastDayOfMonth = (y: number, m: number): number => new Date(Date.UTC(y, m, 0)).getUTCDate();
const weekday = (y: number, m: number, d: number): number => new Date(Date.UTC(y, m - 1, d)).getUTCDay();

/** The weekday nearest to `target` inside the month (cron `W`). */
function nearestWeekday(y: number, m: number, target: number): number {
  const last = lastDayOfMonth(y, m);
  if (target < 1 || target > last) return -1;
  const wd = weekday(y, m, target);
  if (wd === 6) return target === 1 ? 3 : target - 1;
  if (wd === 0) return target === last ? target - 2 : target + 1;
  return target;
}

function dayOfMonthMatches(field: ParsedFields['dayOfMonth'], y: number, m: number, d: number): boolean {
  const last = lastDayOfMonth(y, m);
  return field.some((v) => {
    if (typeof v === 'number') return v === d;
    if (v === 'L') return d === last;
    const w = /^(\d{1,2}|L)W$/.exec(v);
    if (w) return nearestWeekday(y, m, w[1] === 'L' ? last : Number(w[1])) === d;
    const off = /^L-(\d{1,2})$/.exec(v);
    return off ? last - Number(off[1]) === d : false;
  });
}

function dayOfWeekMatches(field: ParsedFields['dayOfWeek'], y: number, m: number, d: number): boolean {
  const wd = weekday(y, m, d);
  return field.some((v) => {
    if (typeof v === 'number') return v % 7 === wd;
    const nth = /^([0-7])#([1-5])$/.exec(v);
    if (nth) return Number(nth[1]) % 7 === wd && Math.floor((d - 1) / 7) + 1 === Number(nth[2]);
    const lastOf = /^([0-7])L$/i.exec(v);
    return lastOf ? Number(lastOf[1]) % 7 === wd && d + 7 > lastDayOfMonth(y, m) : false;
  });
}

/** Latest (h, m, s) allowed by the fields that is ≤ bound; undefined when none. */
function latestTimeOnDay(f: ParsedFields, bound: [number, number, number]): [number, number, number] | undefined {
  const desc = (xs: number[]): number[] => [...xs].sort((a, b) => b - a);
  for (const h of desc(f.hour)) {
    if (h > bound[0]) continue;
    for (const mi of desc(f.minute)) {
      if (h === bound[0] && mi > bound[1]) continue;
      for (const s of desc(f.second)) {
        if (h === bound[0] && mi === bound[1] && s > bound[2]) continue;
        return [h, mi, s];
      }
    }
  }
  return undefined;
}

/** Days searched backwards for the last firing: eight years covers Feb 29 schedules. */
const LOOKBACK_DAYS = 8 * 366;

/** The last wall-clock time ≤ `at` when the expression fired, as a sortable tuple; undefined if none within the look-back. */
export function lastFiring(cron: string, at: Wall): number[] | undefined {
  const f = parse(cron);
  let { year, month, day } = at;
  for (let i = 0; i < LOOKBACK_DAYS; i++) {
    if (f.month.includes(month) && dayOfMonthMatches(f.dayOfMonth, year, month, day) && dayOfWeekMatches(f.dayOfWeek, year, month, day)) {
      const t = latestTimeOnDay(f, i === 0 ? [at.hour, at.minute, at.second] : [23, 59, 59]);
      if (t) return [year, month, day, ...t];
    }
    const prev = new Date(Date.UTC(year, month - 1, day - 1));
    ({ year, month, day } = { year: prev.getUTCFullYear(), month: prev.getUTCMonth() + 1, day: prev.getUTCDate() });
  }
  return undefined;
}

function compareTuples(a: number[], b: number[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/**
 * The profile in force at `date`: the schedule that fired last (ties: the later entry in the
 * list), or `fallback` when none fired within eight years. Invalid expressions are skipped; check
 * them with scheduleErrors() when the config is loaded.
 */
export function activeProfile(schedules: readonly Schedule[], date: Date, options: { timezone?: string | undefined; fallback?: string | undefined } = {}): ActiveProfile {
  const at = wallClock(date, options.timezone);
  let best: { index: number; when: number[] } | undefined;
  schedules.forEach((s, index) => {
    if (!validate(s.cron)) return;
    const when = lastFiring(s.cron, at);
    if (when && (!best || compareTuples(when, best.when) >= 0)) best = { index, when };
  });
  if (!best) return { profile: options.fallback };
  const [y, mo, d, h, mi, s] = best.when.map((n) => String(n).padStart(2, '0'));
  return { profile: (schedules[best.index] as Schedule).profile, index: best.index, fired_at: `${y}-${mo}-${d} ${h}:${mi}:${s}` };
}
