/**
 * The operating-level policy: a pure function of device readings, config, queue depth, the active
 * profile and the previous decision. Device state picks the level; the input text never does.
 *
 * How the level is found, on a ladder of names best first (index 0 = best):
 *   top      = the profile's max_level (or the top of the ladder)
 *   steps    = thermal steps (1 or 2) + queue steps + throttling steps, each relative to `top`
 *   caps     = absolute limits: the battery threshold's level, the last rung at a critical trip
 *   target   = max(top + steps, caps), clamped to the ladder
 *   level    = target, unless the last change was less than dwell_ms ago (then the previous level)
 * Hysteresis keeps each rule's step until the reading is clearly back (5 °C / 5 % by default).
 */
import { SedacError } from '../errors.js';
import type { Readings, ThrottleReading } from '../sensors/types.js';
import { DEFAULT_LEVELS, type BatteryRules, type PolicyConfig, type Profile, type QueueRules, type ThermalRules, type ThrottleRules } from './config.js';

/** What the policy remembers between decisions (pass `decision.state` back as `previous`). */
export interface PolicyState {
  level: string;
  /** When `level` last changed, epoch ms. */
  changed_at_ms: number;
  /** 0 none, 1 one down, 2 two down, 3 at/above the critical trip. */
  thermal_step: number;
  /** Number of battery thresholds in force (0 = none). */
  battery_step: number;
}

export interface PolicyInput {
  /** Latest sensor snapshot; undefined when nothing was read yet. */
  readings: Readings | undefined;
  config: PolicyConfig;
  queueDepth: number;
  /** Name of the active profile (see activeProfile()); undefined for none. */
  profile?: string | undefined;
  previous?: PolicyState | undefined;
  /** Epoch ms. */
  now: number;
  /** A request's quality floor (a level name): see applyFloor(). */
  requestFloor?: string | undefined;
  /** The ladder from calibration, best first; default config.levels. */
  ladder?: readonly string[] | undefined;
}

export interface PolicyDecision {
  /** The device's operating level. */
  level: string;
  index: number;
  /** What the rules ask for now; differs from `level` while the dwell time holds it. */
  target: string;
  /** Why, one short sentence per rule in force, for the `policy` topic and every response. */
  reasons: string[];
  /** A critical cause is in force (critical trip, critical battery threshold). */
  critical: boolean;
  changed: boolean;
  held: boolean;
  profile: string | undefined;
  /** The level a request with `requestFloor` is served at (only when one was given). */
  served_level?: string;
  state: PolicyState;
}

const fmt = (x: number): string => (Math.round(x * 10) / 10).toString();

/** Merge a profile's partial rule overrides over the base rules. */
function rules<T extends object>(base: T, override: Partial<T> | undefined): T {
  return override ? { ...base, ...override } : base;
}

/** Resolve a level name on the ladder; names missing from a calibrated ladder keep their default-ladder position. */
export function levelIndex(ladder: readonly string[], name: string): number | undefined {
  const i = ladder.indexOf(name);
  if (i >= 0) return i;
  const d = DEFAULT_LEVELS.indexOf(name);
  return d >= 0 ? Math.min(d, ladder.length - 1) : undefined;
}

interface RuleResult {
  /** Levels down from the top. */
  steps: number;
  /** Worst-level index imposed (absolute), if any. */
  cap: number | undefined;
  critical: boolean;
  reasons: string[];
}

