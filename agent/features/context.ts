/**
 * What every feature gets: one context object (no positional constructor arguments), and the
 * Feature contract. A feature's constructor only stores the context; `start()` sets timers and
 * listeners; `stop()` clears them. The controller starts features in order and stops them in
 * reverse; one failing feature is logged, not fatal.
 */
import type { SedacConfig } from '../config/schema.js';
import type { LoadedModel } from '../engine/types.js';
import { SedacError } from '../errors.js';
import type { Logger } from '../log.js';
import type { MqttTransport } from '../transport/mqttClient.js';
import type { Topics } from '../transport/topics.js';
import type { Metrics } from './metrics.js';

export interface Feature {
  readonly name: string;
  start(): void | Promise<void>;
  /** Stop timers and listeners; may wait (bounded) for work in progress. */
  stop(): void | Promise<void>;
}

export type FeatureFactory = (ctx: AgentContext) => Feature;

/** What the inference feature asks before running a request. */
export interface LevelRequest {
  route: string;
  model: LoadedModel;
  /** level the request asked for (`level` in the request JSON) */
  level?: string;
  /** quality floor the request asked for (`quality` in the request JSON) */
  quality?: string;
  /** the route's configured default_level */
  routeDefault?: string;
}

export interface LevelDecision {
  /** level to run at; undefined = full depth (the engine reports `full`) */
  level: string | undefined;
  /** why, in a few words each, e.g. ["no policy"] or ["cpu 81 °C ≥ trip 80 °C"] */
  reasons: string[];
  /** the sensor readings behind a device-level decision (health shows them) */
  readings?: unknown;
}

/**
 * "What level now and why". The device-aware policy replaces the default provider (set
 * `ctx.levels` in its feature's constructor or start). `decide` may throw
 * SedacError('E_DEGRADED') to refuse a quality floor.
 */
export interface LevelProvider {
  decide(req: LevelRequest): LevelDecision;
  /** the level the device is at now, for health; undefined when there is no policy */
  current?(): LevelDecision | undefined;
}

export interface ModelSpec {
  name: string;
  source: string;
  threads?: number;
  cacheDir?: string;
}

export type ModelLoader = (spec: ModelSpec) => Promise<LoadedModel>;

export interface AgentContext {
  readonly config: SedacConfig;
  readonly log: Logger;
  readonly transport: MqttTransport;
  readonly topics: Topics;
  /** loaded models by config name */
  readonly models: ReadonlyMap<string, LoadedModel>;
  readonly metrics: Metrics;
  /** replaceable by the policy feature */
  levels: LevelProvider;
  /** component versions published in `info` (sedac, node, onnxruntime, ...) */
  readonly versions: Readonly<Record<string, string>>;
  /** Date.now() when the agent started */
  readonly startedAt: number;
}

/**
 * Without a policy: the level the request asked for (`level`, else its `quality` floor), else the
 * route's default, else the model's best calibrated level; full depth for an uncalibrated model.
 */
export const noPolicy: LevelProvider = {
  decide(req) {
    const asked = req.level ?? req.quality;
    const pick = asked ?? req.routeDefault;
    const why = asked !== undefined ? 'requested' : req.routeDefault !== undefined ? 'route default' : 'best level';
    if (req.model.levels.length === 0) return { level: undefined, reasons: ['no policy', 'model has no calibrated levels'] };
    if (pick === undefined) return { level: req.model.levels[0], reasons: ['no policy', why] };
    if (pick === 'full') return { level: undefined, reasons: ['no policy', why] };
    if (!req.model.levels.includes(pick)) {
      throw new SedacError('E_BAD_REQUEST', `unknown level '${pick}'; model ${req.model.name} has: ${[...req.model.levels, 'full'].join(', ')}`);
    }
    return { level: pick, reasons: ['no policy', why] };
  },
};
