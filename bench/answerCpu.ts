/**
 * What one answer costs the agent process in CPU, apart from decoding: a real agent (`sedac run`,
 * its own process, the node flags of the systemd unit) serves one-token answers (`max_tokens: 1,
 * level: "full"`: request → parse → encode → one fused prefill → answer) at a fixed rate, and this
 * process reads the agent's CPU time from /proc/<pid>/stat. The policy feature polls a copy of the
 * Raspberry Pi 4 sysfs fixture, as in `npm run bench -- policy`.
 *
 * Per round: idle CPU (ms/s, no requests), CPU per answer (ms, idle included, as the policy bench
 * counts it), the same less the idle share, the engine's wall time per answer (`infer_ms`, mean; about
 * its CPU time: one thread, nothing else runs meanwhile) and CPU per answer outside the engine. Rounds alternate on one agent; medians are reported
 * because the machine is shared.
 *
 * `--engine fake` runs bench/answerCpuAgent.ts instead: the same agent with the engine's test double,
 * so that everything it spends is the agent's own.
 *
 * Run: `npm run build && node dist/bench/answerCpu.js [--broker aedes|mosquitto] [--engine real|fake] [--rounds 5]
 *   [--seconds 4] [--period 75] [--poll 500] [--prof DIR [--prof-interval 1000]]
 *   [--node-flags '--trace-gc'] [--agent-out FILE]` (`--prof` runs the agent with
 * `--cpu-prof --cpu-prof-dir DIR --cpu-prof-interval µs`; the profile is written when it stops).
 */
import { mkdirSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { startBroker } from '../agent/broker.js';
import { MqttTransport } from '../agent/transport/mqttClient.js';
import { topicsFor } from '../agent/transport/topics.js';
import { startMosquitto } from '../test/helpers/mosquitto.js';
import { sharedPath } from '../test/helpers/shared.js';
import { copyFixture } from '../test/sensors/fixtures.js';
import { agentConfigFile, spawnAgent } from './agent.js';
import { markdownTable, median, round } from './stats.js';

const DEVICE = 'answercpu';
const T = topicsFor('sedac', DEVICE);

/** CPU time of every thread of a process, ms, from /proc/<pid>/task/<tid>/schedstat (ns, unlike /proc/<pid>/stat's 10 ms ticks). */
function cpuMs(pid: number): number {
  let ns = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      // the thread ended between the listing and the read
    }
  }
  return ns / 1e6;
}

