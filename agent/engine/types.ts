/**
 * What the rest of the agent sees of the engine. The engine itself (engine.ts) is the only code
 * that touches onnxruntime-node; features depend on these types only.
 */

export interface Tokenizer {
  /** Encode text to ids (no BOS/EOS added; the engine adds BOS for decoders). */
  encode(text: string): number[];
  /** Decode ids to text (special tokens dropped, byte pieces merged into UTF-8). */
  decode(ids: number[]): string;
  readonly vocabSize: number;
  readonly bos: number | undefined;
  readonly eos: number | undefined;
}

export interface GenerateOptions {
  /** maximum new tokens; default 64 */
  maxTokens?: number;
  /** 0 = greedy (default) */
  temperature?: number;
  /** nucleus sampling mass; default 1 */
  topP?: number;
  /** PRNG seed for sampling; default 0 */
  seed?: number;
  /** operating level name (`exact`, `high`, `balanced`, `eco`, `critical`); default full depth */
  level?: string;
  /** called with each new token id as it is produced */
  onToken?: (id: number) => void;
}

export interface GenerateResult {
  text: string;
  /** generated token ids (EOS excluded) */
  tokens: number[];
  promptTokens: number;
  /** layers computed for each generated token */
  layers: number[];
  meanLayers: number;
  /** the level that served the request, or `full` when no calibrated ladder was used */
  level: string;
  ms: number;
  tokensPerS: number;
  /** why generation stopped */
  stop: 'eos' | 'max_tokens' | 'context';
  /** set when the request was served differently than asked (e.g. an uncalibrated bundle) */
  note?: string;
}

export interface ClassifyOptions {
  level?: string;
}

export interface ClassifyResult {
  label: string;
  probs: Record<string, number>;
  layers: number;
  level: string;
  ms: number;
}

/** A loaded model, whatever its task. */
export interface LoadedModel {
  readonly name: string;
  readonly task: 'generate' | 'classify';
  /** sha256 of the bundle manifest: identifies exactly what is loaded */
  readonly bundleHash: string;
  readonly nLayers: number;
  /** calibrated level names, best first; empty when the bundle has no calibration */
  readonly levels: string[];
  generate?(prompt: string, opts?: GenerateOptions): Promise<GenerateResult>;
  classify?(text: string, opts?: ClassifyOptions): Promise<ClassifyResult>;
  /** the graphs loaded now and the weight bytes they hold (decoders: one level's graphs at a time) */
  resident?(): { graphs: string[]; weight_bytes: number };
  dispose(): Promise<void>;
}
