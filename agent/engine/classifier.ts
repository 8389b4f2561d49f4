/**
 * The early-exit classifier: runs a BERT-family bundle layer by layer and stops at the first layer
 * whose exit head is confident enough for the requested level (thresholds from `sedac calibrate`).
 *
 *   ids ─ embed ─ layer.0 ─(exit?)─ layer.1 ─(exit?)─ … ─ layer.L-1 ─ head ─ logits
 *   full depth (`exact`, or no level): the fused `full` graph, one session call.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SedacError } from '../errors.js';
import { readManifest, sha256File, type Manifest } from './bundle.js';
import { argmax, cutFeatures, headProbs, loadHeads, normalizedEntropy, softmaxInPlace, type ExitHead, type ExitHeadsEntry, type Ladder, type LadderLevel } from './classifierExit.js';
import { Session, floats, i32, type Feeds, type OrtTensor } from './ort.js';
import type { EngineTokenizer } from './tokenizer/common.js';
import { HfTokenizer } from './tokenizer/hfJson.js';
import type { ClassifyOptions, ClassifyResult, LoadedModel } from './types.js';

export interface ClassifierOptions {
  /** ORT intra-op threads; default 1 */
  threads?: number;
  /** longest accepted text in UTF-16 code units; default 100,000 (longer: E_TOO_LARGE) */
  maxChars?: number;
}

/** One tokenized text: [CLS] text [SEP], truncated to the model's maximum length. */
export interface Encoded {
  ids: Int32Array;
  typeIds: Int32Array;
  mask: Int32Array;
  /** the text had more tokens than fit */
  truncated: boolean;
}

export interface ClassifierResult extends ClassifyResult {
  /** input tokens including [CLS] and [SEP] */
  tokens: number;
  truncated: boolean;
}

/** The outcome of one forward pass. */
export interface Outcome {
  /** class probabilities */
  probs: Float64Array;
  /** encoder layers computed */
  layers: number;
  /** the model's own logits, when its classifier answered (full depth) */
  logits?: Float32Array;
}

/** Per-layer exit features and final logits of a set of texts (for calibration). */
export interface Trace {
  /** features[k] is (n, 2·d): [CLS ; mean] after k encoder layers, k = 0 (embeddings) … L-1 */
  features: Float32Array[];
  /** (n, classes) full-depth logits */
  logits: Float32Array;
}

/** Level names that mean full depth. */
const FULL_DEPTH = new Set(['exact', 'full']);

export class Classifier implements LoadedModel {
  readonly task = 'classify' as const;
  readonly nLayers: number;
  readonly levels: string[];
  readonly labels: string[];
  readonly hidden: number;
  readonly maxLength: number;
  readonly featureDim: number;
  private readonly hasTypes: boolean;
  private readonly maxChars: number;

  private constructor(
    readonly dir: string,
    readonly manifest: Manifest,
    readonly bundleHash: string,
    readonly tokenizer: EngineTokenizer,
    private readonly embed: Session,
    private readonly layers: Session[],
    private readonly head: Session,
    private readonly full: Session,
    readonly exitHeads: ExitHead[] | undefined,
    readonly ladder: Ladder | undefined,
    opts: ClassifierOptions,
  ) {
    const c = manifest.config;
    this.nLayers = layers.length;
    this.labels = manifest.labels ?? [];
    this.hidden = Number(c.hidden);
    this.maxLength = Number(c.maxLength ?? c.maxPositions);
    this.hasTypes = c.hasTokenTypes !== false;
    this.featureDim = 2 * this.hidden;
    this.maxChars = opts.maxChars ?? 100_000;
    this.levels = ladder && exitHeads ? ladder.levels.map((l) => l.name) : [];
  }

  get name(): string {
    return this.manifest.name;
  }

