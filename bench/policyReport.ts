/**
 * The numbers of the policy demo (bench/policy.ts) from what it recorded: per phase, the steady
 * window's layers and agent CPU per generated token and the reaction times; per objective, the
 * pooled phases, the drops and a verdict against issue 6's "≥ 30 % within two polling intervals".
 */
import { markdownTable, median, round } from './stats.js';

export type Row = Record<string, unknown>;

/** One answer on the caption route, as the client received it. */
export interface Answer {
  /** performance.now() at receipt */
  at: number;
  status: string;
  level: string;
  mean_layers: number;
  tokens: number;
  infer_ms: number;
}

/** A temperature write starting a phase. */
export interface Mark {
  phase: 'cool' | 'hot' | 'cool-down';
  cycle: number;
  temp_c: number;
  /** the level the phase should run at */
  level: string;
  at: number;
}

/** A fixed-rate run of one kind of request before the script: agent CPU over it, and what it produced. */
export interface Probe {
  answers: number;
  tokens: number;
  cpu_ms: number;
}

export interface Recording {
  answers: Answer[];
  policy: Array<{ at: number; level: string }>;
  /** the agent's cumulative CPU time (ms), sampled every 100 ms */
  cpu: Array<{ at: number; ms: number }>;
  marks: Mark[];
  end: number;
  idleCpuMsPerS: number;
  /** one-token answers at full depth: prefill + MQTT + JSON + timers, no decoding */
  oneToken: Probe;
  /** ordinary answers at `level: "full"` (the fused full-depth graph), the no-early-exit reference */
  fullDepth: Probe;
}

export interface DemoSetup {
  objective: string;
  nLayers: number;
  pollMs: number;
  periodMs: number;
  coolLevel: string;
  hot: { rule: string; temp_c: number; level: string; enough: boolean };
}

/** CPU ms at time t, interpolated between samples. */
function cpuAt(cpu: Recording['cpu'], t: number): number {
  const i = cpu.findIndex((s) => s.at >= t);
  if (i <= 0) return (i === 0 ? cpu[0] : cpu.at(-1))?.ms ?? NaN;
  const a = cpu[i - 1]!;
  const b = cpu[i]!;
  return a.ms + ((b.ms - a.ms) * (t - a.at)) / (b.at - a.at);
}

/** Per decoded token: the tokens after each answer's first (which the prefill computes), less the per-answer cost. */
function decodeCpu(p: Probe, answerCpuMs: number): number {
  return (p.cpu_ms - answerCpuMs * p.answers) / (p.tokens - p.answers);
}

/**
 * One row per phase. The steady window runs from the first answer at the phase's level (the phase
 * start for the first cool phase) to the next write; only answers received inside it count.
 */
export function phaseRows(s: DemoSetup, rec: Recording): Row[] {
  const answerCpu = rec.oneToken.cpu_ms / rec.oneToken.answers;
  return rec.marks.map((m, k) => {
    const end = rec.marks[k + 1]?.at ?? rec.end;
    const inPhase = rec.answers.filter((a) => a.at > m.at && a.at <= end);
    const first = k === 0 ? undefined : inPhase.find((a) => a.level === m.level);
    const from = k === 0 ? m.at : first?.at;
    const steady = from === undefined ? [] : inPhase.filter((a) => a.at > from && a.status === 'ok');
    const tokens = steady.reduce((t, a) => t + a.tokens, 0);
    const layers = steady.reduce((t, a) => t + a.mean_layers * a.tokens, 0);
    const cpu = from === undefined ? NaN : cpuAt(rec.cpu, end) - cpuAt(rec.cpu, from);
    const pol = k === 0 ? undefined : rec.policy.find((p) => p.at > m.at && p.at <= end && p.level === m.level);
    const polls = (t: number | undefined): number | null => (t === undefined ? null : round((t - m.at) / s.pollMs, 2));
    return {
      objective: s.objective,
      cycle: m.cycle,
      phase: m.phase,
      temp_c: m.temp_c,
      level: m.level,
      answers: steady.length,
      off_level: steady.filter((a) => a.level !== m.level).length,
      errors: inPhase.filter((a) => a.status !== 'ok').length,
      tokens,
      cpu_ms: round(cpu, 1),
      layers_per_token: round(layers / tokens, 3),
      cpu_ms_per_token: round(cpu / tokens, 4),
      decode_layers_per_token: round((layers - s.nLayers * steady.length) / (tokens - steady.length), 3),
      decode_cpu_ms_per_token: round(decodeCpu({ answers: steady.length, tokens, cpu_ms: cpu }, answerCpu), 4),
      engine_wall_ms_per_token: round(steady.reduce((t, a) => t + a.infer_ms, 0) / tokens, 4),
      level_change_polls: polls(pol?.at),
      first_answer_polls: polls(first?.at),
    };
  });
}

/** Measurement tolerance on reaction times: MQTT delivery both ways, timer jitter, an answer being computed (ms). */
export const SLACK_MS = 50;

const pct = (before: number, after: number): number => round((100 * (before - after)) / before, 1);

