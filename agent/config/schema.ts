/**
 * The configuration schema: the one source of truth for the TypeScript type (`SedacConfig`), the
 * defaults (applied by load.ts) and the published JSON Schema (`config/schema.json`, written by
 * writeSchema.ts). Every option's `description` is its one-line doc: what it is, unit, default.
 *
 * Relative paths (model sources, cache dirs, TLS files, password_file) resolve against the
 * process's working directory, not the config file's folder.
 */
import { Type, type Static } from '@sinclair/typebox';
import { PolicyConfigSchema } from '../policy/config.js';

/** A name usable as one MQTT topic level and a YAML key: letters, digits, `_`, `-`. */
const NAME = '^[A-Za-z0-9_-]{1,64}$';

const MqttTls = Type.Object(
  {
    ca: Type.Optional(Type.String({ minLength: 1, description: 'PEM file of the CA that signed the broker certificate; default: system CAs' })),
    cert: Type.Optional(Type.String({ minLength: 1, description: 'PEM client certificate file for mutual TLS; default none' })),
    key: Type.Optional(Type.String({ minLength: 1, description: 'PEM private key file of `cert`; default none' })),
    reject_unauthorized: Type.Boolean({ default: true, description: 'refuse brokers whose certificate does not verify; default true' }),
  },
  { additionalProperties: false, description: 'TLS files for mqtts:// and wss:// URLs; default none' },
);

const Mqtt = Type.Object(
  {
    url: Type.String({ default: 'mqtt://127.0.0.1:1883', pattern: '^(mqtts?|wss?|tcp|ssl)://', description: 'broker URL (mqtt://, mqtts://, ws://, wss://); default mqtt://127.0.0.1:1883' }),
    client_id: Type.Optional(Type.String({ minLength: 1, maxLength: 128, description: 'MQTT client id; default sedac-<device_id>' })),
    username: Type.Optional(Type.String({ description: 'broker user name; default none' })),
    password: Type.Optional(Type.String({ description: 'broker password in clear; prefer password_file; default none' })),
    password_file: Type.Optional(Type.String({ minLength: 1, description: 'file whose first line is the broker password (wins over password); default none' })),
    tls: Type.Optional(MqttTls),
    protocol_version: Type.Union([Type.Literal(5), Type.Literal(4)], { default: 5, description: 'MQTT protocol: 5, falling back to 4 (3.1.1) when the broker refuses 5, or 4 only; default 5' }),
    keepalive_s: Type.Integer({ minimum: 5, maximum: 3600, default: 30, description: 'keepalive interval, seconds; default 30' }),
    base_topic: Type.String({ minLength: 1, pattern: '^[^+#]+$', default: 'sedac', description: 'first topic level(s) of every agent topic: <base_topic>/<device_id>/...; default sedac' }),
    max_payload_bytes: Type.Integer({ minimum: 256, maximum: 16777216, default: 65536, description: 'largest request payload served, bytes; bigger ones get E_TOO_LARGE; default 65536' }),
    max_correlation_bytes: Type.Integer({ minimum: 8, maximum: 65535, default: 256, description: 'largest MQTT 5 correlation data echoed, bytes; bigger gets E_TOO_LARGE; default 256' }),
    response_qos: Type.Union([Type.Literal(0), Type.Literal(1), Type.Literal(2)], { default: 2, description: 'QoS ceiling of responses; a requester gets min(this, its subscription QoS), so 2 lets it choose exactly-once; default 2' }),
    reconnect_period_ms: Type.Integer({ minimum: 100, maximum: 600000, default: 2000, description: 'wait between reconnect attempts, milliseconds; default 2000' }),
    connect_timeout_ms: Type.Integer({ minimum: 500, maximum: 600000, default: 10000, description: 'CONNACK wait per attempt, milliseconds; default 10000' }),
    clean: Type.Boolean({ default: false, description: 'start a clean session on every connect (false keeps subscriptions and queued QoS 1 requests across reconnects); default false' }),
    session_expiry_s: Type.Integer({ minimum: 0, maximum: 4294967295, default: 3600, description: 'MQTT 5 session expiry after a disconnect, seconds (used when clean is false); default 3600' }),
    supervisor_timeout_s: Type.Integer({ minimum: 5, maximum: 86400, default: 60, description: 'recreate the MQTT client when it has been disconnected this long, seconds; default 60' }),
  },
  { additionalProperties: false, default: {}, description: 'broker connection' },
);

const Broker = Type.Object(
  {
    enabled: Type.Boolean({ default: false, description: 'run an embedded aedes broker (MQTT 3.1.1 only) in this process; default false' }),
    host: Type.String({ default: '127.0.0.1', description: 'address the embedded broker listens on; default 127.0.0.1' }),
    port: Type.Integer({ minimum: 0, maximum: 65535, default: 1883, description: 'TCP port of the embedded broker (0 = any free port); default 1883' }),
  },
  { additionalProperties: false, default: {}, description: 'embedded broker, for a single device without Mosquitto' },
);

