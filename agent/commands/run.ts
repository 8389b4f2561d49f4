/**
 * `sedac run [--config FILE]`: the daemon. Starts the embedded broker when `broker.enabled`, then
 * the agent; SIGTERM / SIGINT stop it gracefully (also while starting: a model load in progress is
 * abandoned). A second signal exits at once with code 1.
 */
import { existsSync, readFileSync } from 'node:fs';
import type { EmbeddedBroker } from '../broker.js';
import { readConfigFile } from '../config/load.js';
import type { SedacConfig } from '../config/schema.js';
import { Controller, StartAborted, type ControllerOptions } from '../controller.js';
import { SedacError } from '../errors.js';
import { createLogger, type Logger } from '../log.js';
import { parse } from './args.js';

const USAGE = `usage: sedac run [--config FILE]
  --config FILE  YAML config (default: $SEDAC_CONFIG, else /etc/sedac/sedac.yaml)
Relative paths in the config resolve against the working directory.`;

const SYSTEM_CONFIG = '/etc/sedac/sedac.yaml';

export async function main(argv: string[]): Promise<number> {
  const args = parse(argv, { config: { type: 'string', short: 'c' } }, USAGE, [0, 0]);
  if (!args) return 0;
  const { values } = args;
  const path = values.config ?? process.env.SEDAC_CONFIG ?? (existsSync(SYSTEM_CONFIG) ? SYSTEM_CONFIG : undefined);
  if (!path) throw new SedacError('E_USAGE', `no config: pass --config FILE or set SEDAC_CONFIG\n${USAGE}`);
  const config = await readConfigFile(path);
  const log = createLogger(config.log);
  const { loadModel } = await import('../engine/index.js');
  const { ORT_VERSION } = await import('../engine/ort.js');
  log.info('starting', { config: path, device_id: config.device_id });
  const code = await runAgent(config, { log, modelLoader: (spec) => loadModel({ ...spec, quiet: true }), versions: versions({ onnxruntime: ORT_VERSION }) });
  exitGuard(log);
  return code;
}

export type RunOptions = Omit<ControllerOptions, 'config'> & {
  /** stop when this aborts (in addition to SIGTERM / SIGINT) */
  signal?: AbortSignal;
};

/** Run broker (if enabled) + agent until a signal; resolves with the exit code. */
export async function runAgent(config: SedacConfig, opts: RunOptions): Promise<number> {
  const { log } = opts;
  const stop = new AbortController();
  const onSignal = (sig: NodeJS.Signals): void => {
    if (stop.signal.aborted) {
      log.warn('second signal: exiting now', { signal: sig });
      process.exit(1);
    }
    log.info('signal: stopping', { signal: sig });
    stop.abort();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  opts.signal?.addEventListener('abort', () => stop.abort(), { once: true });
  let broker: EmbeddedBroker | undefined;
  try {
    if (config.broker.enabled) {
      const { startBroker } = await import('../broker.js'); // aedes costs ~3 MB: only load it when used
      broker = await startBroker({ host: config.broker.host, port: config.broker.port, log });
    }
    const controller = new Controller({ ...opts, config });
    try {
      await controller.start(stop.signal);
    } catch (err) {
      if (err instanceof StartAborted) {
        log.info('startup aborted');
        return 0;
      }
      throw err;
    }
    if (!stop.signal.aborted) await new Promise((resolve) => stop.signal.addEventListener('abort', resolve, { once: true }));
    await controller.stop();
    return 0;
  } finally {
    await broker?.close();
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
  }
}

/** If some handle (a timer in a library, a native thread) keeps the process alive after a clean stop, exit anyway. */
function exitGuard(log: Logger): void {
  setTimeout(() => {
    log.warn('process still alive 3 s after stopping; exiting');
    process.exit(process.exitCode ?? 0);
  }, 3000).unref();
}

function versions(extra: Record<string, string>): Record<string, string> {
  let sedac = 'unknown';
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version?: string };
    sedac = pkg.version ?? sedac;
  } catch {
    // running from an unusual layout: leave 'unknown'
  }
  return { sedac, node: process.versions.node, ...extra };
}
