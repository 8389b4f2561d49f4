/**
 * Corrupted copies of every source format. Each must either fail with a SedacError whose code
 * starts with E_MODEL_, or (when the damage hits a byte nothing depends on, e.g. header padding)
 * load exactly as the clean file does — never throw anything else, never take long.
 *
 * Random flips are drawn only from bytes the file can check: the GGUF header and tensor infos,
 * the llama2.c header (minus seq_len in v1/v2, which nothing cross-checks), and the safetensors
 * header. A flipped metadata value such as a token score or a RoPE theta is undetectable by design.
 */
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { loadSource } from '../../agent/convert/detect.js';
import { parseGguf } from '../../agent/convert/gguf.js';
import type { LlamaSource, SentencePieceVocab, SourceTensor } from '../../agent/convert/source.js';
import { SedacError } from '../../agent/errors.js';
import { linkFolder, MODELS, prng, tempDir } from '../helpers/fixtures.js';
import { llama2cBytes, llama2cTokenizerBytes } from '../helpers/llama2cWriter.js';

/** A single load may take this long at most (ms); clean loads take ~10 ms. */
const TIME_BOUND_MS = 3000;

function tensorList(s: LlamaSource): SourceTensor[] {
  const t = s.tensors;
  return [t.tokEmbd, t.outputNorm, ...(t.output ? [t.output] : []), ...t.layers.flatMap((l) => Object.values(l) as SourceTensor[])];
}

/** The parts of a LlamaSource that must match when a corruption was harmless. */
function assertIdentical(got: LlamaSource, want: LlamaSource, label: string): void {
  assert.deepEqual(got.config, want.config, `${label}: config`);
  assert.deepEqual(got.tokenizer, want.tokenizer, `${label}: tokenizer`);
  const a = tensorList(got);
  const b = tensorList(want);
  assert.equal(a.length, b.length, `${label}: tensor count`);
  a.forEach((t, i) => {
    const u = b[i]!;
    assert.equal(t.dtype, u.dtype, `${label}: ${t.name} dtype`);
    assert.deepEqual(t.shape, u.shape, `${label}: ${t.name} shape`);
    assert.ok(Buffer.from(t.data).equals(Buffer.from(u.data)), `${label}: ${t.name} data`);
    assert.deepEqual(t.scales, u.scales, `${label}: ${t.name} scales`);
  });
}

type Outcome = 'error' | 'identical';

