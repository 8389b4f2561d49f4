/**
 * Small wrapper over node:util parseArgs shared by every command: parse errors and a wrong number
 * of positional arguments become E_USAGE; `--help` / `-h` prints the usage and returns undefined
 * (the command then exits 0).
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { SedacError } from '../errors.js';

export function parse<T extends NonNullable<ParseArgsConfig['options']>>(argv: string[], options: T, usage: string, positionals: [min: number, max: number] = [0, 0]) {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true });
  } catch (err) {
    throw new SedacError('E_USAGE', `${(err as Error).message}\n${usage}`);
  }
  if ((parsed.values as { help?: boolean }).help) {
    console.log(usage);
    return undefined;
  }
  const n = parsed.positionals.length;
  if (n < positionals[0] || n > positionals[1]) throw new SedacError('E_USAGE', usage);
  return parsed;
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
