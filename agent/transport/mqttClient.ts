/**
 * The one door to mqtt.js. `MqttTransport` keeps one logical connection alive for the agent (and
 * for the `sedac request` client and tests):
 *
 * - connects with MQTT 5 and falls back to 3.1.1 when the broker refuses protocol 5 (CONNACK
 *   "unacceptable protocol version", as aedes answers);
 * - owns the subscription registry and re-subscribes after every connect without a session;
 * - owns the retained registry: every `setRetained` topic is republished after every reconnect;
 * - a supervisor recreates the client when it stayed disconnected longer than `supervisorTimeoutMs`
 *   or ended without being asked (mqtt.js gave up reconnecting); QoS 1 stores are carried over;
 * - counts rx / tx / dropped / reconnects / publish errors.
 */
import mqtt, { type IClientOptions, type IClientPublishOptions, type IPublishPacket, type MqttClient } from 'mqtt';
import { EventEmitter } from 'node:events';
import { silentLogger, type Logger } from '../log.js';
import type { InboundMessage, MessageHandler, PublishOptions, QoS, TransportCounters, TransportOptions } from './types.js';
import { InflightLimiter } from './inflight.js';
import { matchLevels } from './topics.js';

export type { InboundMessage, MessageHandler, PublishOptions, QoS, TransportCounters, TransportOptions } from './types.js';

/**
 * mqtt.js closes (empties) its stores when a client ends. The transport recreates clients and
 * wants unacknowledged QoS 1 packets to carry over to the next one, so its stores ignore close.
 */
class KeptStore extends mqtt.Store {
  override close(cb: () => void): void {
    cb();
  }
}

/** CONNACK codes meaning "this protocol version is not spoken here" (3.1.1: 1, MQTT 5: 0x84). */
const REFUSED_PROTOCOL = new Set([1, 0x84]);

/**
 * mqtt.js calls its logger dozens of times per packet; its default (the `debug` package) costs
 * even when disabled. With DEBUG unset nothing could print, so it gets a no-op instead; with DEBUG
 * set (e.g. DEBUG=mqttjs*) mqtt.js keeps its own logger.
 */
const mqttLog = (): IClientOptions['log'] => (process.env.DEBUG ? undefined : () => undefined);

export class MqttTransport extends EventEmitter {
  private client: MqttClient | undefined;
  private protocol: 4 | 5;
  /** filter → QoS, handler, and the filter split at `/` (matched against every inbound topic) */
  private readonly subs = new Map<string, { qos: QoS; handler: MessageHandler; levels: string[] }>();
  private readonly retained = new Map<string, string>();
  private readonly incomingStore = new KeptStore();
  private readonly outgoingStore = new KeptStore();
  private readonly log: Logger;
  private supervisor: NodeJS.Timeout | undefined;
  private lastUpAt = 0;
  private everConnected = false;
  private stopping = false;
  /** QoS ≥ 1 publishes awaiting their ack, up to the broker's Receive Maximum (less one for mqtt.js's own resends) */
  private readonly inflight = new InflightLimiter();
  private readonly counts = { rx: 0, tx: 0, dropped: 0, reconnects: 0, publish_errors: 0, client_recreations: 0 };

  constructor(private readonly opts: TransportOptions) {
    super();
    this.protocol = opts.protocolVersion ?? 5;
    this.log = (opts.log ?? silentLogger).child({ part: 'mqtt' });
  }

  /** Start connecting; returns at once. Emits `connect` (with `{protocol, sessionPresent}`) on every connect. */
  start(): void {
    if (this.client) return;
    this.stopping = false;
    this.createClient('start');
    const every = Math.max(250, Math.min(5000, (this.opts.supervisorTimeoutMs ?? 60000) / 4));
    this.supervisor = setInterval(() => this.supervise(), every);
    this.supervisor.unref();
  }

