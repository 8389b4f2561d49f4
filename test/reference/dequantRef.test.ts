/**
 * The reference's own dequantization, checked on hand-built blocks whose values follow from the
 * ggml / IEEE layouts by hand (not from any code under test).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { SourceDType, SourceTensor } from '../../agent/convert/source.js';
import { dequantizeRef, halfToNumber } from './dequantRef.js';

function tensor(dtype: SourceDType, shape: number[], bytes: number[], extra: Partial<SourceTensor> = {}): SourceTensor {
  return { name: `t_${dtype}`, dtype, shape, data: Uint8Array.from(bytes), ...extra };
}

test('halfToNumber decodes normals, subnormals, infinities and NaN', () => {
  assert.equal(halfToNumber(0x3c00), 1);
  assert.equal(halfToNumber(0xc000), -2);
  assert.equal(halfToNumber(0x7bff), 65504);
  assert.equal(halfToNumber(0x0001), 2 ** -24);
  assert.equal(halfToNumber(0x3555), 1365 / 4096);
  assert.equal(halfToNumber(0x7c00), Infinity);
  assert.equal(halfToNumber(0xfc00), -Infinity);
  assert.ok(Number.isNaN(halfToNumber(0x7e00)));
  assert.ok(Object.is(halfToNumber(0x8000), -0));
});

test('f32 and f16 tensors decode little-endian', () => {
  const f32 = new Float32Array([1.5, -0.25]);
  assert.deepEqual([...dequantizeRef(tensor('f32', [2], [...new Uint8Array(f32.buffer)]))], [1.5, -0.25]);
  assert.deepEqual([...dequantizeRef(tensor('f16', [1, 2], [0x00, 0x3c, 0x00, 0xc0]))], [1, -2]);
});

test('q8_0: value = fp16 scale * int8, blocks of 32 (34 bytes)', () => {
  const bytes: number[] = [];
  // block 0: d = 2.0 (0x4000), q_j = j - 16; block 1: d = -0.5 (0xb800), q_j = 127 for j even, -128 for j odd
  bytes.push(0x00, 0x40);
  for (let j = 0; j < 32; j++) bytes.push((j - 16) & 0xff);
  bytes.push(0x00, 0xb8);
  for (let j = 0; j < 32; j++) bytes.push(j % 2 === 0 ? 127 : 0x80);
  const out = dequantizeRef(tensor('q8_0', [2, 32], bytes));
  for (let j = 0; j < 32; j++) {
    assert.equal(out[j], 2 * (j - 16));
    assert.equal(out[32 + j], j % 2 === 0 ? -63.5 : 64);
  }
});

test('q4_0: low nibbles are values 0..15, high nibbles 16..31, value = d * (nibble - 8)', () => {
  const bytes = [0x00, 0x38]; // d = 0.5
  for (let j = 0; j < 16; j++) bytes.push(j | ((15 - j) << 4));
  const out = dequantizeRef(tensor('q4_0', [32], bytes));
  for (let j = 0; j < 16; j++) {
    assert.equal(out[j], 0.5 * (j - 8));
    assert.equal(out[16 + j], 0.5 * (7 - j));
  }
});

test('q8_g: one f32 scale per group of consecutive values', () => {
  const out = dequantizeRef(tensor('q8_g', [2, 2], [1, 2, 0xfd, 4], { scales: new Float32Array([0.5, -1]), groupSize: 2 }));
  assert.deepEqual([...out], [0.5, 1, 3, -4]);
});

test('a truncated tensor is refused with its name and sizes', () => {
  assert.throws(() => dequantizeRef(tensor('f32', [4], [0, 0, 0, 0])), /t_f32.*4 bytes, needs 16/);
  assert.throws(() => dequantizeRef(tensor('q8_0', [32], [0, 0x3c, 1])), /t_q8_0.*needs 34/);
});
