/**
 * Inference routes: requests on `<base>/<id>/request/<route>` and messages on each route's external
 * `subscribe` filters go through one bounded queue to the model; answers go to the reply address
 * (requests) or the route's `publish` topic (external messages).
 *
 * Order of checks for a request: reply address → payload (size, UTF-8, JSON, fields) → route →
 * shutting down → duplicate → level → queue. Every refusal with a reply address is answered with a
 * coded error; without one it is counted (errors by code + transport dropped).
 */
import type { RouteConfig } from '../config/schema.js';
import type { ClassifyResult, GenerateOptions, GenerateResult, LoadedModel } from '../engine/types.js';
import { SedacError, asSedacError, type ErrorCode } from '../errors.js';
import type { InboundMessage, PublishOptions, QoS } from '../transport/mqttClient.js';
import { fillTemplate, isPublishableTopic, matchTopic } from '../transport/topics.js';
import type { AgentContext, Feature, LevelDecision, LevelRequest } from './context.js';
import { Dedupe } from './dedupe.js';
import { errorBody, externalText, isRejected, okBody, parseRequest, replyAddress, resultData, type RequestLimits, type Transaction } from './requests.js';
import { WorkQueue } from './workQueue.js';

/** How a finished (or refused) job is delivered: the response body, and whether it is a success. */
type Deliver = (body: string, ok: boolean) => void;

interface Work {
  route: RouteConfig;
  model: LoadedModel;
  input: string;
  maxTokens: number;
  decision: LevelDecision;
  receivedAt: number;
  deadline: number;
  transaction?: Transaction;
  /** extra fields merged into `data` (e.g. source_topic) */
  extra?: Record<string, unknown>;
  deliver: Deliver;
}

export class InferenceFeature implements Feature {
  readonly name = 'inference';
  private queue: WorkQueue | undefined;
  private dedupe: Dedupe | undefined;
  private readonly routes = new Map<string, RouteConfig>();
  private readonly limitsByRoute = new Map<RouteConfig | undefined, RequestLimits>();
  private readonly filters: string[] = [];
  private accepting = false;

  constructor(private readonly ctx: AgentContext) {}

  start(): void {
    const { config, transport, topics, metrics } = this.ctx;
    for (const r of config.routes) this.routes.set(r.name, r);
    this.queue = new WorkQueue(config.queue.size, (depth, since) => {
      metrics.queueDepth = depth;
      metrics.inFlightSince = since;
    });
    this.dedupe = new Dedupe(config.dedupe_window_s * 1000);
    this.accepting = true;
    transport.subscribe(topics.requestFilter, 1, (m) => this.onRequest(m));
    this.filters.push(topics.requestFilter);
    const byFilter = new Map<string, RouteConfig[]>();
    for (const r of config.routes) for (const f of r.subscribe) byFilter.set(f, [...(byFilter.get(f) ?? []), r]);
    for (const [filter, routes] of byFilter) {
      transport.subscribe(filter, 1, (m) => routes.forEach((r) => this.onExternal(r, m)));
      this.filters.push(filter);
    }
    this.ctx.log.info('routes ready', { routes: [...this.routes.keys()], subscribed: this.filters });
  }

  /** Stop intake, let queued and running work finish for up to queue.drain_ms, refuse the rest. */
  async stop(): Promise<void> {
    this.accepting = false;
    const q = this.queue;
    if (!q) return;
    q.close();
    await Promise.all(this.filters.splice(0).map((f) => this.ctx.transport.unsubscribe(f)));
    const idle = await q.drain(this.ctx.config.queue.drain_ms);
    if (!idle) {
      this.ctx.log.warn('drain time over; refusing waiting requests', { waiting: q.depth });
      q.cancelWaiting();
    }
  }

