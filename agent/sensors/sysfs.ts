/**
 * Small, forgiving readers for sysfs attribute files. A missing or unreadable file is `undefined`:
 * sensors come and go (hot-plugged UPS HATs, disabled zones) and must never throw.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

/** Trimmed contents of a file, or undefined. */
export function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** An integer attribute (sysfs writes plain decimal), or undefined when missing or not a number. */
export function readInt(path: string): number | undefined {
  const text = readText(path);
  if (text === undefined || !/^-?\d+$/.test(text)) return undefined;
  return Number.parseInt(text, 10);
}

/** One collator for every comparison (localeCompare with options builds a new one per call; same order). */
const NATURAL = new Intl.Collator('en', { numeric: true });

/** Entries of a directory sorted in natural order (thermal_zone2 before thermal_zone10); [] when missing. */
export function listDir(path: string): string[] {
  try {
    return readdirSync(path).sort(naturalCompare);
  } catch {
    return [];
  }
}

export function naturalCompare(a: string, b: string): number {
  return NATURAL.compare(a, b);
}

export { join };
