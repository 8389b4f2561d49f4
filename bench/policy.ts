/**
 * `npm run bench -- policy`: the device-aware policy demo of issue 6. A real agent (`sedac run`, its
 * own process) serves a caption route with a calibrated copy of caption-lm-8L-ee-x4 (SEDAC_BENCH_POLICY_MODEL); its sensors read
 * a copy of the Raspberry Pi 4 sysfs fixture whose temperature file this process rewrites while a
 * client sends requests every `periodMs` over MQTT (aedes in this process). Per calibration
 * objective (`speed`, `layers`):
 *
 *   cool (50 °C) → hot → cool → hot → … (`cycles` heat-ups, `phaseS` seconds per phase)
 *
 * The hot temperature is the first thermal step (one down, two down, critical trip) whose level's
 * held-out mean layers are at least 40 % under the cool level's (30 % asked, margin for the first
 * token of each answer, which the prefill computes at full depth). Per phase: mean layers per
 * generated token (token-weighted from the answers' `mean_layers`), the agent process's CPU ms per
 * generated token (/proc/<pid>/stat over the phase's steady window), engine ms per token
 * (`infer_ms`), and the time from the temperature write to the retained `policy` message and to
 * the first answer at the new level, in polling intervals (bench/policyReport.ts). Before the
 * script, two probes at the same request rate: one-token answers (what an answer costs apart from
 * decoding) and ordinary answers at `level: "full"` (the fused graph: no early exit at all).
 *
 * Run: `npm run bench -- policy` (SEDAC_BENCH_POLICY_OBJECTIVES=speed for one objective,
 * SEDAC_BENCH_SECONDS for the phase length). Writes bench/results/policy.{json,md}.
 */
import { execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { startBroker } from '../agent/broker.js';
import { calibrateDecoder, readTexts } from '../agent/calibrate/decoderCalibrate.js';
import { convertModel } from '../agent/convert/cache.js';
import type { Decoder } from '../agent/engine/decoder.js';
import { loadModel } from '../agent/engine/index.js';
import { type DecoderLadder, describePlan } from '../agent/engine/ladder.js';
import { DEFAULT_LEVELS, policyConfig } from '../agent/policy/config.js';
import { levelIndex } from '../agent/policy/decide.js';
import { readZones, resolveTrips } from '../agent/sensors/thermal.js';
import { MqttTransport } from '../agent/transport/mqttClient.js';
import { topicsFor } from '../agent/transport/topics.js';
import { sharedPath } from '../test/helpers/shared.js';
import { ALL_DECODER_MODELS, modelFile } from './generate.js';
import { copyFixture } from '../test/sensors/fixtures.js';
import { NODE_FLAGS, spawnAgent } from './agent.js';
import { type Answer, type DemoSetup, type Mark, type Probe, type Recording, type Row, SLACK_MS, phaseRows, summarize, summaryTable } from './policyReport.js';
import { markdownTable, round } from './stats.js';

type Objective = 'speed' | 'layers';

export interface PolicyBenchOptions {
  /** policy.poll_interval_ms (ms); default 500 */
  pollMs?: number;
  /** policy.dwell_ms (ms); default 1000 */
  dwellMs?: number;
  /** one request every this many ms; default 75 */
  periodMs?: number;
  /** seconds per phase; default 8 (env SEDAC_BENCH_SECONDS) */
  phaseS?: number;
  /** heat-up / cool-down cycles; default 3 */
  cycles?: number;
  /** calibration objectives demonstrated; default speed, layers (env SEDAC_BENCH_POLICY_OBJECTIVES) */
  objectives?: Objective[];
  /** calibration positions; default 20,000 */
  maxTokens?: number;
}

const COOL_C = 50;
const BOARD = 'rpi4';
const ZONE_TEMP = 'class/thermal/thermal_zone0/temp';
/** required drop of the level's held-out mean layers to pick a thermal step */
const PICK_DROP = 0.4;
const log = (msg: string): void => void process.stderr.write(`policy: ${msg}\n`);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface HotChoice {
  rule: 'one_down' | 'two_down' | 'critical';
  temp_c: number;
  level: string;
  predicted_layers: number;
  /** the level's held-out layers are PICK_DROP under the cool level's */
  enough: boolean;
}

/**
 * The model the agent serves: SEDAC_BENCH_POLICY_MODEL, default caption-lm-8L-ee-x4 (the trained
 * early-exit caption model widened ×4: realistic compute per layer, the same outputs).
 */
const MODEL = process.env.SEDAC_BENCH_POLICY_MODEL ?? 'caption-lm-8L-ee-x4';

/** Convert the model into `dir` and calibrate it for `objective`. */
async function prepare(dir: string, objective: Objective, maxTokens: number): Promise<{ ladder: DecoderLadder; nLayers: number }> {
  const spec = ALL_DECODER_MODELS.find((m) => m.name === MODEL);
  if (!spec) throw new Error(`SEDAC_BENCH_POLICY_MODEL=${MODEL}: not a bench model (${ALL_DECODER_MODELS.map((m) => m.name).join(', ')})`);
  await convertModel(await modelFile(spec), dir, { quiet: true });
  const d = (await loadModel({ name: objective, source: dir, quiet: true })) as Decoder;
  try {
    const ladder = await calibrateDecoder(d, dir, sharedPath('data/flickr8k_captions/train.jsonl'), { maxTokens, objective, quiet: true });
    return { ladder, nLayers: d.config.nLayers };
  } finally {
    await d.dispose();
  }
}

/** Mean layers per token a level runs (held-out replay), full depth for the full and exact modes. */
function levelLayers(ladder: DecoderLadder, name: string, nLayers: number): number {
  const l = ladder.levels.find((x) => x.name === name);
  return l?.mode === 'exits' ? (l.holdout?.mean_layers ?? l.calibration?.mean_layers ?? nLayers) : nLayers;
}

/** The model level a device level (index on the policy's default ladder) is served at, as the policy feature maps it. */
function modelLevel(ladder: DecoderLadder, deviceIndex: number): string {
  const names = ladder.levels.map((l) => l.name);
  return names[levelIndex(names, DEFAULT_LEVELS[deviceIndex] as string) ?? names.length - 1] ?? 'full';
}

/** The mildest thermal step that moves the level far enough, from the zone's own trips and the policy defaults. */
function chooseHot(ladder: DecoderLadder, root: string, nLayers: number): HotChoice {
  const zone = readZones(root).find((z) => z.zone === 'thermal_zone0');
  if (!zone) throw new Error(`no thermal_zone0 under ${root}`);
  const th = policyConfig({}).thermal;
  const trips = resolveTrips(zone.trips);
  const passive = trips.passive_c ?? th.fallback_passive_c;
  const critical = trips.critical_c ?? th.fallback_critical_c;
  const top = levelLayers(ladder, modelLevel(ladder, 0), nLayers);
  const step = (rule: HotChoice['rule'], temp_c: number, deviceIndex: number): HotChoice => {
    const level = modelLevel(ladder, deviceIndex);
    const predicted = levelLayers(ladder, level, nLayers);
    return { rule, temp_c, level, predicted_layers: round(predicted, 2), enough: predicted <= (1 - PICK_DROP) * top };
  };
  const steps = [
    step('one_down', passive - th.one_down_margin_c + 2, 1),
    step('two_down', passive - th.two_down_margin_c + 2, 2),
    step('critical', critical + 1, DEFAULT_LEVELS.length - 1),
  ];
  return steps.find((s) => s.enough) ?? steps[2]!;
}

/** CPU time (user + system) of a process, ms, from /proc/<pid>/stat. */
function cpuMs(pid: number, tick: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1000) / tick; // fields 14, 15: utime, stime
}

/** The agent's config: one caption route, the policy on the fixture tree. */
function agentConfig(device: string, brokerUrl: string, dir: string, root: string, o: Required<PolicyBenchOptions>): string {
  return stringify({
    device_id: device,
    mqtt: { url: brokerUrl },
    models: { caption: { source: dir } },
    routes: [{ name: 'caption', task: 'generate', model: 'caption', max_tokens: 24 }],
    policy: { poll_interval_ms: o.pollMs, dwell_ms: o.dwellMs, sensors: { sysfs_root: root, vcgencmd: '', systeminformation_fallback: false } },
    log: { level: 'warn' },
  });
}

