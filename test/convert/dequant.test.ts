import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { f16ToF32, f32ToF16, toFloat32, widenBf16 } from '../../agent/convert/dequant.js';
import type { SourceTensor } from '../../agent/convert/source.js';
import { SedacError } from '../../agent/errors.js';

describe('half precision', () => {
  it('decodes known IEEE binary16 bit patterns', () => {
    const cases: [number, number][] = [
      [0x0000, 0],
      [0x3c00, 1],
      [0xc000, -2],
      [0x3555, 0.333251953125],
      [0x7bff, 65504],
      [0x0400, 2 ** -14],
      [0x03ff, 1023 * 2 ** -24],
      [0x0001, 2 ** -24],
      [0x7c00, Infinity],
      [0xfc00, -Infinity],
    ];
    for (const [h, v] of cases) assert.equal(f16ToF32(h), v, `0x${h.toString(16)}`);
    assert.ok(Object.is(f16ToF32(0x8000), -0));
    assert.ok(Number.isNaN(f16ToF32(0x7e00)));
  });

  it('encodes with round-to-nearest-even, overflow to infinity and subnormals', () => {
    assert.equal(f32ToF16(1), 0x3c00);
    assert.equal(f32ToF16(1 + 2 ** -11), 0x3c00, 'a tie rounds to the even mantissa');
    assert.equal(f32ToF16(1 + 3 * 2 ** -11), 0x3c02, 'a tie rounds to the even mantissa (up)');
    assert.equal(f32ToF16(1 + 2 ** -11 + 2 ** -20), 0x3c01, 'above the tie rounds up');
    assert.equal(f32ToF16(65504), 0x7bff);
    assert.equal(f32ToF16(65520), 0x7c00, '65520 rounds to infinity');
    assert.equal(f32ToF16(-1e9), 0xfc00);
    assert.equal(f32ToF16(2 ** -24), 0x0001);
    assert.equal(f32ToF16(2 ** -25), 0x0000, 'half the smallest subnormal ties to zero');
    assert.equal(f32ToF16(3 * 2 ** -26), 0x0001);
    assert.equal(f32ToF16(2 ** -14 - 2 ** -25), 0x0400, 'the largest subnormal rounds up into the normals');
    assert.equal(f32ToF16(-0), 0x8000);
    assert.equal(f32ToF16(NaN) & 0x7c00, 0x7c00);
    assert.notEqual(f32ToF16(NaN) & 0x3ff, 0);
  });

  it('round-trips every finite half value', () => {
    for (let h = 0; h < 0x10000; h++) {
      if ((h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0) continue; // NaN payloads
      const back = f32ToF16(f16ToF32(h));
      if (back !== h) assert.fail(`0x${h.toString(16)} → ${f16ToF32(h)} → 0x${back.toString(16)}`);
    }
  });
});

function tensor(dtype: SourceTensor['dtype'], shape: number[], bytes: number[], extra: Partial<SourceTensor> = {}): SourceTensor {
  return { name: 't', dtype, shape, data: Uint8Array.from(bytes), ...extra };
}

describe('toFloat32', () => {
  it('f32 and f16 (including an unaligned view)', () => {
    const f = new Float32Array([1.5, -2, 3.25]);
    const buf = new Uint8Array(13);
    buf.set(new Uint8Array(f.buffer), 1);
    assert.deepEqual(toFloat32({ name: 'x', dtype: 'f32', shape: [3], data: buf.subarray(1) }), f);
    assert.deepEqual(toFloat32(tensor('f16', [1, 3], [0x00, 0x3c, 0x00, 0xc0, 0x00, 0x38])), new Float32Array([1, -2, 0.5]));
  });

  it('q8_0: one fp16 scale, then 32 int8 values', () => {
    const bytes = [0x00, 0x38]; // d = 0.5
    for (let j = 0; j < 32; j++) bytes.push((j - 16) & 0xff);
    const got = toFloat32(tensor('q8_0', [1, 32], bytes));
    assert.deepEqual(Array.from(got), Array.from({ length: 32 }, (_, j) => (j - 16) * 0.5));
  });

  it('q4_0: low nibbles are elements 0..15, high nibbles 16..31, value (q - 8) * d', () => {
    const bytes = [0x00, 0x40]; // d = 2
    for (let j = 0; j < 16; j++) bytes.push(j | ((15 - j) << 4));
    const got = Array.from(toFloat32(tensor('q4_0', [32], bytes)));
    assert.deepEqual(got.slice(0, 4), [-16, -14, -12, -10]);
    assert.deepEqual(got.slice(14, 18), [12, 14, 14, 12]);
    assert.deepEqual(got.slice(28), [-10, -12, -14, -16]);
  });

  it('q8_g: one f32 scale per group of consecutive values, groups may span rows', () => {
    // shape [2, 3] with groupSize 2: groups (0,1) (2,3) (4,5) — the middle one spans the rows
    const got = toFloat32(tensor('q8_g', [2, 3], [1, 2, 3, 0xfc, 5, 6], { groupSize: 2, scales: new Float32Array([1, 0.5, -2]) }));
    assert.deepEqual(Array.from(got), [1, 2, 1.5, -2, -10, -12]);
    assert.throws(() => toFloat32(tensor('q8_g', [2, 3], [1, 2, 3, 4, 5, 6], { groupSize: 2, scales: new Float32Array([1]) })), (e: unknown) => e instanceof SedacError && e.code === 'E_MODEL_FORMAT');
  });

  it('rejects data whose length does not match the shape', () => {
    assert.throws(() => toFloat32(tensor('f32', [2], [0, 0, 0, 0])), (e: unknown) => e instanceof SedacError && e.code === 'E_MODEL_FORMAT');
    assert.throws(() => toFloat32(tensor('q8_0', [33], new Array<number>(34).fill(0))), (e: unknown) => e instanceof SedacError && e.code === 'E_MODEL_FORMAT');
  });

  it('bf16 widens to the f32 with the same high half', () => {
    const out = new Float32Array(widenBf16(Uint8Array.from([0x80, 0x3f, 0x40, 0xc0])).buffer);
    assert.deepEqual(Array.from(out), [1, -3]);
  });
});