export const ModelSchema = Type.Object(
  {
    source: Type.String({ minLength: 1, description: 'bundle directory, or a model the converter reads (GGUF, llama2.c, HF folder); required' }),
    threads: Type.Integer({ minimum: 1, maximum: 64, default: 1, description: 'onnxruntime intra-op threads per session; default 1' }),
    cache_dir: Type.Optional(Type.String({ minLength: 1, description: 'where converted bundles are cached; default: the engine default' })),
  },
  { additionalProperties: false },
);

const Route = Type.Object(
  {
    name: Type.String({ pattern: NAME, description: 'route name, used in <base>/<device_id>/request/<name>; required' }),
    task: Type.Union([Type.Literal('generate'), Type.Literal('classify')], { description: 'generate (decoder) or classify (encoder classifier); must match the model; required' }),
    model: Type.String({ pattern: NAME, description: 'name of an entry in models; required' }),
    subscribe: Type.Array(Type.String({ minLength: 1 }), { default: [], description: 'external topic filters (+ and # allowed) whose messages this route serves; default none' }),
    publish: Type.Optional(Type.String({ minLength: 1, pattern: '^[^+#]+$', description: 'output topic template for subscribed messages: {topic}, {device_id}, {base}, {1}..{n} = wildcard levels; required with subscribe' })),
    publish_qos: Type.Union([Type.Literal(0), Type.Literal(1)], { default: 1, description: 'QoS of output-topic publishes; default 1' }),
    prompt: Type.String({ default: '{text}', description: 'template of the model input: {text}, {topic}, {1}..{n}; default {text}' }),
    max_tokens: Type.Integer({ minimum: 1, maximum: 4096, default: 32, description: 'most new tokens per request (generate), also the cap for a request max_tokens; default 32' }),
    default_level: Type.Optional(Type.String({ minLength: 1, description: 'operating level when neither request nor policy names one; default: the best calibrated level' })),
    max_chars: Type.Integer({ minimum: 1, maximum: 1000000, default: 1000, description: 'longest input text, characters (code points); longer gets E_TOO_LARGE; default 1000' }),
  },
  { additionalProperties: false },
);

const Queue = Type.Object(
  {
    size: Type.Integer({ minimum: 1, maximum: 100000, default: 16, description: 'requests waiting beyond the one running; more get E_BUSY; default 16' }),
    deadline_ms: Type.Integer({ minimum: 1, maximum: 3600000, default: 30000, description: 'default time from receipt by which inference must start, milliseconds; later gets E_EXPIRED; default 30000' }),
    drain_ms: Type.Integer({ minimum: 0, maximum: 600000, default: 5000, description: 'on SIGTERM, how long queued and running requests may still finish, milliseconds; default 5000' }),
  },
  { additionalProperties: false, default: {}, description: 'request queue (one inference runs at a time)' },
);

const Health = Type.Object(
  {
    cron: Type.String({ default: '*/30 * * * * *', description: 'node-cron expression (with seconds) for publishing health; default every 30 s' }),
  },
  { additionalProperties: false, default: {}, description: 'health telemetry' },
);

const Log = Type.Object(
  {
    level: Type.Union([Type.Literal('debug'), Type.Literal('info'), Type.Literal('warn'), Type.Literal('error')], { default: 'info', description: 'lowest log level written to stderr; default info' }),
    format: Type.Union([Type.Literal('text'), Type.Literal('json')], { default: 'text', description: 'log line format; default text' }),
  },
  { additionalProperties: false, default: {}, description: 'logging' },
);

export const ConfigSchema = Type.Object(
  {
    version: Type.Integer({ minimum: 0, default: 0, description: 'config version, published in info; fleet pushes order configs by it; default 0' }),
    device_id: Type.Optional(Type.String({ pattern: NAME, description: 'this device in topics: <base_topic>/<device_id>/...; default: the host name (sanitized)' })),
    mqtt: Mqtt,
    broker: Broker,
    models: Type.Record(Type.String({ pattern: NAME }), ModelSchema, { default: {}, description: 'models by name; default none' }),
    routes: Type.Array(Route, { default: [], description: 'request routes; default none' }),
    queue: Queue,
    health: Health,
    dedupe_window_s: Type.Integer({ minimum: 0, maximum: 86400, default: 60, description: 'a request id (correlation data or transaction) seen again within this many seconds is answered once; default 60' }),
    log: Log,
    policy: PolicyConfigSchema,
  },
  { additionalProperties: false, $id: 'https://sedac.dev/schema/config.json', title: 'SEDAC agent configuration' },
);

/** The config as it is after defaults are applied and it has validated. */
export type SedacConfig = Static<typeof ConfigSchema> & { device_id: string };
export type MqttConfig = SedacConfig['mqtt'];
export type RouteConfig = SedacConfig['routes'][number];
export type ModelConfig = SedacConfig['models'][string];