/** Spawn the agent, run the probes and the temperature script, record answers, policy messages and CPU. */
async function record(dir: string, objective: Objective, hot: HotChoice, coolLevel: string, root: string, brokerUrl: string, o: Required<PolicyBenchOptions>): Promise<Recording> {
  const device = `policybench-${objective}`;
  const T = topicsFor('sedac', device);
  const cfg = join(dir, '..', `${objective}.yaml`);
  const tempFile = join(root, ZONE_TEMP);
  const setTemp = (c: number): void => {
    writeFileSync(`${tempFile}.new`, `${Math.round(c * 1000)}\n`);
    renameSync(`${tempFile}.new`, tempFile); // atomic: a poll never reads a half-written file
  };
  setTemp(COOL_C);
  writeFileSync(cfg, agentConfig(device, brokerUrl, dir, root, o));
  const prompts = readTexts(sharedPath('data/flickr8k_captions/val.jsonl')).map((t) => t.split(' ').slice(0, 2).join(' '));
  const tick = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  const agent: ChildProcess = spawnAgent(cfg);
  const exited = new Promise((r) => agent.once('exit', r));
  const client = new MqttTransport({ url: brokerUrl, protocolVersion: 4, clean: true });
  const none: Probe = { answers: 0, tokens: 0, cpu_ms: NaN };
  const rec: Recording = { answers: [], policy: [], cpu: [], marks: [], end: 0, idleCpuMsPerS: NaN, oneToken: none, fullDepth: none };
  const pending = new Set<string>();
  let sampler: NodeJS.Timeout | undefined;
  let sender: NodeJS.Timeout | undefined;
  try {
    let online = false;
    client.start();
    await client.waitConnected(5000);
    client.subscribe(T.state, 1, (m) => (online = m.payload.toString().includes('online')));
    client.subscribe(T.policy, 1, (m) => rec.policy.push({ at: m.receivedAt, level: (JSON.parse(m.payload.toString()) as { level: string }).level }));
    client.subscribe(T.response('caption'), 1, (m) => {
      const b = JSON.parse(m.payload.toString()) as { status: string; transaction: string; data?: Omit<Answer, 'at' | 'status'> };
      if (!pending.delete(b.transaction)) return;
      const d = b.data;
      rec.answers.push({ at: m.receivedAt, status: b.status, level: d?.level ?? '', mean_layers: d?.mean_layers ?? NaN, tokens: d?.tokens ?? 0, infer_ms: d?.infer_ms ?? NaN });
    });
    await until(() => online && rec.policy.at(-1)?.level === coolLevel, 60_000, `agent online at ${coolLevel}`);
    const pid = agent.pid as number;
    let seq = 0;
    const send = (extra: Record<string, unknown> = {}): void => {
      const transaction = `${objective}-${seq}`;
      pending.add(transaction);
      void client.publish(T.request('caption'), JSON.stringify({ text: prompts[seq++ % prompts.length], transaction, ...extra }), { qos: 1 });
    };
    /** `ms` of requests at the demo's rate; the agent's CPU over it and what came back. */
    const probe = async (ms: number, extra: Record<string, unknown>): Promise<Probe> => {
      const cpu0 = cpuMs(pid, tick);
      for (let i = 0; i < Math.round(ms / o.periodMs); i++) {
        send(extra);
        await sleep(o.periodMs);
      }
      await until(() => pending.size === 0, 20_000, 'probe answers');
      const cpu = cpuMs(pid, tick) - cpu0;
      const got = rec.answers.splice(0).filter((a) => a.status === 'ok');
      return { answers: got.length, tokens: got.reduce((t, a) => t + a.tokens, 0), cpu_ms: cpu };
    };
    await probe(1500, {}); // warm-up: lazy session initialisation
    const idle0 = { at: performance.now(), ms: cpuMs(pid, tick) };
    await sleep(2000);
    rec.idleCpuMsPerS = ((cpuMs(pid, tick) - idle0.ms) * 1000) / (performance.now() - idle0.at);
    rec.oneToken = await probe(4000, { max_tokens: 1, level: 'full' });
    rec.fullDepth = await probe(o.phaseS * 1000, { level: 'full' });

    sampler = setInterval(() => rec.cpu.push({ at: performance.now(), ms: cpuMs(pid, tick) }), 100);
    sender = setInterval(() => send(), o.periodMs);
    rec.cpu.push({ at: performance.now(), ms: cpuMs(pid, tick) });
    await heatCycles(rec.marks, setTemp, hot, coolLevel, o, objective);
    rec.end = performance.now();
    rec.cpu.push({ at: rec.end, ms: cpuMs(pid, tick) });
    clearInterval(sender);
    await until(() => pending.size === 0, 20_000, 'last answers');
  } finally {
    clearInterval(sender);
    clearInterval(sampler);
    await client.stop(500);
    agent.kill('SIGTERM');
    await exited;
  }
  return rec;
}

