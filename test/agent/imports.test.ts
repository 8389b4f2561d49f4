/** One door per outside system: only agent/transport/mqttClient.ts imports mqtt, only agent/engine/ort.ts imports onnxruntime-node. */
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? sources(p) : p.endsWith('.ts') ? [p] : [];
  });
}

function importers(pkg: string): string[] {
  const re = new RegExp(`(from\\s+|import\\s*\\(\\s*|require\\s*\\(\\s*)['"]${pkg.replace(/[-/]/g, '\\$&')}(/[^'"]*)?['"]`);
  return sources('agent').filter((f) => re.test(readFileSync(f, 'utf8')));
}

test('only agent/transport/mqttClient.ts imports mqtt', () => {
  assert.deepEqual(importers('mqtt'), ['agent/transport/mqttClient.ts']);
});

test('only agent/engine/ort.ts imports onnxruntime-node', () => {
  assert.deepEqual(importers('onnxruntime-node'), ['agent/engine/ort.ts']);
});
