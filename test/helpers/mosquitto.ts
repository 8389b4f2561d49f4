/**
 * A real Mosquitto for integration tests: started on a free loopback port with MQTT 5 and
 * persistence in a temp dir (so that a restart keeps sessions and queued QoS 1 messages, like a
 * production broker). Missing binary = a failing test that says how to install it.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Mosquitto {
  readonly port: number;
  readonly url: string;
  /** SIGTERM (Mosquitto saves its persistence file) and wait for exit */
  stop(): Promise<void>;
  /** start again on the same port with the same persistence */
  start(): Promise<void>;
  /** stop() and remove the temp dir */
  close(): Promise<void>;
}

export function mosquittoBinary(): string {
  for (const p of ['/usr/sbin/mosquitto', '/usr/local/sbin/mosquitto', '/usr/bin/mosquitto']) if (existsSync(p)) return p;
  const r = spawnSync('sh', ['-c', 'command -v mosquitto'], { encoding: 'utf8' });
  const p = r.stdout.trim();
  if (r.status === 0 && p) return p;
  throw new Error('mosquitto binary not found: the agent integration tests need a real Mosquitto (apt-get install -y mosquitto)');
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

export async function startMosquitto(): Promise<Mosquitto> {
  const bin = mosquittoBinary();
  const dir = mkdtempSync(join(tmpdir(), 'sedac-mosq-'));
  // started as root, Mosquitto drops to the `mosquitto` user: it must be able to write its database here
  chmodSync(dir, 0o777);
  const port = await freePort();
  const conf = join(dir, 'mosquitto.conf');
  writeFileSync(
    conf,
    [
      `listener ${port} 127.0.0.1`,
      'allow_anonymous true',
      'persistence true',
      `persistence_location ${dir}/`,
      'autosave_interval 0',
      'max_queued_messages 10000',
      'set_tcp_nodelay true',
      'log_dest none',
      '',
    ].join('\n'),
  );
  let proc: ChildProcess | undefined;
  let stderr = '';
  const start = async (): Promise<void> => {
    stderr = '';
    proc = spawn(bin, ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
    proc.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const deadline = Date.now() + 5000;
    while (!(await canConnect(port))) {
      if (proc.exitCode !== null || Date.now() > deadline) throw new Error(`mosquitto did not start on ${port}: ${stderr}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  };
  const stop = async (): Promise<void> => {
    const p = proc;
    proc = undefined;
    if (!p || p.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      p.once('exit', () => resolve());
      p.kill('SIGTERM');
    });
  };
  await start();
  return {
    port,
    url: `mqtt://127.0.0.1:${port}`,
    start,
    stop,
    close: async () => {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}
