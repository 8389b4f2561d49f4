/**
 * Turning the `mqtt` section of the config into transport options: reads the password file and
 * the TLS files (paths resolve against the working directory), sets the last will on `state`.
 */
import { readFile } from 'node:fs/promises';
import type { MqttConfig } from '../config/schema.js';
import { SedacError } from '../errors.js';
import type { Logger } from '../log.js';
import type { TransportOptions } from './mqttClient.js';
import { STATE_OFFLINE, type Topics } from './topics.js';

export async function transportOptions(mqtt: MqttConfig, deviceId: string, topics: Topics | undefined, log: Logger): Promise<TransportOptions> {
  const opts: TransportOptions = {
    url: mqtt.url,
    clientId: mqtt.client_id ?? `sedac-${deviceId}`,
    protocolVersion: mqtt.protocol_version,
    keepaliveS: mqtt.keepalive_s,
    reconnectPeriodMs: mqtt.reconnect_period_ms,
    connectTimeoutMs: mqtt.connect_timeout_ms,
    clean: mqtt.clean,
    sessionExpiryS: mqtt.session_expiry_s,
    // Accept packets somewhat over the payload limit so that oversized requests still reach us and
    // get an E_TOO_LARGE answer; truly huge ones are refused by an MQTT 5 broker before they arrive.
    maxPacketBytes: mqtt.max_payload_bytes * 2 + 65536,
    supervisorTimeoutMs: mqtt.supervisor_timeout_s * 1000,
    log,
  };
  if (mqtt.username !== undefined) opts.username = mqtt.username;
  if (mqtt.password_file !== undefined) opts.password = (await readText(mqtt.password_file, 'mqtt.password_file')).split(/\r?\n/)[0] ?? '';
  else if (mqtt.password !== undefined) opts.password = mqtt.password;
  if (mqtt.tls) {
    opts.rejectUnauthorized = mqtt.tls.reject_unauthorized;
    if (mqtt.tls.ca) opts.ca = Buffer.from(await readText(mqtt.tls.ca, 'mqtt.tls.ca'));
    if (mqtt.tls.cert) opts.cert = Buffer.from(await readText(mqtt.tls.cert, 'mqtt.tls.cert'));
    if (mqtt.tls.key) opts.key = Buffer.from(await readText(mqtt.tls.key, 'mqtt.tls.key'));
  }
  if (topics) opts.will = { topic: topics.state, payload: STATE_OFFLINE, qos: 1, retain: true };
  return opts;
}

async function readText(path: string, key: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw new SedacError('E_CONFIG_INVALID', `${key}: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
}
