/**
 * `npm run bench -- signals`: how well each exit score ranks exits, free of engine costs. Per shared
 * decoder model: the calibration data (up to 30,000 positions of its train text), the exit heads
 * calibration would choose, every exit point scored with normalized entropy and with the margin
 * score; thresholds fitted on the fit split (calibration's threshold family), agreement and mean exit
 * layer measured on the calibration split. Reported: the fewest mean layers that reach each target,
 * and L / Ē — the speedup free exit checks would allow. No timing: this isolates the signal.
 */
import { readTexts, scoreExits, splitByText } from '../agent/calibrate/decoderCalibrate.js';
import { collectDecoderData } from '../agent/calibrate/decoderData.js';
import { fitThresholdFamily, simulateTable } from '../agent/calibrate/exitTable.js';
import { loadSource } from '../agent/convert/detect.js';
import type { Decoder } from '../agent/engine/decoder.js';
import { loadModel } from '../agent/engine/index.js';
import { EXIT_SIGNALS, type ExitSignal } from '../agent/engine/ladder.js';
import { sharedPath } from '../test/helpers/shared.js';
import { DATA } from './exits.js';
import { benchModels, isSmall, modelFile } from './generate.js';
import { markdownTable, round } from './stats.js';

const TARGETS = [0.99, 0.97, 0.93, 0.85];
const MAX_TOKENS = 30_000;

export async function benchSignals(): Promise<{ rows: Record<string, unknown>[]; table: string }> {
  const rows: Record<string, unknown>[] = [];
  // the signal is a property of the trained model: the widened ones give the same numbers
  const models = benchModels(isSmall);
  for (const m of models) {
    const gguf = await modelFile(m);
    const train = DATA[m.name]!.train;
    const d = (await loadModel({ name: m.name, source: gguf, quiet: true })) as Decoder;
    try {
      const data = await collectDecoderData(d, readTexts(sharedPath(train)), { maxTokens: MAX_TOKENS });
      const [fitIdx, calIdx] = splitByText(data);
      const { fitBy, calBy } = await scoreExits(await loadSource(gguf), data, fitIdx, calIdx).finally(() => data.dispose());
      const L = data.nLayers;
      for (const signal of EXIT_SIGNALS) {
        const family = fitThresholdFamily(fitBy[signal], L, Math.max(20, Math.ceil(0.002 * fitIdx.length)));
        const sims = family.map((row) => simulateTable(calBy[signal], row, L));
        for (const target of TARGETS) {
          const ok = sims.filter((x) => x.agreement >= target);
          const best = ok.length ? ok.reduce((a, b) => (b.meanLayers < a.meanLayers ? b : a)) : undefined;
          rows.push({
            model: m.name,
            data: `${train} (${data.n} positions; fit ${fitIdx.length}, measured ${calIdx.length})`,
            signal,
            target,
            agreement: best ? round(best.agreement, 4) : null,
            mean_layers: best ? round(best.meanLayers, 2) : L,
            free_check_speedup: best ? round(L / best.meanLayers, 2) : 1,
          });
        }
      }
    } finally {
      await d.dispose();
    }
  }
  const wide = models.flatMap((m) =>
    TARGETS.map((target) => {
      const at = (s: ExitSignal) => rows.find((r) => r.model === m.name && r.signal === s && r.target === target)!;
      return { model: m.name, target, 'entropy: mean layers': at('entropy').mean_layers, 'entropy: L/Ē': at('entropy').free_check_speedup, 'margin: mean layers': at('margin').mean_layers, 'margin: L/Ē': at('margin').free_check_speedup };
    }),
  );
  const table = [
    `Exit signals, free of engine costs: the calibration data of each model (its train text, up to ${MAX_TOKENS} positions), the exit heads calibration chooses, exits possible after every layer; thresholds fitted on the fit split (texts 0–1 mod 5), agreement with the full model and mean exit layer measured on the calibration split (texts 2–3 mod 5). Mean layers = the fewest that reach the target among calibration's threshold family; L/Ē = the speedup if checks were free.`,
    '',
    markdownTable(wide),
  ].join('\n');
  return { rows, table };
}
