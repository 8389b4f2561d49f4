/** The transport's public types: options, inbound messages, publish options, counters. */
import type { Logger } from '../log.js';

export type QoS = 0 | 1 | 2;

export interface TransportOptions {
  /** broker URL, e.g. mqtt://127.0.0.1:1883 */
  url: string;
  /** client id; default a random `sedac-xxxxxxxx` */
  clientId?: string;
  username?: string;
  password?: string;
  /** PEM contents (not paths) */
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  /** verify the broker certificate; default true */
  rejectUnauthorized?: boolean;
  /** 5 (default, with fallback to 4) or 4 */
  protocolVersion?: 4 | 5;
  /** seconds; default 30 */
  keepaliveS?: number;
  /** milliseconds between reconnect attempts; default 2000 */
  reconnectPeriodMs?: number;
  /** milliseconds to wait for CONNACK; default 10000 */
  connectTimeoutMs?: number;
  /** clean session; default true */
  clean?: boolean;
  /** MQTT 5 session expiry when not clean, seconds; default 3600 */
  sessionExpiryS?: number;
  /** MQTT 5 maximum packet size we accept, bytes; default none */
  maxPacketBytes?: number;
  /** last will, retained as given */
  will?: { topic: string; payload: string; qos: QoS; retain: boolean };
  /** recreate the client after this long without a connection, milliseconds; default 60000 */
  supervisorTimeoutMs?: number;
  log?: Logger;
}

export interface InboundMessage {
  topic: string;
  payload: Buffer;
  qos: QoS;
  retain: boolean;
  /** MQTT 5 response topic, if the sender gave one */
  responseTopic?: string;
  /** MQTT 5 correlation data, if the sender gave it */
  correlationData?: Buffer;
  /** MQTT 5 remaining message expiry at receipt, seconds */
  messageExpiryS?: number;
  /** performance.now() at receipt, milliseconds */
  receivedAt: number;
  /** wildcard captures of the subscription filter that matched */
  captures: string[];
}

export interface PublishOptions {
  /** default 0 */
  qos?: QoS;
  /** default false */
  retain?: boolean;
  /** MQTT 5 only; ignored on 3.1.1 */
  responseTopic?: string;
  /** MQTT 5 only; ignored on 3.1.1 */
  correlationData?: Buffer;
  /** MQTT 5 only, seconds */
  messageExpiryS?: number;
}

export type MessageHandler = (msg: InboundMessage) => void;

export interface TransportCounters {
  connected: boolean;
  /** protocol of the current (or last) connection: 5 or 4 */
  protocol_version: 4 | 5;
  rx: number;
  tx: number;
  dropped: number;
  reconnects: number;
  publish_errors: number;
  client_recreations: number;
}