/** The summary of one objective's demo (one wide row). */
export function summarize(s: DemoSetup, rec: Recording, rows: Row[]): Row {
  const of = (phase: string): Row[] => rows.filter((r) => r.phase === phase);
  const answerCpu = rec.oneToken.cpu_ms / rec.oneToken.answers;
  const pool = (phase: string): { layers: number; cpu: number; decodeLayers: number; decodeCpu: number } => {
    const rs = of(phase);
    const sum = (f: (r: Row) => number): number => rs.reduce((t, r) => t + f(r), 0);
    const p: Probe = { answers: sum((r) => r.answers as number), tokens: sum((r) => r.tokens as number), cpu_ms: sum((r) => r.cpu_ms as number) };
    const layers = sum((r) => (r.layers_per_token as number) * (r.tokens as number));
    return { layers: layers / p.tokens, cpu: p.cpu_ms / p.tokens, decodeLayers: (layers - s.nLayers * p.answers) / (p.tokens - p.answers), decodeCpu: decodeCpu(p, answerCpu) };
  };
  const cool = pool('cool');
  const hot = pool('hot');
  const back = pool('cool-down');
  const polls = (phase: string, key: string): number[] => of(phase).map((r) => (r[key] as number | null) ?? Infinity);
  const change = polls('hot', 'level_change_polls');
  const answer = polls('hot', 'first_answer_polls');
  const recovery = polls('cool-down', 'first_answer_polls');
  const fullCpu = rec.fullDepth.cpu_ms / rec.fullDepth.tokens;
  const layersDrop = pct(cool.layers, hot.layers);
  const cpuDrop = pct(cool.cpu, hot.cpu);
  const fails = [
    !s.hot.enough && 'the ladder has no level far enough below the cool level',
    layersDrop < 30 && `layers drop ${layersDrop} % < 30 %`,
    cpuDrop < 30 && `CPU drop ${cpuDrop} % < 30 %`,
    Math.max(...change) > 2 + SLACK_MS / s.pollMs && `level change > 2 polls + ${SLACK_MS} ms`,
    Math.max(...answer) > 2 + (s.periodMs + SLACK_MS) / s.pollMs && `first answer > 2 polls + 1 request period + ${SLACK_MS} ms`,
    !(recovery.every(Number.isFinite) && Math.abs(pct(cool.layers, back.layers)) < 10) && 'no recovery',
  ].filter((f): f is string => typeof f === 'string');
  return {
    objective: s.objective,
    levels: `${s.coolLevel} → ${s.hot.level} → ${s.coolLevel}`,
    hot: `${s.hot.rule}: ${s.hot.temp_c} °C`,
    layers_cool: round(cool.layers, 2),
    layers_hot: round(hot.layers, 2),
    layers_recovered: round(back.layers, 2),
    layers_drop_pct: layersDrop,
    cpu_ms_tok_cool: round(cool.cpu, 3),
    cpu_ms_tok_hot: round(hot.cpu, 3),
    cpu_ms_tok_recovered: round(back.cpu, 3),
    cpu_drop_pct: cpuDrop,
    decode_layers_cool: round(cool.decodeLayers, 2),
    decode_layers_hot: round(hot.decodeLayers, 2),
    decode_cpu_ms_tok_cool: round(cool.decodeCpu, 3),
    decode_cpu_ms_tok_hot: round(hot.decodeCpu, 3),
    decode_cpu_drop_pct: pct(cool.decodeCpu, hot.decodeCpu),
    full_ref_cpu_ms_tok: round(fullCpu, 3),
    full_ref_decode_cpu_ms_tok: round(decodeCpu(rec.fullDepth, answerCpu), 3),
    hot_cpu_drop_vs_full_ref_pct: pct(fullCpu, hot.cpu),
    answer_cpu_ms: round(answerCpu, 2),
    idle_cpu_ms_per_s: round(rec.idleCpuMsPerS, 1),
    level_change_polls_max: round(Math.max(...change), 2),
    first_answer_polls_median: round(median(answer), 2),
    first_answer_polls_max: round(Math.max(...answer), 2),
    recovery_polls_max: round(Math.max(...recovery), 2),
    verdict: fails.length ? `FAIL: ${fails.join('; ')}` : 'pass',
  };
}

const LABELS: Record<string, string> = {
  levels: 'levels (cool → hot → cool)',
  hot: 'hot: thermal rule and temperature',
  layers_cool: 'mean layers/token, cool',
  layers_hot: 'mean layers/token, hot',
  layers_recovered: 'mean layers/token, after cool-down',
  layers_drop_pct: '**layers/token drop, %**',
  cpu_ms_tok_cool: 'agent CPU ms/token, cool',
  cpu_ms_tok_hot: 'agent CPU ms/token, hot',
  cpu_ms_tok_recovered: 'agent CPU ms/token, after cool-down',
  cpu_drop_pct: '**agent CPU ms/token drop, %**',
  decode_layers_cool: 'decode tokens: layers, cool',
  decode_layers_hot: 'decode tokens: layers, hot',
  decode_cpu_ms_tok_cool: 'decode tokens: CPU ms/token, cool',
  decode_cpu_ms_tok_hot: 'decode tokens: CPU ms/token, hot',
  decode_cpu_drop_pct: 'decode tokens: CPU drop, %',
  full_ref_cpu_ms_tok: 'reference `level: full` (fused graph): CPU ms/token',
  full_ref_decode_cpu_ms_tok: 'reference `level: full`: decode CPU ms/token',
  hot_cpu_drop_vs_full_ref_pct: 'hot CPU ms/token drop vs the `full` reference, %',
  answer_cpu_ms: 'agent CPU per one-token answer, ms',
  idle_cpu_ms_per_s: 'agent idle CPU, ms/s',
  level_change_polls_max: '**write → `policy` topic at the new level, polls (max)**',
  first_answer_polls_median: 'write → first answer at the new level, polls (median)',
  first_answer_polls_max: '**write → first answer at the new level, polls (max)**',
  recovery_polls_max: '**cool write → first answer back at the cool level, polls (max)**',
  verdict: 'verdict',
};

/** The summaries as a metric × objective table. */
export function summaryTable(summaries: Row[]): string {
  const rows = Object.entries(LABELS).map(([key, label]) => ({ metric: label, ...Object.fromEntries(summaries.map((s) => [String(s.objective), s[key]])) }));
  return markdownTable(rows);
}
