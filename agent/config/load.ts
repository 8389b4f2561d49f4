/**
 * Reading a config: YAML text → defaults applied → schema-validated → cross-checked (routes name
 * existing models, subscribed routes have an output topic, names are unique). Throws
 * E_CONFIG_INVALID naming every problem with its path. Pure apart from `readConfigFile`.
 */
import { policyProblems } from '../policy/config.js';
import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { Value } from '@sinclair/typebox/value';
import cron from 'node-cron';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import { SedacError } from '../errors.js';
import { ConfigSchema, ModelSchema, type SedacConfig } from './schema.js';

/** Parse and validate YAML config text. `source` names the text in error messages. */
export function parseConfig(text: string, source = 'config'): SedacConfig {
  let raw: unknown;
  try {
    raw = parseYaml(text, { prettyErrors: true, uniqueKeys: true });
  } catch (err) {
    const msg = err instanceof YAMLParseError ? err.message.split('\n')[0] : String(err);
    throw new SedacError('E_CONFIG_INVALID', `${source}: not valid YAML: ${msg}`);
  }
  return validateConfig(raw ?? {}, source);
}

/** Apply defaults to a parsed object and validate it. Does not modify `raw`. */
export function validateConfig(raw: unknown, source = 'config'): SedacConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new SedacError('E_CONFIG_INVALID', `${source}: the top level must be a mapping`);
  }
  const value = Value.Default(ConfigSchema, structuredClone(raw)) as Record<string, unknown>;
  // TypeBox does not descend into Record values for defaults: apply the model defaults per entry
  const models = value.models;
  if (typeof models === 'object' && models !== null && !Array.isArray(models)) {
    for (const [k, m] of Object.entries(models)) (models as Record<string, unknown>)[k] = Value.Default(ModelSchema, m);
  }
  const problems = [...Value.Errors(ConfigSchema, value)].slice(0, 20).map((e) => `${e.path || '/'}: ${e.message}`);
  if (problems.length > 0) {
    throw new SedacError('E_CONFIG_INVALID', `${source}: ${problems.join('; ')}`, { problems });
  }
  const cfg = value as SedacConfig;
  cfg.device_id ??= defaultDeviceId();
  const cross = crossCheck(cfg);
  if (cross.length > 0) throw new SedacError('E_CONFIG_INVALID', `${source}: ${cross.join('; ')}`, { problems: cross });
  return cfg;
}

/** Read and validate a YAML config file. */
export async function readConfigFile(path: string): Promise<SedacConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    throw new SedacError('E_CONFIG_INVALID', `cannot read config ${path}: ${code}`);
  }
  return parseConfig(text, path);
}

/** The host name reduced to the device-id alphabet (letters, digits, `_`, `-`). */
export function defaultDeviceId(): string {
  const id = hostname().replace(/[^A-Za-z0-9_-]/g, '-').slice(0, 64);
  return id.length > 0 ? id : 'sedac';
}

function crossCheck(cfg: SedacConfig): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  cfg.routes.forEach((r, i) => {
    if (seen.has(r.name)) out.push(`/routes/${i}/name: duplicate route name '${r.name}'`);
    seen.add(r.name);
    if (!Object.prototype.hasOwnProperty.call(cfg.models, r.model)) {
      out.push(`/routes/${i}/model: no model named '${r.model}' in models`);
    }
    if (r.subscribe.length > 0 && r.publish === undefined) {
      out.push(`/routes/${i}/publish: a route with subscribe needs a publish topic template`);
    }
    r.subscribe.forEach((f, j) => {
      const why = filterProblem(f);
      if (why) out.push(`/routes/${i}/subscribe/${j}: ${why}`);
    });
  });
  out.push(...policyProblems(cfg.policy));
  if (!cron.validate(cfg.health.cron)) out.push(`/health/cron: '${cfg.health.cron}' is not a valid cron expression`);
  if (cfg.mqtt.base_topic.startsWith('/') || cfg.mqtt.base_topic.endsWith('/')) {
    out.push('/mqtt/base_topic: must not start or end with /');
  }
  return out;
}

/** Why an MQTT topic filter is invalid, or undefined when it is fine. */
function filterProblem(filter: string): string | undefined {
  const levels = filter.split('/');
  for (let i = 0; i < levels.length; i++) {
    const l = levels[i] ?? '';
    if (l.includes('#') && (l !== '#' || i !== levels.length - 1)) return `'#' must be a whole last level in '${filter}'`;
    if (l.includes('+') && l !== '+') return `'+' must be a whole level in '${filter}'`;
  }
  return undefined;
}
