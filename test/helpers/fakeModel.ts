/**
 * A test double of the engine's LoadedModel for agent tests that are about MQTT, queues and
 * errors, not about model output. Deterministic: `generate` echoes the prompt's words in reverse,
 * one word per "token", after `msPerToken` of asynchronous waiting (like ORT's async run, it yields
 * the event loop). Integration tests that check engine output use the real loadModel instead.
 */
import type { ClassifyResult, GenerateOptions, GenerateResult, LoadedModel } from '../../agent/engine/types.js';
import type { ModelLoader } from '../../agent/features/context.js';

export interface FakeModelOptions {
  task?: 'generate' | 'classify';
  /** async wait per generated token, ms; default 0 (one setImmediate) */
  msPerToken?: number;
  levels?: string[];
  nLayers?: number;
  /** throw E_INFER-like errors for prompts containing this */
  failOn?: string;
}

export function fakeModel(name: string, o: FakeModelOptions = {}): LoadedModel & { calls: number } {
  const levels = o.levels ?? ['exact', 'balanced', 'eco'];
  const nLayers = o.nLayers ?? 8;
  const wait = (): Promise<void> => new Promise((r) => (o.msPerToken ? setTimeout(r, o.msPerToken) : setImmediate(r)));
  const model = {
    name,
    task: o.task ?? 'generate',
    bundleHash: 'f'.repeat(64),
    nLayers,
    levels,
    calls: 0,
    async generate(prompt: string, opts: GenerateOptions = {}): Promise<GenerateResult> {
      model.calls++;
      const t0 = performance.now();
      if (o.failOn && prompt.includes(o.failOn)) throw new Error('fake engine failure');
      const words = prompt.split(/\s+/).filter(Boolean).reverse().slice(0, opts.maxTokens ?? 64);
      const layers: number[] = [];
      for (let i = 0; i < words.length; i++) {
        await wait();
        layers.push(opts.level === 'eco' ? 2 : nLayers);
      }
      const ms = performance.now() - t0;
      return {
        text: words.join(' '),
        tokens: words.map((_, i) => i + 3),
        promptTokens: prompt.length,
        layers,
        meanLayers: layers.length ? layers.reduce((a, b) => a + b, 0) / layers.length : nLayers,
        level: opts.level ?? 'full',
        ms,
        tokensPerS: words.length / Math.max(ms / 1000, 1e-6),
        stop: words.length >= (opts.maxTokens ?? 64) ? 'max_tokens' : 'eos',
      };
    },
    async classify(text: string, opts: { level?: string } = {}): Promise<ClassifyResult> {
      model.calls++;
      await wait();
      const label = text.includes('!') ? 'offensive' : 'neither';
      return { label, probs: { offensive: label === 'offensive' ? 0.9 : 0.1, neither: label === 'neither' ? 0.9 : 0.1 }, layers: 3, level: opts.level ?? 'full', ms: 0 };
    },
    async dispose(): Promise<void> {},
  };
  return model;
}

/** A ModelLoader returning fake models (options per model name). */
export function fakeLoader(opts: Record<string, FakeModelOptions> = {}): ModelLoader {
  return async (spec) => fakeModel(spec.name, opts[spec.name] ?? {});
}