/**
 * The temperature script: cool, then `cycles` × (hot, cool-down), each phase about `phaseS` long;
 * marks each write. Each phase is longer by 0.382 of a polling interval, so that successive writes
 * fall at different points of the agent's polling cycle instead of always the same one.
 */
async function heatCycles(marks: Mark[], setTemp: (c: number) => void, hot: HotChoice, coolLevel: string, o: Required<PolicyBenchOptions>, objective: Objective): Promise<void> {
  const phase = async (name: Mark['phase'], cycle: number, temp: number, level: string): Promise<void> => {
    setTemp(temp);
    marks.push({ phase: name, cycle, temp_c: temp, level, at: performance.now() });
    await sleep(o.phaseS * 1000 + 0.382 * o.pollMs);
  };
  await phase('cool', 0, COOL_C, coolLevel);
  for (let c = 1; c <= o.cycles; c++) {
    log(`${objective}: cycle ${c}: ${hot.temp_c} °C`);
    await phase('hot', c, hot.temp_c, hot.level);
    await phase('cool-down', c, COOL_C, coolLevel);
  }
}

async function until(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const end = performance.now() + timeoutMs;
  while (!cond()) {
    if (performance.now() > end) throw new Error(`bench policy: timed out waiting for ${what}`);
    await sleep(5);
  }
}

function ladderRows(objective: Objective, ladder: DecoderLadder, nLayers: number): Row[] {
  const { call_us, layer_us, head_us } = ladder.costs;
  return ladder.levels.map((l) => ({
    objective,
    level: l.name,
    mode: l.mode,
    exit_points: l.mode !== 'full' ? describePlan(l) : '—',
    heldout_layers: round(levelLayers(ladder, l.name, nLayers), 2),
    heldout_agreement: l.holdout ? round(l.holdout.agreement, 4) : null,
    predicted_speedup: l.predicted_speedup === undefined ? null : round(l.predicted_speedup, 3),
    measured_speedup: l.measured_speedup ?? null,
    note: l.note ?? '',
    costs_us: `call ${call_us}, layer ${layer_us}, head ${head_us}`,
  }));
}

