/**
 * Every MQTT topic string the agent uses, and the topic helpers (filter matching, wildcard
 * captures, output-topic templates). Nothing else in the agent spells a topic.
 *
 * Layout under `<base>/<device_id>/` (base default `sedac`):
 *   state (retained, also the last will) · info (retained) · health (retained) · policy (retained)
 *   request/<route> → response/<route> · config/desired (retained) · config/reported (retained)
 * and the fleet-wide `<base>/fleet/config/desired`.
 */

export interface Topics {
  /** `<base>/<device_id>` */
  readonly root: string;
  /** retained `{"state":"online"|"offline"}`; also the last will */
  readonly state: string;
  /** retained versions, models, bundle hashes, config version */
  readonly info: string;
  /** retained periodic health */
  readonly health: string;
  /** retained current operating level, readings, why */
  readonly policy: string;
  /** filter matching every request topic: `<root>/request/#` */
  readonly requestFilter: string;
  /** prefix of request topics, with trailing slash */
  readonly requestPrefix: string;
  /** request topic of a route */
  request(route: string): string;
  /** default response topic of a route (3.1.1 clients, and MQTT 5 requests without responseTopic) */
  response(route: string): string;
  /** retained YAML pushed to this device */
  readonly configDesired: string;
  /** retained YAML pushed to every device */
  readonly fleetConfigDesired: string;
  /** retained applied version, status, reason */
  readonly configReported: string;
}

export function topicsFor(base: string, deviceId: string): Topics {
  const root = `${base}/${deviceId}`;
  return {
    root,
    state: `${root}/state`,
    info: `${root}/info`,
    health: `${root}/health`,
    policy: `${root}/policy`,
    requestFilter: `${root}/request/#`,
    requestPrefix: `${root}/request/`,
    request: (route) => `${root}/request/${route}`,
    response: (route) => `${root}/response/${route}`,
    configDesired: `${root}/config/desired`,
    fleetConfigDesired: `${base}/fleet/config/desired`,
    configReported: `${root}/config/reported`,
  };
}

/** Payloads of the `state` topic. */
export const STATE_ONLINE = '{"state":"online"}';
export const STATE_OFFLINE = '{"state":"offline"}';

/**
 * Match a topic against a filter. Returns the levels captured by `+` and `#` wildcards, in order
 * (`#` captures the rest joined with `/`), or undefined when it does not match. Topics starting
 * with `$` are not matched by a leading wildcard (MQTT 4.7.2).
 */
export function matchTopic(filter: string, topic: string): string[] | undefined {
  return matchLevels(filter.split('/'), topic.split('/'));
}

/**
 * matchTopic on topic and filter already split at `/` (the transport splits each filter once, at
 * subscribe, and each inbound topic once, whatever the number of subscriptions).
 */
export function matchLevels(f: readonly string[], t: readonly string[]): string[] | undefined {
  if ((f[0] === '+' || f[0] === '#') && t[0]?.startsWith('$')) return undefined;
  const captures: string[] = [];
  for (let i = 0; i < f.length; i++) {
    const fl = f[i];
    if (fl === '#') {
      captures.push(t.slice(i).join('/'));
      return captures;
    }
    const tl = t[i];
    if (tl === undefined) return undefined;
    if (fl === '+') captures.push(tl);
    else if (fl !== tl) return undefined;
  }
  return f.length === t.length ? captures : undefined;
}

/** True when a topic may be published to: non-empty, no wildcard, no NUL, ≤ 65535 bytes. */
export function isPublishableTopic(topic: string): boolean {
  return topic.length > 0 && !topic.includes('+') && !topic.includes('#') && !topic.includes('\u0000') && Buffer.byteLength(topic) <= 65535;
}

/**
 * Fill a template: `{name}` from `vars`, `{1}`..`{n}` from `captures` (1-based). Unknown
 * placeholders are left as they are, so a typo shows up in the output instead of vanishing.
 */
export function fillTemplate(template: string, vars: Record<string, string>, captures: readonly string[] = []): string {
  // fast paths for the common templates (a fixed topic, the default prompt `{text}`); same results
  if (!template.includes('{')) return template;
  if (template === '{text}' && Object.prototype.hasOwnProperty.call(vars, 'text')) return vars.text ?? template;
  return template.replace(/\{([A-Za-z_][A-Za-z0-9_]*|[0-9]+)\}/g, (whole, key: string) => {
    if (/^[0-9]+$/.test(key)) return captures[Number(key) - 1] ?? whole;
    return Object.prototype.hasOwnProperty.call(vars, key) ? (vars[key] ?? whole) : whole;
  });
}