/** Load `path`; assert an E_MODEL_* SedacError or an identical result, within the time bound. */
async function expectSafe(path: string, clean: LlamaSource, label: string): Promise<Outcome> {
  const t0 = performance.now();
  let outcome: Outcome;
  try {
    const s = await loadSource(path);
    assertIdentical(s, clean, label);
    outcome = 'identical';
  } catch (e) {
    if (e instanceof assert.AssertionError) throw e;
    assert.ok(e instanceof SedacError, `${label}: threw a non-Sedac ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
    assert.match(e.code, /^E_MODEL_/, `${label}: code ${e.code} (${e.message})`);
    outcome = 'error';
  }
  const ms = performance.now() - t0;
  assert.ok(ms < TIME_BOUND_MS, `${label}: took ${ms.toFixed(0)} ms`);
  return outcome;
}

function flipped(buf: Uint8Array, at: number, bit: number): Uint8Array {
  const b = Uint8Array.from(buf);
  b[at] = b[at]! ^ (1 << bit);
  return b;
}

function withU64(buf: Uint8Array, at: number, v: bigint): Uint8Array {
  const b = Uint8Array.from(buf);
  new DataView(b.buffer).setBigUint64(at, v, true);
  return b;
}

function withI32(buf: Uint8Array, at: number, v: number): Uint8Array {
  const b = Uint8Array.from(buf);
  new DataView(b.buffer).setInt32(at, v, true);
  return b;
}

function readU64(buf: Uint8Array, at: number): bigint {
  return new DataView(buf.buffer, buf.byteOffset, buf.byteLength).getBigUint64(at, true);
}

/** Offset just after the length-prefixed string `s` (a GGUF key or tensor name) in `buf`. */
function endOf(buf: Uint8Array, s: string): number {
  const at = Buffer.from(buf).indexOf(Buffer.from(s, 'utf8'));
  assert.ok(at > 0, `fixture has ${s}`);
  return at + Buffer.byteLength(s);
}

describe('corrupted model files fail cleanly', () => {
  let dir: string;
  let cleanup: () => void;
  const rand = prng(20240611);
  const pick = (n: number): number => Math.floor(rand() * n);
  const tally: Record<string, Record<Outcome, number>> = {};
  let n = 0;

  async function run(t: TestContext, family: string, label: string, bytes: Uint8Array, clean: LlamaSource, place: (p: string, b: Uint8Array) => string): Promise<void> {
    const name = `${family}: ${label}`;
    await t.test(name, async () => {
      const path = place(join(dir, `case${n++}`), bytes);
      const o = await expectSafe(path, clean, name);
      tally[family] ??= { error: 0, identical: 0 };
      tally[family]![o]++;
    });
  }

  before(() => ({ dir, cleanup } = tempDir('sedac-corrupt-')));
  after(() => {
    cleanup();
    const total = Object.values(tally).reduce((a, r) => a + r.error + r.identical, 0);
    assert.ok(total >= 50, `at least 50 corrupted copies were checked (got ${total})`);
    console.log(`corrupted copies checked: ${JSON.stringify(tally)}`);
  });

  it('GGUF (stories260K): truncations, header / tensor-info flips, wrong counts and sizes', async (t) => {
    const buf = new Uint8Array(readFileSync(MODELS.stories()));
    const clean = await loadSource(MODELS.stories());
    const f = parseGguf(buf);
    const place = (p: string, b: Uint8Array): string => {
      writeFileSync(`${p}.gguf`, b);
      return `${p}.gguf`;
    };
    for (let i = 0; i < 10; i++) {
      const cut = i < 4 ? pick(f.dataOffset) : pick(buf.length - 1);
      await run(t, 'gguf', `truncated at ${cut}`, buf.subarray(0, cut), clean, place);
    }
    for (let i = 0; i < 20; i++) {
      const at = i < 5 ? pick(24) : f.infoOffset + pick(f.dataOffset - f.infoOffset);
      const bit = pick(8);
      await run(t, 'gguf', `byte ${at} bit ${bit} flipped`, flipped(buf, at, bit), clean, place);
    }
    const nTensors = readU64(buf, 8);
    const nKv = readU64(buf, 16);
    await run(t, 'gguf', 'tensor count + 1', withU64(buf, 8, nTensors + 1n), clean, place);
    await run(t, 'gguf', 'tensor count - 1', withU64(buf, 8, nTensors - 1n), clean, place);
    await run(t, 'gguf', 'tensor count 2^60', withU64(buf, 8, 2n ** 60n), clean, place);
    await run(t, 'gguf', 'metadata count + 1', withU64(buf, 16, nKv + 1n), clean, place);
    await run(t, 'gguf', 'metadata count 2^62', withU64(buf, 16, 2n ** 62n), clean, place);
    await run(t, 'gguf', 'first key length 2^50', withU64(buf, 24, 2n ** 50n), clean, place);
    const tokCount = endOf(buf, 'tokenizer.ggml.tokens') + 8; // type u32, element type u32, then count
    await run(t, 'gguf', 'token array count + 1', withU64(buf, tokCount, readU64(buf, tokCount) + 1n), clean, place);
    await run(t, 'gguf', 'token array count 2^40', withU64(buf, tokCount, 2n ** 40n), clean, place);
    await run(t, 'gguf', 'first token string length 2^33', withU64(buf, tokCount + 8, 2n ** 33n), clean, place);
    const emb = endOf(buf.subarray(f.infoOffset), 'token_embd.weight') + f.infoOffset; // n_dims, ne0, ne1, type, offset
    await run(t, 'gguf', 'token_embd ne1 doubled', withU64(buf, emb + 12, readU64(buf, emb + 12) * 2n), clean, place);
    await run(t, 'gguf', 'token_embd ne0 = 2^40', withU64(buf, emb + 4, 2n ** 40n), clean, place);
    const norm = endOf(buf.subarray(f.infoOffset), 'output_norm.weight') + f.infoOffset; // n_dims, ne0, type, offset
    await run(t, 'gguf', 'output_norm offset + 32', withU64(buf, norm + 16, readU64(buf, norm + 16) + 32n), clean, place);
    await run(t, 'gguf', 'output_norm type Q4_K', withI32(buf, norm + 12, 12), clean, place);
    await run(t, 'gguf', 'trailing garbage', new Uint8Array([...buf, ...new Uint8Array(100)]), clean, place);
  });

  it('Hugging Face (caption-lm-8L): safetensors truncations and header damage, edited config.json', async (t) => {
    const src = MODELS.captionHf();
    const st = new Uint8Array(readFileSync(join(src, 'model.safetensors')));
    const configText = readFileSync(join(src, 'config.json'), 'utf8');
    const clean = await loadSource(src);
    const headerLen = Number(readU64(st, 0));
    const withFile = (file: string) => (p: string, b: Uint8Array): string => {
      mkdirSync(p);
      linkFolder(src, p, [file]);
      writeFileSync(join(p, file), b);
      return p;
    };
    const stPlace = withFile('model.safetensors');
    for (let i = 0; i < 8; i++) {
      const cut = i < 3 ? pick(8 + headerLen) : 8 + headerLen + pick(st.length - 8 - headerLen);
      await run(t, 'hf', `safetensors truncated at ${cut}`, st.subarray(0, cut), clean, stPlace);
    }
    for (let i = 0; i < 16; i++) {
      const at = pick(8 + headerLen);
      const bit = pick(8);
      await run(t, 'hf', `safetensors byte ${at} bit ${bit} flipped`, flipped(st, at, bit), clean, stPlace);
    }
    await run(t, 'hf', 'header length + 1', withU64(st, 0, BigInt(headerLen + 1)), clean, stPlace);
    await run(t, 'hf', 'header length - 8', withU64(st, 0, BigInt(headerLen - 8)), clean, stPlace);
    await run(t, 'hf', 'header length 2^63', withU64(st, 0, 2n ** 63n), clean, stPlace);
    await run(t, 'hf', 'header length 0', withU64(st, 0, 0n), clean, stPlace);
    await run(t, 'hf', 'header only, cut mid-JSON', st.subarray(0, 8 + Math.floor(headerLen / 2)), clean, stPlace);
    const cfgPlace = withFile('config.json');
    const edits: [string, (c: Record<string, unknown>) => void][] = [
      ['hidden_size 129', (c) => (c.hidden_size = 129)],
      ['num_hidden_layers 9', (c) => (c.num_hidden_layers = 9)],
      ['num_attention_heads 3', (c) => (c.num_attention_heads = 3)],
      ['num_key_value_heads 3', (c) => (c.num_key_value_heads = 3)],
      ['vocab_size 1000', (c) => (c.vocab_size = 1000)],
      ['intermediate_size as a string', (c) => (c.intermediate_size = '352')],
      ['rms_norm_eps -1', (c) => (c.rms_norm_eps = -1)],
      ['head_dim 31', (c) => (c.head_dim = 31)],
      ['hidden_size 2^60', (c) => (c.hidden_size = 2 ** 60)],
      ['architectures GPT2', (c) => ((c.architectures = ['GPT2LMHeadModel']), (c.model_type = 'gpt2'))],
      ['rope_scaling linear', (c) => (c.rope_scaling = { type: 'linear', factor: 2 })],
      ['tie_word_embeddings false without lm_head', (c) => (c.tie_word_embeddings = false)],
    ];
    for (const [label, edit] of edits) {
      const c = JSON.parse(configText) as Record<string, unknown>;
      edit(c);
      await run(t, 'hf', `config.json ${label}`, Buffer.from(JSON.stringify(c)), clean, cfgPlace);
    }
    await run(t, 'hf', 'config.json truncated', Buffer.from(configText.slice(0, 100)), clean, cfgPlace);
    await run(t, 'hf', 'config.json is an array', Buffer.from('[1, 2]'), clean, cfgPlace);
    const tokText = readFileSync(join(src, 'tokenizer.json'));
    await run(t, 'hf', 'tokenizer.json truncated', tokText.subarray(0, 4000), clean, withFile('tokenizer.json'));
  });

  it('llama2.c v0 / v1 / v2 (written from stories260K): truncations, header flips and sizes, tokenizer.bin damage', async (t) => {
    const ref = await loadSource(MODELS.stories());
    const tokBytes = llama2cTokenizerBytes(ref.tokenizer as SentencePieceVocab);
    const place = (p: string, b: Uint8Array): string => {
      mkdirSync(p);
      writeFileSync(join(p, 'tokenizer.bin'), tokBytes);
      writeFileSync(join(p, 'model.bin'), b);
      return join(p, 'model.bin');
    };
    for (const version of [0, 1, 2] as const) {
      const buf = llama2cBytes(ref, { version });
      const clean = await loadSource(place(join(dir, `clean-v${version}`), buf));
      const fam = `llama2c v${version}`;
      for (let i = 0; i < 5; i++) {
        const cut = i < 2 ? pick(256) : pick(buf.length - 1);
        await run(t, fam, `truncated at ${cut}`, buf.subarray(0, cut), clean, place);
      }
      // v0: all 28 header bytes; v1/v2: magic, version, 6 ints, flag, group size, then padding
      const header = version === 0 ? 28 : 256;
      for (let i = 0; i < 10; i++) {
        let at = i < 8 ? pick(version === 0 ? 28 : 41) : 41 + pick(header - 41);
        if (version !== 0 && at >= 32 && at < 36) at -= 4; // seq_len: nothing in the file cross-checks it
        if (version === 0 && i >= 8) at = pick(28);
        const bit = pick(8);
        await run(t, fam, `header byte ${at} bit ${bit} flipped`, flipped(buf, at, bit), clean, place);
      }
      const base = version === 0 ? 0 : 8;
      await run(t, fam, 'dim doubled', withI32(buf, base, 128), clean, place);
      await run(t, fam, 'n_layers + 1', withI32(buf, base + 8, 6), clean, place);
      await run(t, fam, 'vocab 2^30', withI32(buf, base + 20, 2 ** 30), clean, place);
      if (version !== 0) await run(t, fam, 'version 3', withI32(buf, 4, 3), clean, place);
      if (version === 2) {
        await run(t, fam, 'group size 0', withI32(buf, 37, 0), clean, place);
        await run(t, fam, 'group size 48', withI32(buf, 37, 48), clean, place);
        await run(t, fam, 'group size 32', withI32(buf, 37, 32), clean, place);
      }
      if (version === 1) {
        const tokPlace = (p: string, b: Uint8Array): string => {
          mkdirSync(p);
          writeFileSync(join(p, 'tokenizer.bin'), b);
          writeFileSync(join(p, 'model.bin'), buf);
          return join(p, 'model.bin');
        };
        await run(t, 'tokenizer.bin', 'truncated', tokBytes.subarray(0, 3000), clean, tokPlace);
        await run(t, 'tokenizer.bin', 'max_token_length 0', withI32(tokBytes, 0, 0), clean, tokPlace);
        await run(t, 'tokenizer.bin', 'first token length 2^30', withI32(tokBytes, 8, 2 ** 30), clean, tokPlace);
        await run(t, 'tokenizer.bin', 'extra token', new Uint8Array([...tokBytes, 0, 0, 0, 0, 1, 0, 0, 0, 0x41]), clean, tokPlace);
      }
    }
  });
});
