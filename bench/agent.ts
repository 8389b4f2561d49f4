/**
 * `npm run bench -- agent`: what the agent adds around the engine. The daemon runs as its own
 * process (`sedac run`, real engine, caption-lm-8L-ee) against Mosquitto (MQTT 5); this process is
 * the requester. Rows:
 *
 * - `rate_20` / `rate_100`: open-loop requests at 20 and 100 req/s on a small route (4 new tokens):
 *   round trip, engine time (`infer_ms` from the answer) and overhead = round trip − engine time
 *   (MQTT both ways, parsing, queueing, JSON), p50/p99;
 * - `generation`: back-to-back long generations (64 tokens): the agent's own event-loop lag p99
 *   (from its `health` topic, 1 s windows, the worst window), which bounds keepalive/health delays;
 * - RSS of the agent process with the caption model loaded (/proc, after each phase), and its
 *   anonymous part (RSS less file-backed pages such as the node binary and libonnxruntime code).
 *
 * The daemon runs with the node flags of systemd/sedac.service (NODE_FLAGS below).
 *
 * Goals (issue 5): overhead p99 < 5 ms, event-loop lag p99 < 20 ms, RSS < 150 MB.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { stringify } from 'yaml';
import { MqttTransport, type InboundMessage } from '../agent/transport/mqttClient.js';
import { topicsFor } from '../agent/transport/topics.js';
import { startMosquitto } from '../test/helpers/mosquitto.js';
import { markdownTable, quantile, round } from './stats.js';

const DEVICE = 'bench';
const T = topicsFor('sedac', DEVICE);
const REPLY = 'bench/reply';
/** Node flags the systemd unit runs the daemon with: a small young generation keeps RSS flat under load. */
export const NODE_FLAGS = '--max-semi-space-size=2';

/** An agent config written as YAML into a fresh temp dir (the config may place files in that dir). */
export function agentConfigFile(prefix: string, config: (dir: string) => Record<string, unknown>): { dir: string; cfg: string } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const cfg = join(dir, 'sedac.yaml');
  writeFileSync(cfg, stringify(config(dir)));
  return { dir, cfg };
}

/**
 * The daemon as its own process, as the benches run it: node with the flags of
 * systemd/sedac.service (SEDAC_BENCH_NODE_FLAGS overrides them, '' for none) plus `extraFlags`,
 * then `entry` (default `sedac run --config cfg`).
 */
export function spawnAgent(cfg: string, opts: { extraFlags?: string[]; entry?: string[]; stdout?: 'ignore' | number } = {}): ChildProcess {
  const flags = [...(process.env.SEDAC_BENCH_NODE_FLAGS ?? NODE_FLAGS).split(' '), ...(opts.extraFlags ?? [])].filter(Boolean);
  const entry = opts.entry ?? ['dist/agent/cli.js', 'run', '--config', cfg];
  return spawn(process.execPath, [...flags, ...entry], { stdio: ['ignore', opts.stdout ?? 'ignore', 'inherit'] });
}
const MODEL = resolve(process.env.SEDAC_SHARED ?? '../shared', 'models/caption-lm-8L-ee/caption-lm-8L-ee.gguf');

export interface AgentBenchOptions {
  /** seconds per rate phase; default 5 */
  seconds?: number;
  /** rates to measure, req/s; default [20, 100] */
  rates?: number[];
}