export async function benchPolicy(opts: PolicyBenchOptions = {}): Promise<{ rows: Row[]; table: string }> {
  const env = process.env.SEDAC_BENCH_POLICY_OBJECTIVES?.split(',').map((s) => s.trim()) as Objective[] | undefined;
  const o: Required<PolicyBenchOptions> = {
    pollMs: opts.pollMs ?? 500,
    dwellMs: opts.dwellMs ?? 1000,
    periodMs: opts.periodMs ?? 75,
    phaseS: opts.phaseS ?? Number(process.env.SEDAC_BENCH_SECONDS ?? 8),
    cycles: opts.cycles ?? 3,
    objectives: opts.objectives ?? env ?? ['speed', 'layers'],
    maxTokens: opts.maxTokens ?? 20_000,
  };
  const tmp = mkdtempSync(join(tmpdir(), 'sedac-bench-policy-'));
  const broker = await startBroker({ port: 0 });
  const phases: Row[] = [];
  const summaries: Row[] = [];
  const ladders: Row[] = [];
  try {
    for (const objective of o.objectives) {
      const dir = join(tmp, objective);
      log(`${objective}: converting and calibrating (maxTokens ${o.maxTokens})`);
      const { ladder, nLayers } = await prepare(dir, objective, o.maxTokens);
      ladders.push(...ladderRows(objective, ladder, nLayers));
      const fx = copyFixture(BOARD);
      try {
        const hot = chooseHot(ladder, fx.root, nLayers);
        const setup: DemoSetup = { objective, nLayers, pollMs: o.pollMs, periodMs: o.periodMs, coolLevel: modelLevel(ladder, 0), hot };
        log(`${objective}: hot = ${hot.rule} at ${hot.temp_c} °C → ${hot.level} (held-out ${hot.predicted_layers} layers${hot.enough ? '' : ': not enough'})`);
        const rec = await record(dir, objective, hot, setup.coolLevel, fx.root, broker.url, o);
        const rows = phaseRows(setup, rec);
        phases.push(...rows);
        summaries.push(summarize(setup, rec, rows));
      } finally {
        fx.cleanup();
      }
    }
  } finally {
    await broker.close();
    rmSync(tmp, { recursive: true, force: true });
  }
  const head =
    `Real agent (\`sedac run\`, own process, ${NODE_FLAGS}) serving ${MODEL}${MODEL.includes('-x') ? ' (widened by ../shared/tools/widen_gguf.py: the trained model\'s outputs at realistic compute per layer)' : ''} calibrated in a temp dir (train.jsonl, ${o.maxTokens} positions, default targets), ` +
    `sensors on a copy of the ${BOARD} sysfs fixture (critical trip 110 °C, no passive trip: fallback 80 °C); policy poll ${o.pollMs} ms, dwell ${o.dwellMs} ms; ` +
    `one request every ${o.periodMs} ms (first two words of a validation caption, max 24 tokens) over aedes; ${o.cycles} cycles of ${o.phaseS} s cool (${COOL_C} °C) / ${o.phaseS} s hot.\n\n` +
    `Hot temperature: the mildest thermal step whose level's held-out mean layers are ≥ ${PICK_DROP * 100} % under the cool level's (else the critical trip). ` +
    `Layers/token: token-weighted answer \`mean_layers\` (the first token of each answer comes from the full-depth prefill). ` +
    `Agent CPU ms/token: the agent process's CPU time (/proc/<pid>/stat: engine, MQTT, JSON, timers) over the phase's steady window (first answer at the new level → next write) ÷ generated tokens. ` +
    `Decode tokens: the tokens after the first of each answer, with the agent CPU of a one-token \`level: full\` answer at the same request rate subtracted per answer. ` +
    `Reference \`level: full\`: the same requests asking for the fused full-depth graph (no exits, no drafting). ` +
    `Polls: time from the temperature write ÷ poll interval (the sensor's 3-sample median needs a second poll to see a new value, so the level changes 1–2 polls after the write; the next request comes up to one request period later). ` +
    `Engine wall ms/token (per phase): answers' \`infer_ms\` ÷ tokens, wall time on a shared machine. ` +
    `Pass: layers and agent CPU per token drop ≥ 30 %, level change ≤ 2 polls and first answer ≤ 2 polls + one request period (each + ${SLACK_MS} ms for MQTT delivery and timer jitter), layers back within 10 % of cool.\n`;
  const table = `${head}\n${summaryTable(summaries)}\nPer phase:\n\n${markdownTable(phases)}\nCalibrated ladders:\n\n${markdownTable(ladders)}`;
  return { rows: [...summaries.map((r) => ({ kind: 'summary', ...r })), ...phases.map((r) => ({ kind: 'phase', ...r })), ...ladders.map((r) => ({ kind: 'ladder', ...r }))], table };
}
