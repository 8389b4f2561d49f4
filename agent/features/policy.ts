/**
 * The device-aware policy feature: polls the sensors every `policy.poll_interval_ms`, runs
 * decideLevel, publishes the retained `policy` topic whenever the decision changes (level, target,
 * reasons, profile), and serves as the agent's LevelProvider so that every request runs at — and
 * every response names — the current level and its reasons. node-cron timers switch profiles;
 * a UPS HAT's battery topic feeds the sensors.
 *
 * Must start before `inference` (it replaces ctx.levels in start()).
 */
import cron, { type ScheduledTask } from 'node-cron';
import { SedacError } from '../errors.js';
import { policyConfig, policyProblems, type PolicyConfig } from '../policy/config.js';
import { applyFloor, decideLevel, levelIndex, type PolicyDecision } from '../policy/decide.js';
import { activeProfile } from '../policy/schedule.js';
import { DeviceSensors, withAges, type DeviceSensorsOptions } from '../sensors/deviceSensors.js';
import type { Readings } from '../sensors/types.js';
import type { InboundMessage } from '../transport/mqttClient.js';
import type { AgentContext, Feature, FeatureFactory, LevelDecision, LevelProvider, LevelRequest } from './context.js';

export interface PolicyFeatureOptions {
  /** Sensor options (tests disable the systeminformation fallback, or pin the clock). */
  sensors?: DeviceSensorsOptions;
  /** Clock, epoch ms; default Date.now. */
  now?: () => number;
}

export function policyFeature(opts: PolicyFeatureOptions = {}): FeatureFactory {
  return (ctx) => new PolicyFeature(ctx, opts);
}

/** The level name engines use for "all layers" (no calibrated level). */
const FULL = 'full';

export class PolicyFeature implements Feature, LevelProvider {
  readonly name = 'policy';
  private readonly config: PolicyConfig;
  private readonly now: () => number;
  private sensors: DeviceSensors | undefined;
  private decision: PolicyDecision | undefined;
  private readings: Readings | undefined;
  private profile: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  private tasks: ScheduledTask[] = [];
  private polling: Promise<void> | undefined;
  private published = '';
  private stopped = false;

  constructor(
    private readonly ctx: AgentContext,
    private readonly opts: PolicyFeatureOptions = {},
  ) {
    this.config = policyConfig(ctx.config.policy);
    this.now = opts.now ?? Date.now;
  }

  async start(): Promise<void> {
    const problems = policyProblems(this.config);
    if (problems.length > 0) throw new SedacError('E_CONFIG_INVALID', problems.join('; '), { problems });
    const c = this.config;
    this.sensors = new DeviceSensors(c.sensors, { now: this.now, ...this.opts.sensors });
    this.profile = this.scheduledProfile();
    c.schedules.forEach((s, i) => {
      const task = cron.schedule(s.cron, () => this.onSchedule(), { name: `policy-schedule-${i}`, ...(c.timezone !== undefined && { timezone: c.timezone }) });
      this.tasks.push(task);
    });
    if (c.sensors.battery_topic) this.ctx.transport.subscribe(c.sensors.battery_topic, 1, (m) => this.onBattery(m));
    await this.poll();
    this.ctx.levels = this;
    this.timer = setInterval(() => void this.poll(), c.poll_interval_ms);
    this.ctx.log.info('policy running', { level: this.decision?.level, poll_ms: c.poll_interval_ms, profile: this.profile ?? null, zone: this.readings?.thermal?.type ?? null });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    for (const t of this.tasks.splice(0)) await t.destroy();
    const topic = this.config.sensors.battery_topic;
    if (topic) await this.ctx.transport.unsubscribe(topic);
    await this.polling;
  }

  /** The device's level now (health). */
  current(): LevelDecision | undefined {
    return this.decision ? { level: this.decision.level, reasons: this.decision.reasons, ...(this.readings && { readings: withAges(this.readings, Date.now()) }) } : undefined;
  }

