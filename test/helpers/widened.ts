/**
 * The widened caption models (../shared/tools/widen_gguf.py): the trained caption Llamas with every
 * layer ×4 or ×8 as wide and outputs identical to the originals, so their exit behaviour is the
 * trained models' while a layer costs what a 27M- or 105M-parameter model's layer costs. Generated
 * once into the bench cache and checked against the sha256 the tool's README gives; a missing
 * python3/numpy or a mismatch fails with what is wrong.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { sha256File } from '../../agent/convert/readerCommon.js';
import { sharedPath } from './shared.js';

export interface WideSpec {
  /** the trained model under ../shared/models */
  base: 'caption-lm-8L' | 'caption-lm-8L-ee';
  k: 4 | 8;
  type: 'f32' | 'f16' | 'q8_0';
}

/** The name the bench tables use, e.g. caption-lm-8L-ee-x4 or caption-lm-8L-ee-x4-q8_0. */
export function wideName(w: WideSpec): string {
  return `${w.base}-x${w.k}${w.type === 'f32' ? '' : `-${w.type}`}`;
}

/** Where widened GGUFs are cached (tests and benches): $SEDAC_WIDE_CACHE, else ~/.cache/sedac/widened. */
export function wideCacheDir(): string {
  return process.env.SEDAC_WIDE_CACHE ?? join(homedir(), '.cache', 'sedac', 'widened');
}

/** The sha256 the tool's README lists for this model, from its table of commands (not a hand copy). */
export function readmeSha256(w: WideSpec): string {
  const readme = readFileSync(sharedPath('tools/README.md'), 'utf8');
  for (const line of readme.split('\n')) {
    const cells = line.split('|').map((c) => c.trim());
    const cmd = cells[1] ?? '';
    const sha = /`([0-9a-f]{64})`/.exec(cells[4] ?? '')?.[1];
    if (!sha || !cmd.includes(`-k ${w.k}`)) continue;
    const base = cmd.includes('caption-lm-8L-ee') ? 'caption-lm-8L-ee' : 'caption-lm-8L';
    const type = /--type (\w+)/.exec(cmd)?.[1] ?? 'f32';
    if (base === w.base && type === w.type) return sha;
  }
  throw new Error(`../shared/tools/README.md lists no sha256 for ${wideName(w)}: widen it by hand and check it, or pick a listed one`);
}

/** The first python that imports numpy: the one on PATH (e.g. pyenv), else Debian's (python3-numpy). */
function pythonWithNumpy(): string {
  for (const py of ['python3', '/usr/bin/python3']) {
    try {
      execFileSync(py, ['-c', 'import numpy'], { stdio: 'ignore' });
      return py;
    } catch {
      // try the next one
    }
  }
  throw new Error('widening a model needs python3 with numpy: apt-get install -y python3-numpy');
}

/** The widened GGUF, generated on first use (a few seconds to a minute) and checked every time. */
export async function widenedGguf(w: WideSpec): Promise<string> {
  const dir = wideCacheDir();
  mkdirSync(dir, { recursive: true });
  const out = join(dir, `${wideName(w)}.gguf`);
  const want = readmeSha256(w);
  if (!existsSync(out)) {
    const src = sharedPath(`models/${w.base}/${w.base}.gguf`);
    const tmp = `${out}.tmp-${process.pid}`;
    try {
      execFileSync(pythonWithNumpy(), [sharedPath('tools/widen_gguf.py'), src, tmp, '-k', String(w.k), '--type', w.type], { stdio: ['ignore', 'ignore', 'pipe'] });
    } catch (err) {
      rmSync(tmp, { force: true });
      throw new Error(`widen_gguf.py failed for ${wideName(w)} (needs python3 with numpy: apt-get install -y python3-numpy): ${(err as Error).message}`);
    }
    renameSync(tmp, out);
  }
  const got = await sha256File(out);
  if (got !== want) throw new Error(`${out}: sha256 ${got} is not the README's ${want} for ${wideName(w)}; delete it to regenerate`);
  return out;
}
