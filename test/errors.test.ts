/** The error catalogue, the README and the code agree (fastify's errors test, in spirit). */
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { ERROR_CODES, SedacError, asSedacError } from '../agent/errors.js';

const readme = readFileSync('README.md', 'utf8');
const catalogue = Object.keys(ERROR_CODES);

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? sources(p) : p.endsWith('.ts') ? [p] : [];
  });
}

test('every catalogued code is documented in the README error table', () => {
  for (const code of catalogue) assert.match(readme, new RegExp(`\\| \`${code}\` \\|`), `README lacks a row for ${code}`);
});

test('every code the README documents exists in the catalogue', () => {
  for (const m of readme.matchAll(/\| `(E_[A-Z_]+)` \|/g)) assert.ok(catalogue.includes(m[1]!), `README documents unknown code ${m[1]}`);
});

test('every E_ code written in the agent source is catalogued', () => {
  for (const file of sources('agent')) {
    for (const m of readFileSync(file, 'utf8').matchAll(/['"`](E_[A-Z][A-Z_]+)['"`]/g)) assert.ok(catalogue.includes(m[1]!), `${file} uses ${m[1]}, which is not in ERROR_CODES`);
  }
});

test('every catalogued code is used somewhere in the agent', () => {
  const all = sources('agent')
    .filter((f) => !f.endsWith('errors.ts'))
    .map((f) => readFileSync(f, 'utf8'))
    .join('\n');
  for (const code of catalogue) assert.ok(all.includes(code), `${code} is catalogued but nothing raises it`);
});

test('SedacError serializes to {code, message} and wraps foreign errors', () => {
  assert.deepEqual(new SedacError('E_BUSY', 'full').toJSON(), { code: 'E_BUSY', message: 'full' });
  const w = asSedacError(new TypeError('boom'));
  assert.equal(w.code, 'E_INTERNAL');
  assert.equal(w.message, 'boom');
});