  /**
   * The level one request runs at. The device level, mapped onto the model's calibrated ladder;
   * a `quality` floor or a better `level` is honoured unless the device is critical and
   * `refuse_floor_when_critical` is set (E_DEGRADED); a worse `level` is always granted.
   * A model without calibrated levels runs at full depth.
   */
  decide(req: LevelRequest): LevelDecision {
    const d = this.decision;
    if (!d) return { level: undefined, reasons: ['policy not ready'] };
    const ladder = req.model.levels;
    const reasons = [...d.reasons];
    const wish = req.level ?? req.quality;
    const refuse = (what: string): never => {
      throw new SedacError('E_DEGRADED', `${what} refused: device is critical at ${d.level} (${d.reasons.join('; ')})`, { level: d.level, reasons: d.reasons });
    };
    if (ladder.length === 0) {
      // Uncalibrated model: full depth whatever the level; the policy still reports and refuses.
      const wishIndex = wish === undefined ? Infinity : this.config.levels.indexOf(wish);
      if (d.critical && this.config.refuse_floor_when_critical && wishIndex < d.index) refuse(`'${wish}'`);
      return { level: undefined, reasons: [...reasons, `model ${req.model.name} has no calibrated levels: full depth`] };
    }
    const deviceIndex = levelIndex(ladder, d.level) ?? ladder.length - 1;
    const device = ladder[deviceIndex] as string;
    if (device !== d.level) reasons.push(`device level ${d.level} is ${device} on model ${req.model.name}`);
    if (wish === FULL) {
      if (d.critical && this.config.refuse_floor_when_critical) refuse(`'${FULL}'`);
      return { level: undefined, reasons: [...reasons, `'${FULL}' requested`] };
    }
    if (req.level !== undefined) {
      const i = ladder.indexOf(req.level);
      if (i < 0) throw new SedacError('E_BAD_REQUEST', `unknown level '${req.level}'; model ${req.model.name} has: ${[...ladder, FULL].join(', ')}`);
      if (i >= deviceIndex) return { level: req.level, reasons: [...reasons, `level '${req.level}' requested`] };
    }
    if (wish !== undefined) return applyFloor({ level: device, critical: d.critical, reasons }, wish, this.config, ladder);
    return { level: device, reasons };
  }

  /** One poll: read sensors, decide, publish when the decision changed. Never overlaps itself. */
  poll(): Promise<void> {
    this.polling ??= this.pollOnce().finally(() => (this.polling = undefined));
    return this.polling;
  }

  private async pollOnce(): Promise<void> {
    if (!this.sensors || this.stopped) return;
    let readings: Readings;
    try {
      readings = await this.sensors.read();
    } catch (err) {
      // Sensors do not throw by design; if one ever does, keep the last decision.
      this.ctx.log.error('sensor read failed', { err });
      return;
    }
    const now = this.now();
    const previous = this.decision;
    const decision = decideLevel({
      readings,
      config: this.config,
      queueDepth: this.ctx.metrics.queueDepth,
      profile: this.profile,
      previous: previous?.state,
      now,
    });
    this.readings = readings;
    this.decision = decision;
    if (decision.changed) {
      this.ctx.log.info('operating level', { level: decision.level, from: previous?.level ?? null, reasons: decision.reasons });
    }
    const signature = JSON.stringify([decision.level, decision.target, decision.critical, decision.profile, decision.reasons]);
    if (signature !== this.published) {
      this.published = signature;
      await this.ctx.transport.setRetained(this.ctx.topics.policy, this.payload(decision, readings, now));
    }
  }

  /** The retained `policy` message. */
  private payload(d: PolicyDecision, readings: Readings, now: number): string {
    const body = {
      level: d.level,
      target: d.target,
      critical: d.critical,
      held: d.held,
      profile: d.profile ?? null,
      levels: this.config.levels,
      reasons: d.reasons,
      since: new Date(d.state.changed_at_ms).toISOString(),
      time: new Date(now).toISOString(),
      queue_depth: this.ctx.metrics.queueDepth,
      readings: withAges(readings, now),
    };
    return JSON.stringify(body, (_key, value: unknown) => (value === undefined ? null : value));
  }

  private scheduledProfile(): string | undefined {
    return activeProfile(this.config.schedules, new Date(this.now()), { timezone: this.config.timezone, fallback: this.config.profile }).profile;
  }

  private onSchedule(): void {
    const next = this.scheduledProfile();
    if (next === this.profile) return;
    this.ctx.log.info('policy profile', { profile: next ?? null, from: this.profile ?? null });
    this.profile = next;
    void this.poll();
  }

  private onBattery(msg: InboundMessage): void {
    let payload: unknown;
    try {
      payload = JSON.parse(msg.payload.toString('utf8'));
    } catch {
      payload = undefined;
    }
    if (!this.sensors?.injectBattery(payload)) {
      this.ctx.transport.countDropped();
      this.ctx.log.warn('battery message ignored: expected JSON {capacity, status|charging, voltage}', { topic: msg.topic });
      return;
    }
    void this.poll();
  }
}
