/**
 * `sedac request <route> --text TEXT`: send one request to an agent and print its response.
 * MQTT 5: a private response topic + correlation data; 3.1.1 (e.g. the embedded aedes broker):
 * the route's response topic, matched by `transaction`.
 */
import { randomUUID } from 'node:crypto';
import { readConfigFile, defaultDeviceId } from '../config/load.js';
import { SedacError } from '../errors.js';
import { MqttTransport } from '../transport/mqttClient.js';
import { topicsFor } from '../transport/topics.js';
import { intOpt, parse } from './args.js';

const USAGE = `usage: sedac request <route> --text TEXT [--url URL] [--device ID] [--base TOPIC] [--config FILE]
                     [--level L] [--quality Q] [--max-tokens N] [--deadline MS] [--timeout MS]
                     [--protocol 5|4] [--json]
  --config FILE   take url, device id and base topic from an agent config (default $SEDAC_CONFIG)
  --url URL       broker (default from the config, else mqtt://127.0.0.1:1883)
  --device ID     agent device id (default from the config, else this host's name)
  --timeout MS    how long to wait for the response (default 30000)
Prints the response JSON; exits 0 when status is ok, 1 otherwise.`;

export async function main(argv: string[]): Promise<number> {
  const args = parse(
    argv,
    {
      text: { type: 'string', short: 't' },
      url: { type: 'string' },
      device: { type: 'string' },
      base: { type: 'string' },
      config: { type: 'string', short: 'c' },
      level: { type: 'string' },
      quality: { type: 'string' },
      'max-tokens': { type: 'string' },
      deadline: { type: 'string' },
      timeout: { type: 'string' },
      protocol: { type: 'string' },
      json: { type: 'boolean' },
    },
    USAGE,
    [1, 1],
  );
  if (!args) return 0;
  const { values: v, positionals } = args;
  const route = positionals[0];
  if (!route || v.text === undefined) throw new SedacError('E_USAGE', USAGE);
  const cfgPath = v.config ?? process.env.SEDAC_CONFIG;
  const cfg = cfgPath ? await readConfigFile(cfgPath) : undefined;
  const protocol = v.protocol === undefined ? 5 : v.protocol === '5' ? 5 : v.protocol === '4' ? 4 : undefined;
  if (protocol === undefined) throw new SedacError('E_USAGE', `--protocol must be 5 or 4\n${USAGE}`);
  const body: Record<string, unknown> = { text: v.text, transaction: randomUUID() };
  if (v.level !== undefined) body.level = v.level;
  if (v.quality !== undefined) body.quality = v.quality;
  if (v['max-tokens'] !== undefined) body.max_tokens = intOpt(v['max-tokens'], 'max-tokens', 0, 1);
  if (v.deadline !== undefined) body.deadline_ms = intOpt(v.deadline, 'deadline', 0, 1);
  const response = await request({
    url: v.url ?? cfg?.mqtt.url ?? 'mqtt://127.0.0.1:1883',
    deviceId: v.device ?? cfg?.device_id ?? defaultDeviceId(),
    baseTopic: v.base ?? cfg?.mqtt.base_topic ?? 'sedac',
    route,
    body,
    timeoutMs: intOpt(v.timeout, 'timeout', 30000, 1),
    protocolVersion: protocol,
  });
  console.log(v.json ? JSON.stringify(response) : JSON.stringify(response, null, 2));
  return (response as { status?: unknown }).status === 'ok' ? 0 : 1;
}

export interface RequestOptions {
  url: string;
  deviceId: string;
  baseTopic: string;
  route: string;
  /** the request JSON; `transaction` is used to match the answer on 3.1.1 */
  body: Record<string, unknown>;
  timeoutMs: number;
  protocolVersion?: 4 | 5;
}

/** Send one request and resolve with the parsed response JSON. */
export async function request(o: RequestOptions): Promise<unknown> {
  const clientId = `sedac-cli-${randomUUID().slice(0, 8)}`;
  const transport = new MqttTransport({ url: o.url, clientId, protocolVersion: o.protocolVersion ?? 5, clean: true, reconnectPeriodMs: 1000 });
  const started = performance.now();
  transport.start();
  try {
    await transport.waitConnected(o.timeoutMs).catch((err: Error) => {
      throw new SedacError('E_MQTT_CONNECT', err.message);
    });
    const topics = topicsFor(o.baseTopic, o.deviceId);
    const v5 = transport.protocolVersion === 5;
    const replyTopic = v5 ? `${o.baseTopic}/_reply/${clientId}` : topics.response(o.route);
    const correlation = Buffer.from(randomUUID());
    const answer = new Promise<unknown>((resolve) => {
      transport.subscribe(replyTopic, 1, (msg) => {
        let json: unknown;
        try {
          json = JSON.parse(msg.payload.toString('utf8'));
        } catch {
          return; // not ours
        }
        const mine = v5 ? msg.correlationData?.equals(correlation) : (json as { transaction?: unknown }).transaction === o.body.transaction;
        if (mine) resolve(json);
      });
    });
    // subscribe is sent before the publish on the same connection, so the broker has it first
    await transport.publish(topics.request(o.route), JSON.stringify(o.body), { qos: 1, ...(v5 && { responseTopic: replyTopic, correlationData: correlation }) });
    const left = Math.max(1, o.timeoutMs - (performance.now() - started));
    return await Promise.race([
      answer,
      new Promise<never>((_, reject) => setTimeout(() => reject(new SedacError('E_EXPIRED', `no response from ${o.deviceId} on route ${o.route} within ${o.timeoutMs} ms`)), left).unref()),
    ]);
  } finally {
    await transport.stop(500);
  }
}