/** CPU ms of the main thread and of the others (V8 platform workers, libuv pool, ORT), for the breakdown printed at the end. */
function threadCpuMs(pid: number): Map<string, number> {
  const out = new Map<string, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const name = tid === String(pid) ? 'main' : 'other';
      const ms = Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]) / 1e6;
      out.set(name, (out.get(name) ?? 0) + ms);
    } catch {
      // the thread ended between the listing and the read
    }
  }
  return out;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > end) throw new Error(`answerCpu: timed out waiting for ${what}`);
    await sleep(5);
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      broker: { type: 'string', default: 'aedes' },
      engine: { type: 'string', default: 'real' },
      'node-flags': { type: 'string', default: '' },
      'agent-out': { type: 'string' },
      rounds: { type: 'string', default: '5' },
      seconds: { type: 'string', default: '4' },
      period: { type: 'string', default: '75' },
      poll: { type: 'string', default: '500' },
      prof: { type: 'string' },
      'prof-interval': { type: 'string', default: '1000' },
      cache: { type: 'string', default: join(tmpdir(), 'sedac-answercpu-cache') },
    },
  });
  const rounds = Number(values.rounds);
  const seconds = Number(values.seconds);
  const period = Number(values.period);
  const broker = values.broker === 'mosquitto' ? await startMosquitto() : await startBroker({ port: 0 });
  const sysfs = copyFixture('rpi4');
  const { cfg } = agentConfigFile('sedac-answercpu-', () => ({
    device_id: DEVICE,
    mqtt: { url: broker.url },
    models: { caption: { source: sharedPath('models/caption-lm-8L-ee/caption-lm-8L-ee.gguf'), cache_dir: values.cache } },
    routes: [{ name: 'caption', task: 'generate', model: 'caption', max_tokens: 24 }],
    policy: { poll_interval_ms: Number(values.poll), sensors: { sysfs_root: sysfs.root, vcgencmd: '', systeminformation_fallback: false } },
    log: { level: 'warn' },
  }));
  const extraFlags = values['node-flags'].split(' ');
  if (values.prof) {
    mkdirSync(resolve(values.prof), { recursive: true });
    extraFlags.push('--cpu-prof', `--cpu-prof-dir=${resolve(values.prof)}`, `--cpu-prof-interval=${values['prof-interval']}`);
  }
  const spawnedAt = performance.now();
  const entry = values.engine === 'fake' ? ['dist/bench/answerCpuAgent.js', cfg] : undefined;
  const agent = spawnAgent(cfg, { extraFlags, ...(entry && { entry }), stdout: values['agent-out'] ? openSync(values['agent-out'], 'w') : 'ignore' });
  const exited = new Promise((r) => agent.once('exit', r));
  const client = new MqttTransport({ url: broker.url, protocolVersion: values.broker === 'mosquitto' ? 5 : 4, clean: true });
  const prompts = readFileSync(sharedPath('data/flickr8k_captions/val.jsonl'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => ((JSON.parse(l) as { text?: string }).text ?? 'a dog').split(' ').slice(0, 2).join(' '));
  const pending = new Set<string>();
  let ok = 0;
  let inferMs = 0;
  let failed = 0;
  const rows: Record<string, unknown>[] = [];
  try {
    let online = false;
    client.start();
    await client.waitConnected(5000);
    client.subscribe(T.state, 1, (m) => (online = m.payload.toString().includes('online')));
    client.subscribe(T.response('caption'), 1, (m) => {
      const b = JSON.parse(m.payload.toString()) as { status: string; transaction: string; data?: { infer_ms: number } };
      if (!pending.delete(b.transaction)) return;
      if (b.status === 'ok') {
        ok++;
        inferMs += b.data?.infer_ms ?? NaN;
      }
      else failed++;
    });
    await until(() => online, 120_000, 'the agent to come online');
    const pid = agent.pid as number;
    let seq = 0;
    const burst = async (ms: number): Promise<{ answers: number; cpu: number; wall: number; engine: number }> => {
      ok = 0;
      inferMs = 0;
      const c0 = cpuMs(pid);
      const t0 = performance.now();
      for (let i = 0; i < Math.round(ms / period); i++) {
        const transaction = `a${seq}`;
        pending.add(transaction);
        void client.publish(T.request('caption'), JSON.stringify({ text: prompts[seq++ % prompts.length], transaction, max_tokens: 1, level: 'full' }), { qos: 1 });
        await sleep(period);
      }
      await until(() => pending.size === 0, 20_000, 'answers');
      return { answers: ok, cpu: cpuMs(pid) - c0, wall: performance.now() - t0, engine: inferMs / ok };
    };
    await burst(6000); // warm-up: lazy initialisation, JIT
    console.error(`rounds start ${round((performance.now() - spawnedAt) / 1000, 1)} s after spawn`);
    const threads0 = threadCpuMs(pid);
    let answered = 0;
    for (let r = 0; r < rounds; r++) {
      const i0 = cpuMs(pid);
      const it = performance.now();
      await sleep(3000);
      const idle = ((cpuMs(pid) - i0) * 1000) / (performance.now() - it);
      const b = await burst(seconds * 1000);
      const per = b.cpu / b.answers;
      answered += b.answers;
      rows.push({ round: r, idle_cpu_ms_per_s: round(idle, 2), answers: b.answers, cpu_ms_per_answer: round(per, 3), less_idle_ms: round(per - (idle * b.wall) / 1000 / b.answers, 3), engine_wall_ms: round(b.engine, 3), outside_engine_ms: round(per - b.engine, 3) });
      console.error(JSON.stringify(rows.at(-1)));
    }
    const byThread = [...threadCpuMs(pid)].map(([name, ms]) => `${name} ${round((ms - (threads0.get(name) ?? 0)) / answered, 3)}`);
    console.error(`CPU ms per answer by thread (idle included): ${byThread.join(', ')}`);
  } finally {
    await client.stop(500);
    agent.kill('SIGTERM');
    await exited;
    await broker.close();
    sysfs.cleanup();
  }
  const med = (k: string): number => round(median(rows.map((r) => r[k] as number)), 3);
  rows.push({ round: 'median', idle_cpu_ms_per_s: med('idle_cpu_ms_per_s'), answers: null, cpu_ms_per_answer: med('cpu_ms_per_answer'), less_idle_ms: med('less_idle_ms'), engine_wall_ms: med('engine_wall_ms'), outside_engine_ms: med('outside_engine_ms') });
  console.log(markdownTable(rows));
  if (failed > 0) console.log(`${failed} error answers`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
