/**
 * Availability and telemetry: retained `info` at start, retained `health` on a node-cron schedule
 * (and once at start). The transport republishes both after every reconnect.
 */
import cron, { type ScheduledTask } from 'node-cron';
import type { AgentContext, Feature } from './context.js';

export class HealthFeature implements Feature {
  readonly name = 'health';
  private task: ScheduledTask | undefined;

  constructor(private readonly ctx: AgentContext) {}

  async start(): Promise<void> {
    await this.ctx.transport.setRetained(this.ctx.topics.info, JSON.stringify(infoPayload(this.ctx)));
    await this.publish();
    this.task = cron.schedule(this.ctx.config.health.cron, () => this.publish(), { name: 'health', noOverlap: true });
  }

  async stop(): Promise<void> {
    await this.task?.destroy();
    this.task = undefined;
  }

  private async publish(): Promise<void> {
    const body = healthPayload(this.ctx);
    this.ctx.metrics.resetLoopLag();
    await this.ctx.transport.setRetained(this.ctx.topics.health, JSON.stringify(body));
  }
}

/** Versions, models with bundle hashes, routes and config version. */
export function infoPayload(ctx: AgentContext): Record<string, unknown> {
  const models = Object.fromEntries(
    [...ctx.models].map(([name, m]) => [name, { task: m.task, bundle_hash: m.bundleHash, n_layers: m.nLayers, levels: m.levels }]),
  );
  return {
    device_id: ctx.config.device_id,
    versions: ctx.versions,
    config_version: ctx.config.version,
    started_at: new Date(ctx.startedAt).toISOString(),
    models,
    routes: ctx.config.routes.map((r) => ({ name: r.name, task: r.task, model: r.model, subscribe: r.subscribe, ...(r.publish !== undefined && { publish: r.publish }) })),
  };
}

/** Uptime, memory, event-loop lag, queue, MQTT counters, outcomes, latency, layers, level. */
export function healthPayload(ctx: AgentContext): Record<string, unknown> {
  const m = ctx.metrics.snapshot();
  const mem = process.memoryUsage();
  const current = ctx.levels.current?.();
  return {
    time: new Date().toISOString(),
    uptime_s: Math.round((Date.now() - ctx.startedAt) / 1000),
    rss_mb: mb(mem.rss),
    heap_used_mb: mb(mem.heapUsed),
    event_loop_lag_ms: m.event_loop_lag_ms,
    queue: { depth: m.queue_depth, size: ctx.config.queue.size, in_flight: m.in_flight },
    mqtt: ctx.transport.counters(),
    served: m.served,
    errors: m.errors,
    duplicates: m.duplicates,
    latency_ms: m.latency_ms,
    mean_layers: m.mean_layers,
    // what each model holds in memory now: a decoder keeps one level's graphs (weights once)
    models: Object.fromEntries([...ctx.models].flatMap(([name, model]) => {
      const r = model.resident?.();
      return r ? [[name, { graphs: r.graphs, weights_mb: mb(r.weight_bytes) }]] : [];
    })),
    level: current?.level ?? m.level,
    ...(current && { level_reasons: current.reasons }),
    ...(current?.readings !== undefined && { readings: current.readings }),
  };
}

function mb(bytes: number): number {
  return Math.round((bytes / 1048576) * 10) / 10;
}
