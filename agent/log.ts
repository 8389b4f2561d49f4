/**
 * A small structured logger: one line per event on stderr, either `text`
 * (`2024-05-01T12:00:00.000Z info  mqtt connected url=mqtt://... protocol=5`) or `json`
 * (one JSON object per line, for journald / log shippers). No dependencies, no buffering.
 */

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  /** A logger that adds `fields` to every line (e.g. `{feature: 'health'}`). */
  child(fields: LogFields): Logger;
}

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface LoggerOptions {
  /** lowest level written; default `info` */
  level?: LogLevel;
  /** `text` (default) or `json` lines */
  format?: 'text' | 'json';
  /** where lines go; default process.stderr */
  write?: (line: string) => void;
}

export function createLogger(opts: LoggerOptions = {}, base: LogFields = {}): Logger {
  const min = RANK[opts.level ?? 'info'];
  const format = opts.format ?? 'text';
  const write = opts.write ?? ((line: string) => process.stderr.write(line + '\n'));
  const emit = (level: LogLevel, msg: string, fields?: LogFields): void => {
    if (RANK[level] < min) return;
    const all = { ...base, ...fields };
    const time = new Date().toISOString();
    if (format === 'json') {
      write(JSON.stringify({ time, level, msg, ...all }, jsonSafe));
      return;
    }
    const kv = Object.entries(all)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `${k}=${formatValue(v)}`)
      .join(' ');
    write(`${time} ${level.padEnd(5)} ${msg}${kv ? ' ' + kv : ''}`);
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    child: (fields) => createLogger(opts, { ...base, ...fields }),
  };
}

/** A logger that drops everything (tests, benches). */
export const silentLogger: Logger = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
  child: () => silentLogger,
};

function formatValue(v: unknown): string {
  if (typeof v === 'string') return /[\s"=]/.test(v) ? JSON.stringify(v) : v;
  if (v instanceof Error) return JSON.stringify(v.message);
  return JSON.stringify(v, jsonSafe) ?? String(v);
}

function jsonSafe(_key: string, value: unknown): unknown {
  if (typeof value === 'bigint') return value.toString();
  if (value instanceof Error) return value.message;
  return value;
}