export async function benchAgent(opts: AgentBenchOptions = {}): Promise<{ rows: Record<string, unknown>[]; table: string }> {
  const seconds = opts.seconds ?? Number(process.env.SEDAC_BENCH_SECONDS ?? 5);
  const rates = opts.rates ?? [20, 100];
  const broker = await startMosquitto();
  const { cfg } = agentConfigFile('sedac-bench-agent-', (dir) => ({
    device_id: DEVICE,
    mqtt: { url: broker.url },
    models: { caption: { source: MODEL, cache_dir: join(dir, 'cache') } },
    routes: [
      { name: 'small', task: 'generate', model: 'caption', max_tokens: 4 },
      { name: 'long', task: 'generate', model: 'caption', max_tokens: 64 },
    ],
    queue: { size: 256 },
    health: { cron: '* * * * * *' },
    log: { level: 'warn' },
  }));
  const agent = spawnAgent(cfg);
  const client = new MqttTransport({ url: broker.url, protocolVersion: 5, clean: true });
  const rows: Record<string, unknown>[] = [];
  try {
    client.start();
    await client.waitConnected(5000);
    const answers = new Map<string, { at: number; body: { status: string; data?: { infer_ms: number; queue_ms: number } } }>();
    const health: Array<{ at: number; lag: number; heap: number }> = [];
    client.subscribe(REPLY, 1, (m: InboundMessage) => answers.set(m.correlationData?.toString() ?? '', { at: m.receivedAt, body: JSON.parse(m.payload.toString()) }));
    client.subscribe(T.health, 0, (m) => {
      const h = JSON.parse(m.payload.toString()) as { event_loop_lag_ms: { p99: number }; heap_used_mb: number };
      health.push({ at: m.receivedAt, lag: h.event_loop_lag_ms.p99, heap: h.heap_used_mb });
    });
    let online = false;
    client.subscribe(T.state, 1, (m) => (online = m.payload.toString().includes('online')));
    await until(() => online, 30000, 'the agent to come online');
    const rss = (): number => round(Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${agent.pid}/status`, 'utf8'))?.[1] ?? NaN) / 1024, 1);
    // anonymous = RSS without file-backed pages (the node binary and libonnxruntime code): JS heap + malloc
    const anon = (): number => round(Number(/Anonymous:\s+(\d+)/.exec(readFileSync(`/proc/${agent.pid}/smaps_rollup`, 'utf8'))?.[1] ?? NaN) / 1024, 1);

    let seq = 0;
    const send = (route: string, text: string): { id: string; sentAt: number } => {
      const id = `b${seq++}`;
      const sentAt = performance.now();
      void client.publish(T.request(route), JSON.stringify({ text }), { qos: 1, responseTopic: REPLY, correlationData: Buffer.from(id) });
      return { id, sentAt };
    };
    rows.push({ phase: 'idle', requests: 0, errors: 0, rtt_p50_ms: null, rtt_p99_ms: null, engine_p50_ms: null, overhead_p50_ms: null, overhead_p99_ms: null, queue_p99_ms: null, loop_lag_p99_ms: null, rss_mb: rss(), anon_mb: anon(), heap_mb: null });
    // warm-up: first calls pay for lazy initialisation
    const warm = Array.from({ length: 20 }, () => send('small', 'a dog'));
    await until(() => warm.every((w) => answers.has(w.id)), 10000, 'warm-up');

    for (const rate of rates) {
      const sent: Array<{ id: string; sentAt: number }> = [];
      const n = Math.round(rate * seconds);
      const t0 = performance.now();
      const h0 = health.length;
      for (let i = 0; i < n; i++) {
        const due = t0 + (i * 1000) / rate;
        while (performance.now() < due) await new Promise((r) => setTimeout(r, Math.max(0, Math.min(2, due - performance.now()))));
        sent.push(send('small', i % 2 ? 'a dog' : 'two children'));
      }
      await until(() => sent.every((s) => answers.has(s.id)), 30000, `answers at ${rate} req/s`);
      const rtt: number[] = [];
      const over: number[] = [];
      const eng: number[] = [];
      const queue: number[] = [];
      let errors = 0;
      for (const s of sent) {
        const a = answers.get(s.id);
        if (!a?.body.data) {
          errors++;
          continue;
        }
        const r = a.at - s.sentAt;
        rtt.push(r);
        eng.push(a.body.data.infer_ms);
        queue.push(a.body.data.queue_ms);
        over.push(r - a.body.data.infer_ms);
      }
      const lag = health.slice(h0).map((h) => h.lag);
      rows.push({
        phase: `rate_${rate}`,
        requests: n,
        errors,
        rtt_p50_ms: round(quantile(rtt, 0.5)),
        rtt_p99_ms: round(quantile(rtt, 0.99)),
        engine_p50_ms: round(quantile(eng, 0.5)),
        overhead_p50_ms: round(quantile(over, 0.5)),
        overhead_p99_ms: round(quantile(over, 0.99)),
        queue_p99_ms: round(quantile(queue, 0.99)),
        loop_lag_p99_ms: lag.length ? round(Math.max(...lag)) : null,
        rss_mb: rss(),
        anon_mb: anon(),
        heap_mb: health.at(-1)?.heap ?? null,
      });
    }

    // generation: keep the engine busy with long generations, read the agent's own loop lag
    const h0 = health.length;
    const long: Array<{ id: string; sentAt: number }> = [];
    const tEnd = performance.now() + seconds * 1000;
    while (performance.now() < tEnd) {
      while (long.filter((l) => !answers.has(l.id)).length < 4) long.push(send('long', 'a man in a red'));
      await new Promise((r) => setTimeout(r, 5));
    }
    await until(() => long.every((l) => answers.has(l.id)), 30000, 'long generations');
    await new Promise((r) => setTimeout(r, 1100)); // one more health window
    const lag = health.slice(h0).map((h) => h.lag);
    const infer = long.map((l) => answers.get(l.id)?.body.data?.infer_ms ?? NaN);
    rows.push({
      phase: 'generation',
      requests: long.length,
      errors: long.filter((l) => answers.get(l.id)?.body.status !== 'ok').length,
      rtt_p50_ms: null,
      rtt_p99_ms: null,
      engine_p50_ms: round(quantile(infer, 0.5)),
      overhead_p50_ms: null,
      overhead_p99_ms: null,
      queue_p99_ms: null,
      loop_lag_p99_ms: lag.length ? round(Math.max(...lag)) : null,
      rss_mb: rss(),
      anon_mb: anon(),
      heap_mb: health.at(-1)?.heap ?? null,
    });
  } finally {
    await client.stop(500);
    agent.kill('SIGTERM');
    await new Promise((r) => agent.once('exit', r));
    await broker.close();
  }
  const goals = 'Goals: overhead p99 < 5 ms, event-loop lag p99 < 20 ms (worst 1 s window), RSS < 150 MB with the caption model.\n';
  return { rows, table: markdownTable(rows) + '\n' + goals };
}

async function until(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const end = performance.now() + timeoutMs;
  while (!cond()) {
    if (performance.now() > end) throw new Error(`bench agent: timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  benchAgent().then(
    (r) => console.log(JSON.stringify(r.rows, null, 2) + '\n\n' + r.table),
    (err: unknown) => {
      console.error(err);
      process.exitCode = 1;
    },
  );
}