  private onRequest(msg: InboundMessage): void {
    const { topics, config } = this.ctx;
    if (msg.retain) return this.drop(msg, 'E_BAD_REQUEST', 'retained requests are not served');
    const routeName = msg.topic.slice(topics.requestPrefix.length);
    const addr = replyAddress(msg, topics.response(routeName), config.mqtt.max_correlation_bytes);
    const reply: Deliver = (body) => this.publish(addr.topic, body, config.mqtt.response_qos, addr.correlationData);
    const route = this.routes.get(routeName);
    const parsed = parseRequest(msg.payload, this.limits(route));
    const tx = parsed.transaction;
    const refuse = (err: SedacError): void => {
      this.ctx.metrics.error(err.code);
      reply(errorBody(err, tx), false);
    };
    if (addr.problem) return refuse(addr.problem);
    if (!route) return refuse(new SedacError('E_UNKNOWN_ROUTE', `no route '${routeName}'; routes: ${[...this.routes.keys()].join(', ') || 'none'}`));
    if (isRejected(parsed)) return refuse(parsed.error);
    if (!this.accepting) return refuse(new SedacError('E_SHUTTING_DOWN', 'the agent is stopping'));

    const id = addr.correlationData?.toString('hex') ?? (tx !== undefined ? `${typeof tx}:${tx}` : undefined);
    const key = id !== undefined ? `${routeName}\u0000${addr.topic}\u0000${id}` : undefined;
    if (key !== undefined && this.dedupe?.seenBefore(key)) {
      this.ctx.metrics.duplicate();
      this.ctx.log.debug('duplicate request dropped', { route: routeName, id });
      return;
    }
    const model = this.modelOf(route);
    const ask: LevelRequest = { route: route.name, model };
    if (parsed.level !== undefined) ask.level = parsed.level;
    if (parsed.quality !== undefined) ask.quality = parsed.quality;
    if (route.default_level !== undefined) ask.routeDefault = route.default_level;
    let decision: LevelDecision;
    try {
      decision = this.ctx.levels.decide(ask);
    } catch (err) {
      if (key !== undefined) this.dedupe?.forget(key);
      return refuse(asSedacError(err));
    }
    const deadlineMs = Math.min(parsed.deadlineMs ?? config.queue.deadline_ms, msg.messageExpiryS !== undefined ? msg.messageExpiryS * 1000 : Infinity);
    const input = fillTemplate(route.prompt, { text: parsed.text, route: route.name, device_id: config.device_id, topic: msg.topic });
    const work: Work = { route, model, input, maxTokens: parsed.maxTokens ?? route.max_tokens, decision, receivedAt: msg.receivedAt, deadline: msg.receivedAt + deadlineMs, deliver: reply };
    if (tx !== undefined) work.transaction = tx;
    const accepted = this.enqueue(work);
    if (!accepted) {
      if (key !== undefined) this.dedupe?.forget(key);
      refuse(new SedacError('E_BUSY', `the queue is full (${config.queue.size} waiting); retry later`));
    }
  }

  private onExternal(route: RouteConfig, msg: InboundMessage): void {
    const { config, transport } = this.ctx;
    if (msg.retain) return this.drop(msg, 'E_BAD_REQUEST', 'retained messages on subscribed topics are not served');
    if (!this.accepting) return this.drop(msg, 'E_SHUTTING_DOWN', 'stopping');
    const text = externalText(msg.payload, this.limits(route));
    if (text instanceof SedacError) return this.drop(msg, text.code, text.message);
    const vars = { topic: msg.topic, device_id: config.device_id, base: config.mqtt.base_topic, route: route.name };
    const out = fillTemplate(route.publish ?? '', vars, msg.captures);
    if (!isPublishableTopic(out)) return this.drop(msg, 'E_BAD_REQUEST', `output topic '${out}' is not publishable`);
    const loop = transport.filters().find((f) => matchTopic(f, out));
    if (loop !== undefined) return this.drop(msg, 'E_BAD_REQUEST', `output topic '${out}' matches subscription '${loop}': refusing a loop`);
    const model = this.modelOf(route);
    let decision: LevelDecision;
    try {
      decision = this.ctx.levels.decide({ route: route.name, model, ...(route.default_level !== undefined && { routeDefault: route.default_level }) });
    } catch (err) {
      const e = asSedacError(err);
      return this.drop(msg, e.code, e.message);
    }
    const deadlineMs = Math.min(config.queue.deadline_ms, msg.messageExpiryS !== undefined ? msg.messageExpiryS * 1000 : Infinity);
    const accepted = this.enqueue({
      route,
      model,
      input: fillTemplate(route.prompt, { ...vars, text }, msg.captures),
      maxTokens: route.max_tokens,
      decision,
      receivedAt: msg.receivedAt,
      deadline: msg.receivedAt + deadlineMs,
      extra: { source_topic: msg.topic },
      // failures have no one to answer: they are counted by fail() and dropped here
      deliver: (body, ok) => (ok ? this.publish(out, body, route.publish_qos) : this.ctx.transport.countDropped()),
    });
    if (!accepted) this.drop(msg, 'E_BUSY', 'queue full');
  }