function thermalRule(r: ThermalRules, readings: Readings | undefined, prevStep: number, last: number): RuleResult & { step: number } {
  const t = readings?.thermal;
  if (!r.enabled || !t) return { steps: 0, cap: undefined, critical: false, reasons: [], step: 0 };
  const passive = r.passive_c ?? t.passive_c ?? r.fallback_passive_c;
  const critical = r.critical_c ?? t.critical_c ?? r.fallback_critical_c;
  const thresholds = [passive - r.one_down_margin_c, passive - r.two_down_margin_c, critical];
  const stepFor = (temp: number): number => (temp >= critical ? 3 : temp >= (thresholds[1] as number) ? 2 : temp >= (thresholds[0] as number) ? 1 : 0);
  const step = Math.max(stepFor(t.temp_c), Math.min(prevStep, stepFor(t.temp_c + r.hysteresis_c)));
  const where = `${t.type} ${fmt(t.temp_c)} °C`;
  if (step === 0) return { steps: 0, cap: undefined, critical: false, reasons: [], step };
  if (step === 3) return { steps: 0, cap: last, critical: true, reasons: [`${where} at/above critical trip ${fmt(critical)} °C: critical`], step };
  const threshold = thresholds[step - 1] as number;
  const margin = step === 1 ? r.one_down_margin_c : r.two_down_margin_c;
  const held = stepFor(t.temp_c) < step ? ` (held until below ${fmt(threshold - r.hysteresis_c)} °C)` : '';
  const words = step === 1 ? 'one level down' : 'two levels down';
  return { steps: step, cap: undefined, critical: false, reasons: [`${where} ≥ ${fmt(threshold)} °C (passive ${fmt(passive)} − ${fmt(margin)}): ${words}${held}`], step };
}

function batteryRule(r: BatteryRules, readings: Readings | undefined, prevStep: number, ladder: readonly string[]): RuleResult & { step: number } {
  const none = { steps: 0, cap: undefined, critical: false, reasons: [], step: 0 };
  const b = readings?.power.battery;
  if (!r.enabled || !b || b.capacity_pct === undefined) return none;
  const onBattery = b.status === 'discharging' || readings?.power.external_power === false;
  if (!onBattery) return none;
  const thresholds = [...r.thresholds].sort((a, z) => z.below_pct - a.below_pct);
  const cap = b.capacity_pct;
  const stepFor = (pct: number): number => thresholds.filter((th) => pct < th.below_pct).length;
  const step = Math.max(stepFor(cap), Math.min(prevStep, stepFor(cap - r.hysteresis_pct)));
  if (step === 0) return none;
  const th = thresholds[step - 1] as (typeof thresholds)[number];
  const index = levelIndex(ladder, th.level) ?? ladder.length - 1;
  const held = stepFor(cap) < step ? ` (held until ${fmt(th.below_pct + r.hysteresis_pct)} %)` : '';
  const last = ladder.length - 1;
  return {
    steps: 0,
    cap: index,
    critical: index === last,
    reasons: [`battery ${fmt(cap)} % < ${fmt(th.below_pct)} % on battery: at most ${ladder[index]}${held}`],
    step,
  };
}

function queueRule(r: QueueRules, depth: number): RuleResult {
  if (!r.enabled || depth <= r.depth || r.steps === 0) return { steps: 0, cap: undefined, critical: false, reasons: [] };
  return { steps: r.steps, cap: undefined, critical: false, reasons: [`queue depth ${depth} > ${r.depth}: ${r.steps} level(s) down`] };
}

function throttleRule(r: ThrottleRules, t: ThrottleReading | undefined): RuleResult {
  const set = t && r.enabled ? r.flags.filter((f) => t[f]) : [];
  if (set.length === 0 || r.steps === 0) return { steps: 0, cap: undefined, critical: false, reasons: [] };
  return { steps: r.steps, cap: undefined, critical: false, reasons: [`${set.join(', ')} (${t?.source}): ${r.steps} level(s) down`] };
}

