/**
 * Locating the sysfs fixture trees (test/fixtures/sysfs/<board>) and making writable copies of
 * them for tests that rewrite files while a reader runs.
 */
import { chmodSync, cpSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { sensorsConfig, type SensorsConfig } from '../../agent/sensors/config.js';

export const FIXTURES = resolve(process.cwd(), 'test/fixtures/sysfs');

/** Absolute path of a fixture tree; throws (never skips) when it is missing. */
export function fixture(board: string): string {
  const p = join(FIXTURES, board);
  if (!existsSync(p)) throw new Error(`missing sysfs fixture ${p}: run the tests from the repository root`);
  return p;
}

/** A writable copy of a fixture tree in a temp dir, plus a cleanup. */
export function copyFixture(board: string): { root: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), `sedac-sysfs-${board}-`));
  const root = join(dir, board);
  cpSync(fixture(board), root, { recursive: true });
  return { root, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A private copy of the vcgencmd stand-in that prints `throttled=<value>`. */
export function fakeVcgencmd(value: string, script = 'vcgencmd'): { path: string; set: (v: string) => void; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'sedac-vcgencmd-'));
  const path = join(dir, 'vcgencmd');
  cpSync(join(FIXTURES, 'bin', script), path);
  chmodSync(path, 0o755);
  const set = (v: string): void => writeFileSync(join(dir, 'throttled'), `${v}\n`);
  set(value);
  return { path, set, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Sensors config for a fixture tree: no vcgencmd, no systeminformation unless asked. */
export function fixtureConfig(root: string, extra: Record<string, unknown> = {}): SensorsConfig {
  return sensorsConfig({ sysfs_root: root, vcgencmd: '', systeminformation_fallback: false, ...extra });
}
