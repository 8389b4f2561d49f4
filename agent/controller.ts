/**
 * The controller builds the services (transport, models, metrics) into one context, starts the
 * features in order and stops them in reverse. Startup can be aborted (SIGTERM while a model
 * loads); stopping is bounded: features drain, `offline` is published, the client ends.
 *
 *   start: connect (in the background) → load models → check routes → features → state online
 *   stop:  features in reverse (inference drains) → state offline → disconnect → dispose models
 */
import type { SedacConfig } from './config/schema.js';
import type { LoadedModel } from './engine/types.js';
import { SedacError, asSedacError } from './errors.js';
import type { Logger } from './log.js';
import { noPolicy, type AgentContext, type Feature, type FeatureFactory, type LevelProvider, type ModelLoader } from './features/context.js';
import { DEFAULT_FEATURES } from './features/index.js';
import { Metrics } from './features/metrics.js';
import { transportOptions } from './transport/fromConfig.js';
import { MqttTransport, type TransportOptions } from './transport/mqttClient.js';
import { STATE_OFFLINE, STATE_ONLINE, topicsFor } from './transport/topics.js';

export interface ControllerOptions {
  config: SedacConfig;
  log: Logger;
  /** how models are loaded (the engine's loadModel, or a test double) */
  modelLoader: ModelLoader;
  /** features to run, in start order; default DEFAULT_FEATURES */
  features?: readonly FeatureFactory[];
  /** level provider until a policy feature replaces it; default: no policy */
  levels?: LevelProvider;
  /** component versions for `info` */
  versions?: Record<string, string>;
  /** adjust transport options (tests) */
  transport?: Partial<TransportOptions>;
}

/** Thrown by start() when its signal aborted it; not an error for the caller. */
export class StartAborted extends Error {
  constructor() {
    super('startup aborted');
    this.name = 'StartAborted';
  }
}

const OFFLINE_PUBLISH_MS = 2000;

export class Controller {
  private ctx: AgentContext | undefined;
  private transport: MqttTransport | undefined;
  private readonly models = new Map<string, LoadedModel>();
  private readonly metrics = new Metrics();
  private readonly running: Feature[] = [];
  private stopped = false;

  constructor(private readonly opts: ControllerOptions) {}

  /** The context, once started (for tests and benches). */
  get context(): AgentContext | undefined {
    return this.ctx;
  }

  async start(signal?: AbortSignal): Promise<void> {
    const { config, log } = this.opts;
    const topics = topicsFor(config.mqtt.base_topic, config.device_id);
    const tOpts = { ...(await transportOptions(config.mqtt, config.device_id, topics, log)), ...this.opts.transport };
    const transport = new MqttTransport(tOpts);
    this.transport = transport;
    transport.start();
    try {
      for (const [name, m] of Object.entries(config.models)) {
        abortCheck(signal);
        log.info('loading model', { model: name, source: m.source });
        const t0 = performance.now();
        const model = await untilAborted(
          this.opts.modelLoader({ name, source: m.source, threads: m.threads, ...(m.cache_dir !== undefined && { cacheDir: m.cache_dir }) }),
          signal,
          (late) => void late.dispose(),
        );
        this.models.set(name, model);
        log.info('model loaded', { model: name, task: model.task, layers: model.nLayers, levels: model.levels, ms: Math.round(performance.now() - t0) });
      }
      checkRoutes(config, this.models);
      abortCheck(signal);
    } catch (err) {
      await this.teardown(false);
      if (err instanceof StartAborted) throw err;
      throw asSedacError(err, 'E_MODEL_LOAD');
    }
    this.metrics.start();
    const ctx: AgentContext = {
      config,
      log,
      transport,
      topics,
      models: this.models,
      metrics: this.metrics,
      levels: this.opts.levels ?? noPolicy,
      versions: this.opts.versions ?? {},
      startedAt: Date.now(),
    };
    this.ctx = ctx;
    for (const make of this.opts.features ?? DEFAULT_FEATURES) {
      const feature = make(ctx);
      try {
        await feature.start();
        this.running.push(feature);
      } catch (err) {
        log.error('feature failed to start', { feature: feature.name, err: asSedacError(err).message });
      }
    }
    await transport.setRetained(topics.state, STATE_ONLINE);
    log.info('agent online', { device_id: config.device_id, url: config.mqtt.url, state_topic: topics.state });
  }

  /** Stop features in reverse, publish offline, disconnect. Safe to call more than once. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const f of this.running.splice(0).reverse()) {
      try {
        await f.stop();
      } catch (err) {
        this.opts.log.error('feature failed to stop', { feature: f.name, err: asSedacError(err).message });
      }
    }
    await this.teardown(true);
    this.opts.log.info('agent stopped');
  }

  private async teardown(publishOffline: boolean): Promise<void> {
    const t = this.transport;
    if (t && this.ctx && publishOffline) {
      await withTimeout(t.setRetained(this.ctx.topics.state, STATE_OFFLINE), OFFLINE_PUBLISH_MS);
    }
    await t?.stop();
    this.metrics.stop();
    for (const m of this.models.values()) await m.dispose().catch(() => undefined);
    this.models.clear();
  }
}

/** Each route names a loaded model that can do the route's task. */
function checkRoutes(config: SedacConfig, models: ReadonlyMap<string, LoadedModel>): void {
  for (const r of config.routes) {
    const m = models.get(r.model);
    if (!m) throw new SedacError('E_CONFIG_INVALID', `route ${r.name}: model ${r.model} is not loaded`);
    if (m.task !== r.task) throw new SedacError('E_CONFIG_INVALID', `route ${r.name} is a ${r.task} route but model ${r.model} is a ${m.task} model`);
  }
}

function abortCheck(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new StartAborted();
}

/** Await `p`, or throw StartAborted as soon as `signal` aborts (`late` gets p's value if it comes later). */
function untilAborted<T>(p: Promise<T>, signal: AbortSignal | undefined, late: (v: T) => void): Promise<T> {
  if (!signal) return p;
  return new Promise((resolve, reject) => {
    const onAbort = (): void => {
      p.then(late, () => undefined);
      reject(new StartAborted());
    };
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        if (signal.aborted) late(v);
        else resolve(v);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}

function withTimeout(p: Promise<void>, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    p.finally(() => {
      clearTimeout(timer);
      resolve();
    }).catch(() => undefined);
  });
}
