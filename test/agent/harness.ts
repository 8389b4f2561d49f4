/**
 * Shared pieces of the agent tests: a config builder, an in-process agent, and a test client that
 * collects messages. Clients go through the agent's transport module (the one mqtt importer).
 */
import { validateConfig } from '../../agent/config/load.js';
import type { SedacConfig } from '../../agent/config/schema.js';
import { Controller } from '../../agent/controller.js';
import type { AgentContext, FeatureFactory, ModelLoader } from '../../agent/features/context.js';
import { HealthFeature } from '../../agent/features/health.js';
import { InferenceFeature } from '../../agent/features/inference.js';
import { watchdogFeature } from '../../agent/features/watchdog.js';
import { createLogger, silentLogger, type Logger } from '../../agent/log.js';
import { MqttTransport, type InboundMessage, type PublishOptions, type QoS } from '../../agent/transport/mqttClient.js';
import { fakeLoader } from '../helpers/fakeModel.js';

export const DEVICE = 'testdev';

/** Logs to stderr when SEDAC_TEST_LOG=debug|info is set; silent otherwise. */
export function testLogger(): Logger {
  const level = process.env.SEDAC_TEST_LOG;
  return level === 'debug' || level === 'info' ? createLogger({ level }) : silentLogger;
}

/** A validated config for tests: one generate route `echo` on model `m`, one external route. */
export function testConfig(url: string, over: Record<string, unknown> = {}): SedacConfig {
  const { mqtt, ...rest } = over;
  const raw: Record<string, unknown> = {
    device_id: DEVICE,
    models: { m: { source: 'fake' } },
    routes: [
      { name: 'echo', task: 'generate', model: 'm', max_tokens: 16, max_chars: 200 },
      { name: 'cap', task: 'generate', model: 'm', subscribe: ['cams/+/caption'], publish: '{base}/{device_id}/caption/{1}', prompt: 'caption: {text}', max_tokens: 8 },
    ],
    health: { cron: '*/1 * * * * *' },
    ...rest,
    mqtt: { url, reconnect_period_ms: 200, keepalive_s: 10, session_expiry_s: 300, ...(mqtt as object | undefined) },
  };
  return validateConfig(raw, 'test config');
}

/**
 * The agent's own features without the device-aware policy, whose level depends on this machine's
 * sensors: these tests pin the "no policy" provider. The policy has its own tests.
 */
export const AGENT_FEATURES: FeatureFactory[] = [(ctx) => new HealthFeature(ctx), (ctx) => new InferenceFeature(ctx), watchdogFeature()];

export interface RunningAgent {
  controller: Controller;
  ctx: AgentContext;
  stop(): Promise<void>;
}

export async function startAgent(config: SedacConfig, opts: { loader?: ModelLoader; features?: FeatureFactory[] } = {}): Promise<RunningAgent> {
  const controller = new Controller({ config, log: testLogger(), modelLoader: opts.loader ?? fakeLoader(), versions: { sedac: 'test' }, features: opts.features ?? AGENT_FEATURES });
  await controller.start();
  const ctx = controller.context;
  if (!ctx) throw new Error('controller has no context after start');
  await ctx.transport.waitConnected(5000);
  return { controller, ctx, stop: () => controller.stop() };
}

/** A client that records what it receives. */
export class TestClient {
  readonly transport: MqttTransport;
  readonly received: InboundMessage[] = [];

  constructor(url: string, protocol: 4 | 5, opts: { clientId?: string; clean?: boolean } = {}) {
    this.transport = new MqttTransport({
      url,
      protocolVersion: protocol,
      reconnectPeriodMs: 200,
      clean: opts.clean ?? true,
      sessionExpiryS: 300,
      ...(opts.clientId && { clientId: opts.clientId }),
    });
  }

  async connect(): Promise<this> {
    this.transport.start();
    await this.transport.waitConnected(5000);
    return this;
  }

  /** Subscribe and wait until the broker has it (a round trip through a marker message). */
  async listen(filter: string, qos: QoS = 1): Promise<void> {
    this.transport.subscribe(filter, qos, (m) => this.received.push(m));
    await this.sync();
  }

  /** Round-trip a marker publish so that every earlier packet on this connection was processed. */
  async sync(): Promise<void> {
    const topic = `sync/${Math.random().toString(16).slice(2)}`;
    let seen = false;
    this.transport.subscribe(topic, 1, () => (seen = true));
    await this.transport.publish(topic, 'x', { qos: 1 });
    await waitFor(() => seen, 3000, 'sync marker');
    await this.transport.unsubscribe(topic);
  }

  publish(topic: string, payload: string | Buffer, opts: PublishOptions = {}): Promise<void> {
    return this.transport.publish(topic, payload, { qos: 1, ...opts });
  }

  /** Messages on `topic`, parsed as JSON. */
  json(topic: string): Record<string, unknown>[] {
    return this.received.filter((m) => m.topic === topic).map((m) => JSON.parse(m.payload.toString()) as Record<string, unknown>);
  }

  close(): Promise<void> {
    return this.transport.stop(500);
  }
}

export async function waitFor(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const end = performance.now() + timeoutMs;
  while (!cond()) {
    if (performance.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
