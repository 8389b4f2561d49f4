/**
 * The agent of `bench/answerCpu.ts --engine fake`: `sedac run` with the engine replaced by the test
 * double (test/helpers/fakeModel.ts: no ORT, one setImmediate per token), so that the CPU the
 * process spends per answer is the agent's own (MQTT, JSON, features, timers) and nothing else.
 *
 * Run: `node dist/bench/answerCpuAgent.js CONFIG`.
 */
import { readConfigFile } from '../agent/config/load.js';
import { runAgent } from '../agent/commands/run.js';
import { createLogger } from '../agent/log.js';
import { fakeLoader } from '../test/helpers/fakeModel.js';

async function main(): Promise<void> {
  const path = process.argv[2];
  if (!path) throw new Error('usage: node dist/bench/answerCpuAgent.js CONFIG');
  const config = await readConfigFile(path);
  process.exitCode = await runAgent(config, { log: createLogger(config.log), modelLoader: fakeLoader() });
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