  private enqueue(w: Work): boolean {
    const q = this.queue;
    if (!q) return false;
    return q.push({
      deadline: w.deadline,
      run: () => this.run(w),
      expire: () => this.fail(w, new SedacError('E_EXPIRED', `not started within ${Math.round(w.deadline - w.receivedAt)} ms of receipt`)),
      cancel: () => this.fail(w, new SedacError('E_SHUTTING_DOWN', 'the agent stopped before this request ran')),
    });
  }

  private async run(w: Work): Promise<void> {
    const started = performance.now();
    const level = w.decision.level;
    try {
      let result: GenerateResult | ClassifyResult;
      if (w.route.task === 'generate') {
        if (!w.model.generate) throw new SedacError('E_INTERNAL', `model ${w.model.name} cannot generate`);
        const opts: GenerateOptions = { maxTokens: w.maxTokens };
        if (level !== undefined) opts.level = level;
        result = await w.model.generate(w.input, opts);
      } else {
        if (!w.model.classify) throw new SedacError('E_INTERNAL', `model ${w.model.name} cannot classify`);
        result = await w.model.classify(w.input, level !== undefined ? { level } : {});
      }
      const done = performance.now();
      const data = resultData(result, w.decision.reasons, { queueMs: started - w.receivedAt, inferMs: done - started }, w.extra);
      const meanLayers = 'meanLayers' in result ? result.meanLayers : result.layers;
      this.ctx.metrics.served(done - w.receivedAt, meanLayers, result.level);
      w.deliver(okBody(data, w.transaction), true);
    } catch (err) {
      const e = asSedacError(err, 'E_INFER');
      if (e.code === 'E_INTERNAL') this.ctx.log.error('inference failed', { route: w.route.name, err: e.message });
      this.fail(w, e);
    }
  }

  private fail(w: Work, err: SedacError): void {
    this.ctx.metrics.error(err.code);
    w.deliver(errorBody(err, w.transaction), false);
  }

  private publish(topic: string, body: string, qos: QoS, correlationData?: Buffer): void {
    const opts: PublishOptions = { qos };
    if (correlationData !== undefined) opts.correlationData = correlationData;
    this.ctx.transport.publish(topic, body, opts).catch((err: unknown) => this.ctx.log.warn('reply publish failed', { topic, err }));
  }

  private drop(msg: InboundMessage, code: ErrorCode, why: string): void {
    this.ctx.metrics.error(code);
    this.ctx.transport.countDropped();
    this.ctx.log.debug('message dropped', { topic: msg.topic, code, why });
  }

  private modelOf(route: RouteConfig): LoadedModel {
    const m = this.ctx.models.get(route.model);
    if (!m) throw new SedacError('E_INTERNAL', `route ${route.name}: model ${route.model} is not loaded`);
    return m;
  }

  /** The request limits of a route (of an unknown route: the defaults); computed once per route. */
  private limits(route: RouteConfig | undefined): RequestLimits {
    let l = this.limitsByRoute.get(route);
    if (!l) {
      const mqtt = this.ctx.config.mqtt;
      l = {
        maxPayloadBytes: mqtt.max_payload_bytes,
        maxCorrelationBytes: mqtt.max_correlation_bytes,
        maxChars: route?.max_chars ?? 1000,
        maxTokens: route?.max_tokens ?? 32,
      };
      this.limitsByRoute.set(route, l);
    }
    return l;
  }
}