/** Decide the device's operating level. Pure: same input, same output. */
export function decideLevel(input: PolicyInput): PolicyDecision {
  const { config, previous, now } = input;
  const ladder = input.ladder && input.ladder.length > 0 ? input.ladder : config.levels;
  const last = ladder.length - 1;
  const reasons: string[] = [];

  let profile: Profile | undefined;
  let top = 0;
  if (input.profile !== undefined) {
    profile = config.profiles[input.profile];
    if (!profile) reasons.push(`unknown profile '${input.profile}' ignored`);
    else if (profile.max_level !== undefined) {
      const i = levelIndex(ladder, profile.max_level);
      if (i === undefined) reasons.push(`profile '${input.profile}' names unknown level '${profile.max_level}'`);
      else if (i > 0) {
        top = i;
        reasons.push(`profile '${input.profile}' caps at ${ladder[i]}`);
      }
    }
  }

  const thermal = thermalRule(rules(config.thermal, profile?.thermal), input.readings, previous?.thermal_step ?? 0, last);
  const battery = batteryRule(rules(config.battery, profile?.battery), input.readings, previous?.battery_step ?? 0, ladder);
  const queue = queueRule(rules(config.queue, profile?.queue), input.queueDepth);
  const throttle = throttleRule(rules(config.throttle, profile?.throttle), input.readings?.throttle);
  const results = [thermal, battery, queue, throttle];

  let index = top + results.reduce((s, r) => s + r.steps, 0);
  for (const r of results) if (r.cap !== undefined) index = Math.max(index, r.cap);
  index = Math.min(Math.max(index, 0), last);
  const critical = results.some((r) => r.critical);
  for (const r of results) reasons.push(...r.reasons);
  if (reasons.length === 0) reasons.push('nominal: no rule in force');
  const target = ladder[index] as string;

  let level = target;
  let held = false;
  const prevIndex = previous ? ladder.indexOf(previous.level) : -1;
  if (previous && prevIndex >= 0 && previous.level !== target) {
    const left = previous.changed_at_ms + config.dwell_ms - now;
    const bypass = config.dwell_bypass_critical && critical && index > prevIndex;
    if (left > 0 && !bypass) {
      level = previous.level;
      held = true;
      reasons.push(`held at ${level} for ${fmt(left / 1000)} s more (dwell ${fmt(config.dwell_ms / 1000)} s), target ${target}`);
    }
  }
  const changed = !previous || previous.level !== level;
  const decision: PolicyDecision = {
    level,
    index: ladder.indexOf(level),
    target,
    reasons,
    critical,
    changed,
    held,
    profile: profile ? input.profile : undefined,
    state: { level, changed_at_ms: changed ? now : (previous as PolicyState).changed_at_ms, thermal_step: thermal.step, battery_step: battery.step },
  };
  if (input.requestFloor !== undefined) {
    const served = applyFloor(decision, input.requestFloor, config, ladder);
    decision.served_level = served.level;
    decision.reasons = served.reasons;
  }
  return decision;
}

/**
 * The level a request is served at when it asks for a quality floor (`quality: "exact"`): the
 * better of the device level and the floor. While the device is critical and
 * `refuse_floor_when_critical` is set, a floor better than the device level is refused with
 * E_DEGRADED. An unknown level name is E_BAD_REQUEST.
 */
export function applyFloor(
  decision: Pick<PolicyDecision, 'level' | 'critical' | 'reasons'>,
  floor: string,
  config: Pick<PolicyConfig, 'refuse_floor_when_critical' | 'levels'>,
  ladder: readonly string[] = config.levels,
): { level: string; reasons: string[] } {
  const want = ladder.indexOf(floor);
  if (want < 0) throw new SedacError('E_BAD_REQUEST', `unknown quality '${floor}'; levels are ${ladder.join(', ')}`, { quality: floor });
  const current = ladder.indexOf(decision.level);
  if (want >= current) return { level: decision.level, reasons: decision.reasons };
  if (decision.critical && config.refuse_floor_when_critical) {
    throw new SedacError('E_DEGRADED', `quality '${floor}' refused: device is critical at ${decision.level} (${decision.reasons.join('; ')})`, {
      level: decision.level,
      quality: floor,
      reasons: decision.reasons,
    });
  }
  return { level: floor, reasons: [...decision.reasons, `quality floor '${floor}' requested`] };
}