  /** Open a bundle directory (manifest read and verified unless given). */
  static async open(dir: string, manifest?: Manifest, opts: ClassifierOptions = {}): Promise<Classifier> {
    const m = manifest ?? readManifest(dir, true);
    if (m.task !== 'classify' || m.architecture !== 'bert') throw new SedacError('E_MODEL_UNSUPPORTED', `${dir}: not a classifier bundle (${m.task}/${m.architecture})`);
    const nLayers = Number(m.config.nLayers);
    const roles = ['embed', 'head', 'full', ...Array.from({ length: nLayers }, (_, l) => `layer.${l}`)];
    for (const r of roles) if (!m.graphs[r]) throw new SedacError('E_MODEL_FORMAT', `${dir}: graph ${r} missing from the manifest`);
    if (!Array.isArray(m.labels) || m.labels.length === 0) throw new SedacError('E_MODEL_FORMAT', `${dir}: labels missing from the manifest`);
    let tokenizer: EngineTokenizer;
    try {
      tokenizer = new HfTokenizer({ kind: 'hf-tokenizer-json', json: JSON.parse(readFileSync(join(dir, m.tokenizer.file), 'utf8')) });
    } catch (err) {
      throw err instanceof SedacError ? err : new SedacError('E_MODEL_TOKENIZER', `${dir}/${m.tokenizer.file}: ${(err as Error).message}`);
    }
    const extras = m.extras ?? {};
    const headsEntry = extras.exit_heads as ExitHeadsEntry | undefined;
    const heads = headsEntry ? loadHeads(dir, headsEntry) : undefined;
    const ladder = extras.ladder as Ladder | undefined;
    // 'basic': level 'all' re-fuses Add+LayerNormalization into the slower SkipLayerNormalization
    const so = { threads: opts.threads ?? 1, optimization: 'basic' as const };
    const load = (role: string): Promise<Session> => Session.load(join(dir, m.graphs[role]!.file), role, so);
    const layers: Session[] = [];
    for (let l = 0; l < nLayers; l++) layers.push(await load(`layer.${l}`));
    return new Classifier(dir, m, sha256File(join(dir, 'manifest.json')), tokenizer, await load('embed'), layers, await load('head'), await load('full'), heads, ladder, opts);
  }

  /** Tokenize with [CLS]/[SEP] and truncation; rejects texts with no tokens (E_INPUT). */
  encode(text: string): Encoded {
    if (typeof text !== 'string') throw new SedacError('E_INPUT', 'text must be a string');
    if (text.length > this.maxChars) throw new SedacError('E_TOO_LARGE', `text has ${text.length} characters (limit ${this.maxChars})`);
    const enc = this.encodePrefix(text);
    if (enc.ids.length <= 2) throw new SedacError('E_INPUT', 'text has no tokens (empty, or only whitespace / control characters)');
    return enc;
  }

  /**
   * Long texts: only the first maxLength tokens count, so tokenize a prefix cut at whitespace (BERT's
   * normalizer is per character and its pre-tokenizer splits at whitespace, so the prefix's tokens
   * are the text's first tokens), doubling it until it yields enough tokens or is the whole text.
   */
  private encodePrefix(text: string): Encoded {
    const want = this.maxLength;
    for (let len = want * 16; ; len *= 2) {
      let cut = text.length;
      if (len < text.length) {
        cut = len;
        while (cut > 0 && !/\s/.test(text[cut]!)) cut--;
        if (cut === 0) cut = text.length;
      }
      const full = this.tokenizer.encodeWithSpecial(text.slice(0, cut), Infinity);
      if (cut === text.length || full.ids.length > want) {
        const e = full.ids.length > want ? this.tokenizer.encodeWithSpecial(text.slice(0, cut), want) : full;
        return { ids: Int32Array.from(e.ids), typeIds: Int32Array.from(e.typeIds), mask: Int32Array.from(e.attentionMask), truncated: full.ids.length > want };
      }
    }
  }

  private ladderLevel(level: string | undefined): LadderLevel | undefined {
    if (level === undefined || FULL_DEPTH.has(level)) return undefined;
    if (!this.ladder || !this.exitHeads) throw new SedacError('E_BAD_REQUEST', `level '${level}': ${this.dir} has no calibrated ladder (run \`sedac calibrate\`); only exact`);
    const lv = this.ladder.levels.find((l) => l.name === level);
    if (!lv) throw new SedacError('E_BAD_REQUEST', `unknown level '${level}'; this model has ${['exact', ...this.levels.filter((n) => n !== 'exact')].join(', ')}`);
    return lv;
  }

  async classify(text: string, opts: ClassifyOptions = {}): Promise<ClassifierResult> {
    const t0 = performance.now();
    const lv = this.ladderLevel(opts.level);
    const enc = this.encode(text);
    const out = lv?.thresholds ? await this.runExits(enc, lv.thresholds) : await this.runFull(enc);
    const probs: Record<string, number> = {};
    this.labels.forEach((name, i) => (probs[name] = out.probs[i]!));
    return {
      label: this.labels[argmax(out.probs)]!,
      probs,
      layers: out.layers,
      level: lv?.name ?? opts.level ?? 'full',
      ms: performance.now() - t0,
      tokens: enc.ids.length,
      truncated: enc.truncated,
    };
  }

  private feeds(enc: Encoded, batch = 1): Feeds {
    const seq = enc.ids.length / batch;
    const f: Feeds = { input_ids: i32(enc.ids, [batch, seq]), attention_mask: i32(enc.mask, [batch, seq]) };
    if (this.hasTypes) f.token_type_ids = i32(enc.typeIds, [batch, seq]);
    return f;
  }

