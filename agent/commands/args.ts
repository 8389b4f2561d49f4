/** Small wrapper over node:util parseArgs that turns parse errors into E_USAGE. */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { SedacError } from '../errors.js';

export function parse<T extends NonNullable<ParseArgsConfig['options']>>(argv: string[], options: T, usage: string) {
  try {
    return parseArgs({ args: argv, options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true });
  } catch (err) {
    throw new SedacError('E_USAGE', `${(err as Error).message}\n${usage}`);
  }
}

export function intOpt(v: string | undefined, name: string, def: number, min = 0): number {
  if (v === undefined) return def;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new SedacError('E_USAGE', `--${name} must be an integer ≥ ${min}, got '${v}'`);
  return n;
}

export function numOpt(v: string | undefined, name: string, def: number, min = 0, max = Infinity): number {
  if (v === undefined) return def;
  const n = Number(v);
  if (!Number.isFinite(n) || n < min || n > max) throw new SedacError('E_USAGE', `--${name} must be a number in [${min}, ${max}], got '${v}'`);
  return n;
}
