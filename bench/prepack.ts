/**
 * `npm run build && node dist/bench/prepack.js [bundle] [--rounds 9]`: why graphs that share weights
 * are not kept side by side. onnxruntime maps a bundle's weight file, but MatMul kernels pack their
 * weights into a private copy at load; with packing off one mapped copy serves every session, at
 * this cost: the fused graph with and without packing, interleaved, on 1, 4 and 12 rows, plus the
 * resident memory each session adds. Default bundle: caption-lm-8L-ee-x4 (widened, converted into
 * the widened-model cache).
 */
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { convertModel } from '../agent/convert/cache.js';
import { readManifest } from '../agent/engine/bundle.js';
import { Session, f32, i32, i64 } from '../agent/engine/ort.js';
import { widenedGguf, wideCacheDir } from '../test/helpers/widened.js';
import { markdownTable, median, round } from './stats.js';

const rssMb = (): number => Math.round(process.memoryUsage().rss / 1e6);

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { rounds: { type: 'string' } } });
  const rounds = Number(values.rounds ?? 9);
  let dir = positionals[0];
  if (!dir) {
    dir = join(wideCacheDir(), 'bundles', 'caption-lm-8L-ee-x4-plain');
    await convertModel(await widenedGguf({ base: 'caption-lm-8L-ee', k: 4, type: 'f32' }), dir, { quiet: true });
  }
  const m = readManifest(dir, true);
  const c = m.config as { nLayers: number; nKvHeads: number; kvHeadDim: number };
  const file = join(dir, m.graphs.full!.file);
  const base = rssMb();
  const packed = await Session.load(file, 'packed');
  const afterPacked = rssMb();
  const mapped = await Session.load(file, 'mapped', { prepack: false });
  const afterMapped = rssMb();
  const cap = 64;
  const feeds = (n: number) => {
    const f: Record<string, ReturnType<typeof f32>> = {
      input_ids: i64(new BigInt64Array(n).fill(5n), [1, n]),
      seqlens_k: i32(Int32Array.of(10 + n - 1), [1]),
      total_len: i32(Int32Array.of(10 + n), []),
      kv_start: i64(BigInt64Array.of(10n), [1]),
      kv_end: i64(BigInt64Array.of(BigInt(10 + n)), [1]),
    };
    for (let l = 0; l < c.nLayers; l++) {
      for (const k of ['past_key', 'past_value']) f[`${k}.${l}`] = f32(new Float32Array(c.nKvHeads * cap * c.kvHeadDim), [1, c.nKvHeads, cap, c.kvHeadDim]);
    }
    return f;
  };
  const rows: Record<string, unknown>[] = [];
  for (const n of [1, 4, 12]) {
    const t = { packed: [] as number[], mapped: [] as number[] };
    for (let r = 0; r < rounds; r++) {
      for (const [k, s] of [['packed', packed], ['mapped', mapped]] as const) {
        const t0 = performance.now();
        for (let i = 0; i < 20; i++) await s.run(feeds(n));
        t[k].push((performance.now() - t0) / 20);
      }
    }
    rows.push({ rows: n, 'packed ms': round(median(t.packed), 3), 'unpacked (mapped) ms': round(median(t.mapped), 3), 'unpacked / packed': round(median(t.mapped) / median(t.packed), 2) });
  }
  console.log(`${dir}: fused graph, median of ${rounds} interleaved rounds of 20 runs`);
  console.log(`RSS: ${base} MB before, +${afterPacked - base} MB for the packed session, +${afterMapped - afterPacked} MB for the unpacked one (its weights stay in the mapped file until touched)\n`);
  console.log(markdownTable(rows));
  await Promise.all([packed.release(), mapped.release()]);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
