/**
 * systemd integration (Type=notify): READY=1 once the features are up, WATCHDOG=1 every half
 * WatchdogSec while healthy, STOPPING=1 when stopping. Inactive without $NOTIFY_SOCKET.
 *
 * Node has no unix datagram sockets, so notifications go through the `systemd-notify` binary; the
 * unit sets NotifyAccess=all because that process is a child of the main PID. systemd ≥ 246 makes
 * systemd-notify wait until the manager has read the message, so the child exiting first is safe.
 *
 * Healthy means: the event loop runs (this timer fires at all) and no inference has been running
 * longer than `stuckMs` (a hung ORT call). A broker outage is not unhealthy: restarting the agent
 * does not bring a broker back, and the MQTT supervisor keeps retrying.
 */
import { execFile } from 'node:child_process';
import type { AgentContext, Feature, FeatureFactory } from './context.js';

export type Notify = (assignments: string[]) => Promise<void>;

/** Send `KEY=value` assignments with systemd-notify; resolves even on failure (logged by caller). */
export function systemdNotify(assignments: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('systemd-notify', assignments, { timeout: 5000 }, (err) => (err ? reject(err) : resolve()));
  });
}

export interface WatchdogOptions {
  /** how to notify; default systemdNotify */
  notify?: Notify;
  /** environment to read NOTIFY_SOCKET / WATCHDOG_USEC from; default process.env */
  env?: NodeJS.ProcessEnv;
  /** an inference running longer than this is "stuck", ms; default max(60 s, 4 × queue.deadline_ms) */
  stuckMs?: number;
}

export function watchdogFeature(opts: WatchdogOptions = {}): FeatureFactory {
  return (ctx) => new WatchdogFeature(ctx, opts);
}

export class WatchdogFeature implements Feature {
  readonly name = 'watchdog';
  private timer: NodeJS.Timeout | undefined;
  private readonly notify: Notify;
  private readonly env: NodeJS.ProcessEnv;

  constructor(
    private readonly ctx: AgentContext,
    private readonly opts: WatchdogOptions,
  ) {
    this.notify = opts.notify ?? systemdNotify;
    this.env = opts.env ?? process.env;
  }

  async start(): Promise<void> {
    if (!this.env.NOTIFY_SOCKET) return;
    await this.send(['READY=1', `STATUS=serving ${this.ctx.config.routes.length} routes`]);
    const usec = Number(this.env.WATCHDOG_USEC ?? '0');
    const pid = this.env.WATCHDOG_PID;
    if (!(usec > 0) || (pid !== undefined && Number(pid) !== process.pid)) return;
    this.timer = setInterval(() => {
      if (this.healthy()) void this.send(['WATCHDOG=1']);
      else this.ctx.log.warn('unhealthy: withholding the watchdog ping');
    }, Math.max(500, usec / 2000));
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    // not awaited: systemd-notify may wait up to 5 s for its barrier, and stopping is bounded
    if (this.env.NOTIFY_SOCKET) void this.send(['STOPPING=1']);
  }

  /** No inference stuck beyond the limit. */
  healthy(): boolean {
    const since = this.ctx.metrics.inFlightSince;
    const limit = this.opts.stuckMs ?? Math.max(60_000, 4 * this.ctx.config.queue.deadline_ms);
    return since === undefined || performance.now() - since < limit;
  }

  private async send(assignments: string[]): Promise<void> {
    try {
      await this.notify(assignments);
    } catch (err) {
      this.ctx.log.warn('systemd-notify failed', { err: (err as Error).message });
    }
  }
}
