/**
 * Runs the real daemon (`node dist/agent/cli.js run --config FILE`) as a child process with the
 * real engine, for tests about process lifecycle (last will, SIGTERM, memory).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { sharedPath } from '../helpers/shared.js';
import { DEVICE } from './harness.js';

const CACHE = mkdtempSync(join(tmpdir(), 'sedac-agent-cache-'));

/** The caption model from ../shared (fails loudly when ../shared is missing). */
export function captionModel(): string {
  return sharedPath('models/caption-lm-8L-ee/caption-lm-8L-ee.gguf');
}

/** A raw config for a spawned agent with the real caption model on route `caption`. */
export function realConfig(url: string, over: Record<string, unknown> = {}): Record<string, unknown> {
  const { mqtt, ...rest } = over;
  return {
    device_id: DEVICE,
    models: { caption: { source: captionModel(), cache_dir: CACHE } },
    routes: [{ name: 'caption', task: 'generate', model: 'caption', max_tokens: 16, max_chars: 200 }],
    health: { cron: '*/1 * * * * *' },
    log: { level: 'info' },
    ...rest,
    mqtt: { url, reconnect_period_ms: 200, keepalive_s: 10, ...(mqtt as object | undefined) },
  };
}

export interface SpawnedAgent {
  readonly proc: ChildProcess;
  readonly pid: number;
  /** everything the agent logged so far */
  log(): string;
  /** resolves with the exit code (null when killed by a signal) and the signal */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** resident set size now, bytes (Linux /proc) */
  rss(): number;
}

export async function spawnAgent(config: Record<string, unknown>, waitFor = 'agent online', timeoutMs = 20000): Promise<SpawnedAgent> {
  const dir = mkdtempSync(join(tmpdir(), 'sedac-agent-'));
  const file = join(dir, 'sedac.yaml');
  writeFileSync(file, stringify(config));
  const proc = spawn(process.execPath, ['dist/agent/cli.js', 'run', '--config', file], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  proc.stderr?.on('data', (d: Buffer) => (log += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  const end = Date.now() + timeoutMs;
  while (!log.includes(waitFor)) {
    if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`agent exited before '${waitFor}':\n${log}`);
    if (Date.now() > end) {
      proc.kill('SIGKILL');
      throw new Error(`agent did not log '${waitFor}' within ${timeoutMs} ms:\n${log}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  const pid = proc.pid;
  if (pid === undefined) throw new Error('no pid');
  return {
    proc,
    pid,
    log: () => log,
    exited,
    rss: () => {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      if (!m?.[1]) throw new Error('no VmRSS in /proc status');
      return Number(m[1]) * 1024;
    },
  };
}