  /** Full depth in one call of the fused graph. */
  async runFull(enc: Encoded): Promise<Outcome> {
    const logits = floats((await this.full.run(this.feeds(enc))).logits, 'full.logits');
    return { probs: softmaxInPlace(Array.from(logits)), layers: this.nLayers, logits };
  }

  /**
   * The early-exit forward pass. thresholds[k] is the largest normalized entropy at which the head at
   * exit point k (after k encoder layers; 0 = the embeddings) may answer, -1: never. Static truncation
   * at depth k is thresholds = [-1 …, 1 at k]; all -1 is full depth through the split graphs.
   */
  async runExits(enc: Encoded, thresholds: number[]): Promise<Outcome> {
    const L = this.nLayers;
    const seq = enc.ids.length;
    const mask = i32(enc.mask, [1, seq]);
    const feats = new Float32Array(this.featureDim);
    const probs = new Float64Array(this.labels.length);
    // embeddings: word + position + type, LayerNorm
    let h: OrtTensor = (await this.embed.run(this.feeds(enc))).hidden!;
    for (let k = 0; k < L; k++) {
      // exit point k (after k encoder layers): head k on [CLS ; mean]; answer when its entropy is low enough
      const tau = thresholds[k] ?? -1;
      if (tau >= 0 && this.exitHeads) {
        cutFeatures(floats(h, `exit.${k}.hidden`), 0, seq, this.hidden, enc.mask, feats);
        headProbs(this.exitHeads[k]!, feats, probs);
        if (normalizedEntropy(probs) <= tau) return { probs, layers: k };
      }
      // encoder layer k
      h = (await this.layers[k]!.run({ hidden_in: h, attention_mask: mask })).hidden!;
    }
    // the model's own pooler + classifier
    const logits = floats((await this.head.run({ hidden_in: h })).logits, 'head.logits');
    return { probs: softmaxInPlace(Array.from(logits)), layers: L, logits };
  }

  /**
   * Run texts in padded batches through every layer; collect exit features and full-depth logits.
   * Batches are formed from texts of similar length (sorted), results come back in input order.
   */
  async trace(encs: Encoded[], batchSize = 32, onBatch?: (done: number) => void): Promise<Trace> {
    const n = encs.length;
    const F = this.featureDim;
    const C = this.labels.length;
    const L = this.nLayers;
    const features = Array.from({ length: L }, () => new Float32Array(n * F));
    const logits = new Float32Array(n * C);
    const order = encs.map((e, i) => [e.ids.length, i] as const).sort((a, b) => a[0] - b[0]).map(([, i]) => i);
    const feats = new Float32Array(F);
    for (let s = 0; s < n; s += batchSize) {
      const idx = order.slice(s, s + batchSize);
      const B = idx.length;
      const seq = Math.max(...idx.map((i) => encs[i]!.ids.length));
      const ids = new Int32Array(B * seq);
      const types = new Int32Array(B * seq);
      const mask = new Int32Array(B * seq);
      idx.forEach((i, b) => {
        const e = encs[i]!;
        ids.set(e.ids, b * seq);
        types.set(e.typeIds, b * seq);
        mask.set(e.mask, b * seq);
      });
      const batch: Encoded = { ids, typeIds: types, mask, truncated: false };
      const maskT = i32(mask, [B, seq]);
      let h: OrtTensor = (await this.embed.run(this.feeds(batch, B))).hidden!;
      for (let k = 0; k < L; k++) {
        // exit point k: after k encoder layers (k = 0: the embeddings)
        const hd = floats(h, `exit.${k}.hidden`);
        idx.forEach((i, b) => features[k]!.set(cutFeatures(hd, b, seq, this.hidden, mask, feats), i * F));
        h = (await this.layers[k]!.run({ hidden_in: h, attention_mask: maskT })).hidden!;
      }
      const lg = floats((await this.head.run({ hidden_in: h })).logits, 'head.logits');
      idx.forEach((i, b) => logits.set(lg.subarray(b * C, (b + 1) * C), i * C));
      onBatch?.(Math.min(s + batchSize, n));
    }
    return { features, logits };
  }

  async dispose(): Promise<void> {
    for (const s of [this.embed, ...this.layers, this.head, this.full]) await s.release();
  }
}

/** The factory `loadModel` calls for `task: 'classify'` bundles. */
export async function loadClassifier(dir: string, manifest: Manifest, opts: { threads?: number } = {}): Promise<LoadedModel> {
  return Classifier.open(dir, manifest, opts);
}

/** Strict UTF-8 decoding for byte input (files, payloads): invalid sequences are E_INPUT. */
export function decodeUtf8(bytes: Uint8Array, what = 'text'): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new SedacError('E_INPUT', `${what} is not valid UTF-8`);
  }
}
