/**
 * Locating ../shared (models and data sets) from tests and benches. CI puts it beside the clone;
 * SEDAC_SHARED overrides. A missing file fails loudly with what is missing, never skips.
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';

export const SHARED = resolve(process.env.SEDAC_SHARED ?? resolve(process.cwd(), '../shared'));

/** Absolute path of a file under ../shared; throws a clear error when it is missing. */
export function sharedPath(rel: string): string {
  const p = resolve(SHARED, rel);
  if (!existsSync(p)) {
    throw new Error(`missing shared file ${p}: tests need ../shared (models and data) beside the repository, or SEDAC_SHARED pointing at it`);
  }
  return p;
}