  /** Resolve when connected; reject after `timeoutMs` or when `signal` aborts. */
  waitConnected(timeoutMs: number, signal?: AbortSignal): Promise<void> {
    if (this.client?.connected) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const done = (err?: Error): void => {
        clearTimeout(timer);
        this.off('connect', onConnect);
        signal?.removeEventListener('abort', onAbort);
        if (err) reject(err);
        else resolve();
      };
      const onConnect = (): void => done();
      const onAbort = (): void => done(new Error('aborted'));
      const timer = setTimeout(() => done(new Error(`no MQTT connection to ${this.opts.url} within ${timeoutMs} ms`)), timeoutMs);
      this.on('connect', onConnect);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  get connected(): boolean {
    return this.client?.connected ?? false;
  }

  /** The protocol of the current (or last attempted) connection. */
  get protocolVersion(): 4 | 5 {
    return this.protocol;
  }

  /** Subscribe a filter; kept across reconnects. One handler per filter. */
  subscribe(filter: string, qos: QoS, handler: MessageHandler): void {
    this.subs.set(filter, { qos, handler, levels: filter.split('/') });
    if (this.client?.connected) this.client.subscribe(filter, this.subOptions(qos, false), (err) => err && this.subscribeFailed(filter, err));
  }

  unsubscribe(filter: string): Promise<void> {
    this.subs.delete(filter);
    const c = this.client;
    if (!c?.connected) return Promise.resolve();
    return new Promise((resolve) => c.unsubscribe(filter, () => resolve()));
  }

  /** Filters currently subscribed (for loop checks). */
  filters(): string[] {
    return [...this.subs.keys()];
  }

  /**
   * Publish. Resolves when QoS 0 is written or QoS ≥ 1 is acknowledged; rejects on failure.
   * QoS ≥ 1 publishes respect the broker's Receive Maximum (mqtt.js does not): beyond it they wait
   * here, so that a burst (e.g. answers produced while offline) is not refused "Quota exceeded".
   */
  async publish(topic: string, payload: string | Buffer, opts: PublishOptions = {}): Promise<void> {
    const qos = opts.qos ?? 0;
    if (qos === 0) return this.send(topic, payload, opts);
    await this.inflight.acquire();
    try {
      for (let attempt = 0; ; attempt++) {
        try {
          return await this.send(topic, payload, opts);
        } catch (err) {
          const code = (err as { code?: unknown }).code;
          if (attempt >= 2 || (code !== 0x97 && code !== 0x89)) throw err; // quota exceeded / server busy: retry
          await new Promise((r) => setTimeout(r, 100 * (attempt + 1)));
        }
      }
    } finally {
      this.inflight.release();
    }
  }

  private send(topic: string, payload: string | Buffer, opts: PublishOptions): Promise<void> {
    const c = this.client;
    if (!c) return Promise.reject(new Error('transport is not started'));
    const pubOpts: IClientPublishOptions = { qos: opts.qos ?? 0, retain: opts.retain ?? false };
    if (this.protocol === 5 && (opts.responseTopic !== undefined || opts.correlationData !== undefined || opts.messageExpiryS !== undefined)) {
      const props: NonNullable<IClientPublishOptions['properties']> = {};
      if (opts.responseTopic !== undefined) props.responseTopic = opts.responseTopic;
      if (opts.correlationData !== undefined) props.correlationData = opts.correlationData;
      if (opts.messageExpiryS !== undefined) props.messageExpiryInterval = opts.messageExpiryS;
      pubOpts.properties = props;
    }
    return new Promise((resolve, reject) => {
      c.publish(topic, payload, pubOpts, (err) => {
        if (err) {
          this.counts.publish_errors++;
          reject(err);
        } else {
          this.counts.tx++;
          resolve();
        }
      });
    });
  }

  /** Publish retained (QoS 1) now and again after every reconnect. Never rejects. */
  async setRetained(topic: string, payload: string): Promise<void> {
    this.retained.set(topic, payload);
    if (!this.client?.connected) return; // the next connect publishes it
    await this.publish(topic, payload, { qos: 1, retain: true }).catch((err: unknown) => this.log.warn('retained publish failed', { topic, err }));
  }

  /** Count a message the agent received but could not serve or answer. */
  countDropped(): void {
    this.counts.dropped++;
  }

  counters(): TransportCounters {
    return { connected: this.connected, protocol_version: this.protocol, ...this.counts };
  }

  /** Stop: end the client, flushing in-flight QoS 1 publishes for up to `flushMs`. */
  async stop(flushMs = 2000): Promise<void> {
    this.stopping = true;
    if (this.supervisor) clearInterval(this.supervisor);
    this.supervisor = undefined;
    const c = this.client;
    this.client = undefined;
    if (!c) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => c.end(true, () => resolve()), flushMs);
      c.end(false, () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  private createClient(why: string): void {
    const o = this.opts;
    const clean = o.clean ?? true;
    const options: IClientOptions = {
      clientId: o.clientId ?? `sedac-${Math.random().toString(16).slice(2, 10)}`,
      protocolVersion: this.protocol,
      keepalive: o.keepaliveS ?? 30,
      reconnectPeriod: o.reconnectPeriodMs ?? 2000,
      connectTimeout: o.connectTimeoutMs ?? 10000,
      clean,
      resubscribe: false,
      queueQoSZero: false,
      incomingStore: this.incomingStore,
      outgoingStore: this.outgoingStore,
      rejectUnauthorized: o.rejectUnauthorized ?? true,
    };
    const log = mqttLog();
    if (log) options.log = log;
    if (o.username !== undefined) options.username = o.username;
    if (o.password !== undefined) options.password = o.password;
    if (o.ca) options.ca = o.ca;
    if (o.cert) options.cert = o.cert;
    if (o.key) options.key = o.key;
    if (o.will) options.will = { topic: o.will.topic, payload: Buffer.from(o.will.payload), qos: o.will.qos, retain: o.will.retain };
    if (this.protocol === 5) {
      options.properties = {};
      if (!clean) options.properties.sessionExpiryInterval = o.sessionExpiryS ?? 3600;
      if (o.maxPacketBytes) options.properties.maximumPacketSize = o.maxPacketBytes;
    }
    this.log.info('mqtt connecting', { url: o.url, protocol: this.protocol, why });
    const c = mqtt.connect(o.url, options);
    this.client = c;
    this.lastUpAt = performance.now();
    c.on('connect', (connack) => this.onConnect(c, connack.sessionPresent, connack.properties?.receiveMaximum));
    c.on('message', (topic, payload, packet) => this.onMessage(topic, payload, packet));
    c.on('error', (err) => this.onError(c, err));
    c.on('offline', () => this.log.warn('mqtt offline', { url: o.url }));
    c.on('end', () => {
      if (!this.stopping && this.client === c) {
        this.log.warn('mqtt client ended unexpectedly; recreating');
        setImmediate(() => this.recreate('ended'));
      }
    });
  }

  private recreate(why: string): void {
    if (this.stopping) return;
    const old = this.client;
    this.client = undefined;
    old?.removeAllListeners();
    old?.on('error', () => undefined);
    old?.end(true);
    this.counts.client_recreations++;
    this.createClient(why);
  }

  private onConnect(c: MqttClient, sessionPresent: boolean, receiveMaximum: number | undefined): void {
    if (c !== this.client) return;
    // mqtt.js leaves Nagle on: small answers would wait for the peer's delayed ACK (tens of ms)
    (c.stream as { setNoDelay?: (on: boolean) => void }).setNoDelay?.(true);
    this.inflight.setLimit((receiveMaximum ?? 65535) - 1);
    if (this.everConnected) this.counts.reconnects++;
    this.everConnected = true;
    this.lastUpAt = performance.now();
    this.log.info('mqtt connected', { url: this.opts.url, protocol: this.protocol, session_present: sessionPresent });
    // Subscriptions: a kept session (v4) still has them; v5 re-subscribes with retain-handling 1
    // (no retained replay for subscriptions that already exist).
    if (!sessionPresent || this.protocol === 5) {
      for (const [filter, s] of this.subs) {
        c.subscribe(filter, this.subOptions(s.qos, sessionPresent), (err) => err && this.subscribeFailed(filter, err));
      }
    }
    for (const [topic, payload] of this.retained) {
      this.publish(topic, payload, { qos: 1, retain: true }).catch((err: unknown) => this.log.warn('retained republish failed', { topic, err }));
    }
    this.emit('connect', { protocol: this.protocol, sessionPresent });
  }

  private subOptions(qos: QoS, keepRetained: boolean): mqtt.IClientSubscribeOptions {
    return this.protocol === 5 ? { qos, rh: keepRetained ? 1 : 0 } : { qos };
  }

  private subscribeFailed(filter: string, err: Error): void {
    this.log.error('mqtt subscribe failed', { filter, err });
  }

  private onError(c: MqttClient, err: Error & { code?: unknown }): void {
    if (c !== this.client) return;
    if (this.protocol === 5 && !c.connected && typeof err.code === 'number' && REFUSED_PROTOCOL.has(err.code)) {
      this.log.warn('broker refused MQTT 5; falling back to 3.1.1', { url: this.opts.url });
      this.protocol = 4;
      this.recreate('protocol fallback');
      return;
    }
    this.log.warn('mqtt error', { url: this.opts.url, err: err.message });
  }

  private onMessage(topic: string, payload: Buffer, packet: IPublishPacket): void {
    this.counts.rx++;
    const receivedAt = performance.now();
    const props = packet.properties;
    const correlationData = props?.correlationData !== undefined ? Buffer.from(props.correlationData) : undefined;
    const levels = topic.split('/');
    let handled = false;
    for (const s of this.subs.values()) {
      const captures = matchLevels(s.levels, levels);
      if (!captures) continue;
      handled = true;
      // each handler gets its own message (handlers may keep it)
      const msg: InboundMessage = { topic, payload, qos: packet.qos, retain: packet.retain, receivedAt, captures };
      if (props?.responseTopic !== undefined) msg.responseTopic = props.responseTopic;
      if (correlationData !== undefined) msg.correlationData = correlationData;
      if (props?.messageExpiryInterval !== undefined) msg.messageExpiryS = props.messageExpiryInterval;
      try {
        s.handler(msg);
      } catch (err) {
        this.counts.dropped++;
        this.log.error('message handler threw', { topic, err });
      }
    }
    if (!handled) this.counts.dropped++;
  }

  private supervise(): void {
    const c = this.client;
    if (this.stopping || !c) return;
    const now = performance.now();
    if (c.connected) {
      this.lastUpAt = now;
      return;
    }
    const limit = this.opts.supervisorTimeoutMs ?? 60000;
    if (now - this.lastUpAt > limit) {
      this.log.warn('mqtt disconnected too long; recreating client', { ms: Math.round(now - this.lastUpAt) });
      this.protocol = this.opts.protocolVersion ?? 5;
      this.recreate('supervisor');
    }
  }
}
