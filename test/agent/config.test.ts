import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { parseConfig, readConfigFile, validateConfig } from '../../agent/config/load.js';
import { ConfigSchema } from '../../agent/config/schema.js';
import { SCHEMA_FILE, schemaJson } from '../../agent/config/writeSchema.js';
import { SedacError } from '../../agent/errors.js';

function invalid(fn: () => unknown, ...fragments: string[]): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof SedacError, String(err));
    assert.equal(err.code, 'E_CONFIG_INVALID');
    for (const f of fragments) assert.ok(err.message.includes(f), `'${err.message}' mentions '${f}'`);
    return true;
  });
}

test('config/sedac.example.yaml loads against the schema with the documented defaults', async () => {
  const cfg = await readConfigFile('config/sedac.example.yaml');
  assert.equal(cfg.mqtt.base_topic, 'sedac');
  assert.equal(cfg.mqtt.protocol_version, 5);
  assert.equal(cfg.broker.enabled, true, 'npm start runs the embedded broker');
  assert.equal(cfg.models.caption?.source, '../shared/models/caption-lm-8L-ee/caption-lm-8L-ee.gguf');
  assert.deepEqual(cfg.routes.map((r) => r.name), ['caption', 'prompt']);
  assert.deepEqual(cfg.routes[0]?.subscribe, ['frigate/+/caption']);
  assert.match(cfg.device_id, /^[A-Za-z0-9_-]+$/, 'device id defaults to the sanitized host name');
});

test('the example documents every schema key (each appears in the file, commented or not)', () => {
  const text = readFileSync('config/sedac.example.yaml', 'utf8');
  const keys = new Set<string>();
  const walk = (s: unknown): void => {
    if (typeof s !== 'object' || s === null) return;
    const o = s as { properties?: Record<string, unknown>; items?: unknown; patternProperties?: Record<string, unknown>; anyOf?: unknown[] };
    for (const [k, v] of Object.entries(o.properties ?? {})) {
      keys.add(k);
      walk(v);
    }
    walk(o.items);
    for (const v of Object.values(o.patternProperties ?? {})) walk(v);
  };
  walk(ConfigSchema);
  const missing = [...keys].filter((k) => !new RegExp(`(^|[\\s{#-])${k}:`, 'm').test(text));
  assert.deepEqual(missing, []);
});

test('config/schema.json is fresh (regenerate: npm run build && node dist/agent/config/writeSchema.js)', () => {
  assert.equal(readFileSync(SCHEMA_FILE, 'utf8'), schemaJson());
});

test('every agent option has a one-line description (the policy fragment is checked by its owners)', () => {
  const missing: string[] = [];
  const walk = (s: unknown, path: string): void => {
    if (typeof s !== 'object' || s === null) return;
    const o = s as { properties?: Record<string, unknown>; items?: unknown; patternProperties?: Record<string, unknown> };
    for (const [k, v] of Object.entries(o.properties ?? {})) {
      if (path === '' && k === 'policy') continue;
      const d = (v as { description?: string }).description;
      if (!d || d.includes('\n')) missing.push(`${path}/${k}`);
      walk(v, `${path}/${k}`);
    }
    walk(o.items, `${path}[]`);
    for (const v of Object.values(o.patternProperties ?? {})) walk(v, `${path}/*`);
  };
  walk(ConfigSchema, '');
  assert.deepEqual(missing, []);
});

test('defaults fill an almost empty config', () => {
  const cfg = parseConfig('device_id: d1\nmodels: {m: {source: x.gguf}}\nroutes: [{name: r, task: generate, model: m}]\n');
  assert.equal(cfg.mqtt.url, 'mqtt://127.0.0.1:1883');
  assert.equal(cfg.mqtt.keepalive_s, 30);
  assert.equal(cfg.mqtt.max_payload_bytes, 65536);
  assert.equal(cfg.models.m?.threads, 1, 'defaults apply inside the models record');
  assert.equal(cfg.routes[0]?.max_tokens, 32);
  assert.equal(cfg.routes[0]?.prompt, '{text}');
  assert.equal(cfg.queue.size, 16);
  assert.equal(cfg.health.cron, '*/30 * * * * *');
  assert.equal(cfg.dedupe_window_s, 60);
  assert.equal(typeof cfg.policy, 'object', 'the policy slot is filled by its fragment');
});

test('invalid configs are refused with the path of each problem', () => {
  invalid(() => parseConfig('mqtt: [1, 2'), 'not valid YAML');
  invalid(() => parseConfig('- a\n- b\n'), 'top level must be a mapping');
  invalid(() => parseConfig('mqtt: {keepalive_s: "thirty"}'), '/mqtt/keepalive_s');
  invalid(() => parseConfig('mqtt: {protocol_version: 3}'), '/mqtt/protocol_version');
  invalid(() => parseConfig('mqtt: {url: "http://x"}'), '/mqtt/url');
  invalid(() => parseConfig('mqtt: {base_topic: "a/#"}'), '/mqtt/base_topic');
  invalid(() => parseConfig('device_id: "a/b"'), '/device_id');
  invalid(() => parseConfig('typo_key: 1'), 'typo_key');
  invalid(() => parseConfig('routes: [{name: r, task: generate, model: nope}]'), "/routes/0/model: no model named 'nope'");
  invalid(() => parseConfig('models: {m: {source: a}}\nroutes: [{name: r, task: generate, model: m, subscribe: ["a/+"]}]'), '/routes/0/publish');
  invalid(() => parseConfig('models: {m: {source: a}}\nroutes: [{name: r, task: generate, model: m, subscribe: ["a/b#"], publish: x}]'), '/routes/0/subscribe/0');
  invalid(() => parseConfig('models: {m: {source: a}}\nroutes: [{name: r, task: generate, model: m}, {name: r, task: generate, model: m}]'), 'duplicate route name');
  invalid(() => parseConfig('health: {cron: "every minute"}'), '/health/cron');
  invalid(() => parseConfig('models: {m: {source: a, threads: 0}}'), '/models/m/threads');
});

test('validateConfig does not modify its input', () => {
  const raw = { device_id: 'x', mqtt: { url: 'mqtt://h:1' } };
  const copy = structuredClone(raw);
  validateConfig(raw);
  assert.deepEqual(raw, copy);
});
