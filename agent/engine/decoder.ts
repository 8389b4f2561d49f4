/**
 * The decoder engine: runs a Llama bundle on onnxruntime, either through the fused full-depth graph
 * (fewest calls), layer by layer (calibration, cost breakdown) or segment by segment with exits
 * (exits.ts). Structs by lifetime, as in llama2.c: DecoderConfig (dimensions), the sessions (loaded
 * once per graph role, read-only after), RunState (per request: position and KV cache, runState.ts).
 */
import { SedacError } from '../errors.js';
import { IO } from '../convert/llamaGraphs.js';
import type { Manifest } from './bundle.js';
import { type DecoderLadder, checkLadder } from './ladder.js';
import { type Feeds, type OrtTensor, Session, floats, i32, i64 } from './ort.js';
import { RunState } from './runState.js';

export { RunState } from './runState.js';
import { makeSampler } from './sampling.js';
import { generateIds, resolveLevel } from './generation.js';
import type { GenerateOptions, GenerateResult, LoadedModel, Tokenizer } from './types.js';
import { totalmem } from 'node:os';
import { join } from 'node:path';

export interface DecoderConfig {
  dim: number;
  nLayers: number;
  nKvHeads: number;
  headDim: number;
  /** head size of the KV cache (headDim padded to a multiple of 16 for GroupQueryAttention) */
  kvHeadDim: number;
  vocabSize: number;
  maxSeqLen: number;
}

/** Time spent per step of a layered forward, for the bench's cost breakdown (ms). */
export type StepTimer = (role: string, ms: number) => void;

export interface DecoderOptions {
  threads?: number;
  /**
   * weight bytes the loaded graphs may hold before idle ones are released, as a multiple of the
   * bundle's weight files; default 1.25 (one copy of every weight, exit heads and slack)
   */
  residentWeights?: number;
  /**
   * memory (MB) graphs may hold while two sets must be loaded side by side (timing a level against
   * the fused graph); default $SEDAC_MEMORY_MB, else a quarter of the machine's memory
   */
  memoryMb?: number;
}

/** A loaded graph and who is using it: busy while a run is in flight, pinned while a request needs it. */
interface Resident {
  session: Promise<Session>;
  /** initializer bytes the session holds (from the manifest) */
  bytes: number;
  busy: number;
  pins: number;
}

export class Decoder implements LoadedModel {
  readonly task = 'generate' as const;
  /** calibrated levels, best first (empty: not calibrated, full depth only) */
  readonly levels: string[];
  readonly ladder: DecoderLadder | undefined;
  /**
   * sessions by graph role, loaded on first use. Every graph holds its own prepacked copy of the
   * weights it uses (onnxruntime packs MatMul weights per session), so graphs that share layers (the
   * fused graph, per-layer graphs, each level's segments) are not kept side by side: loading one
   * releases idle, unpinned ones until the held bytes fit the budget (DESIGN.md §8: weights once).
   */
  private sessions = new Map<string, Resident>();
  /** weight bytes the loaded sessions may hold (see DecoderOptions.residentWeights) */
  private readonly budget: number;
  /** sessions created so far: a request at a level already loaded creates none */
  private loads = 0;
  /** bytes graphs loaded side by side may hold (DecoderOptions.memoryMb) */
  private readonly memoryLimit: number;

  private constructor(
    readonly name: string,
    readonly bundleHash: string,
    readonly dir: string,
    readonly manifest: Manifest,
    readonly config: DecoderConfig,
    readonly tokenizer: Tokenizer,
    private readonly opts: DecoderOptions,
  ) {
    this.ladder = checkLadder(manifest.extras?.ladder, config.nLayers, manifest.graphs, dir);
    this.levels = this.ladder?.levels.map((l) => l.name) ?? [];
    const weightBytes = manifest.weight_files.reduce((a, w) => a + w.bytes, 0);
    this.budget = (opts.residentWeights ?? 1.25) * weightBytes;
    const mb = opts.memoryMb ?? Number(process.env.SEDAC_MEMORY_MB);
    this.memoryLimit = Number.isFinite(mb) && mb > 0 ? mb * 1e6 : 0.25 * totalmem();
  }

  /** Whether these graphs may be loaded at once within the memory limit (weights of each counted once per graph). */
  fitsTogether(roles: string[]): boolean {
    return [...new Set(roles)].reduce((a, r) => a + (this.manifest.graphs[r]?.weight_bytes ?? 0), 0) <= this.memoryLimit;
  }

  static async load(dir: string, manifest: Manifest, bundleHash: string, tokenizer: Tokenizer, opts: DecoderOptions = {}): Promise<Decoder> {
    const c = manifest.config as unknown as DecoderConfig;
    for (const k of ['dim', 'nLayers', 'nKvHeads', 'headDim', 'kvHeadDim', 'vocabSize', 'maxSeqLen'] as const) {
      if (!Number.isInteger(c[k]) || c[k] <= 0) throw new SedacError('E_MODEL_FORMAT', `${dir}: manifest config.${k} is missing or invalid`);
    }
    const d = new Decoder(manifest.name, bundleHash, dir, manifest, c, tokenizer, opts);
    await d.load('full');
    return d;
  }

  get nLayers(): number {
    return this.config.nLayers;
  }

  /** Load a graph role now (it stays until the budget needs its memory and nobody uses it). */
  async load(role: string): Promise<void> {
    await this.entry(role).session;
  }

  /**
   * Keep `roles` loaded until the returned function is called: a request pins the graphs of its
   * level, so a concurrent request at another level cannot release them mid-way.
   */
  pin(roles: Iterable<string>): () => void {
    // pinned one by one as they load, so loading the next cannot release the ones before it
    const held: Resident[] = [];
    for (const r of new Set(roles)) {
      const e = this.entry(r);
      e.pins++;
      held.push(e);
    }
    let done = false;
    return () => {
      if (done) return;
      done = true;
      for (const e of held) e.pins--;
    };
  }

  /** Run a graph role (loaded on first use); it cannot be released while the run is in flight. */
  async run(role: string, feeds: Feeds): Promise<Feeds> {
    const e = this.entry(role);
    e.busy++;
    try {
      return await (await e.session).run(feeds);
    } finally {
      e.busy--;
    }
  }

  /** The per-layer graphs (embed, layer.N, head): calibration and the bench's cost breakdown. */
  layeredRoles(): string[] {
    return ['embed', ...Array.from({ length: this.config.nLayers }, (_, l) => `layer.${l}`), 'head'];
  }

  /** Release every loaded graph nobody uses or pins now (e.g. calibration between its phases). */
  trim(): void {
    this.evict(Infinity);
  }

  /** Graph roles loaded now (tests, health). */
  get loadedRoles(): string[] {
    return [...this.sessions.keys()];
  }

  resident(): { graphs: string[]; weight_bytes: number; loads: number } {
    return { graphs: this.loadedRoles.sort(), weight_bytes: [...this.sessions.values()].reduce((a, e) => a + e.bytes, 0), loads: this.loads };
  }

  private entry(role: string): Resident {
    let e = this.sessions.get(role);
    if (e) {
      // most recently used last: eviction takes the oldest idle graph first
      this.sessions.delete(role);
      this.sessions.set(role, e);
      return e;
    }
    const g = this.manifest.graphs[role];
    if (!g) throw new SedacError('E_MODEL_FORMAT', `${this.dir}: bundle has no '${role}' graph`);
    const bytes = typeof g.weight_bytes === 'number' ? g.weight_bytes : 0;
    this.evict(bytes);
    const session = Session.load(join(this.dir, g.file), `${this.name}/${role}`, { threads: this.opts.threads });
    this.loads++;
    e = { session, bytes, busy: 0, pins: 0 };
    this.sessions.set(role, e);
    session.catch(() => this.sessions.delete(role));
    return e;
  }

  /** Release idle, unpinned graphs (oldest first) until `incoming` more bytes fit the budget (Infinity: all). */
  private evict(incoming: number): void {
    let held = [...this.sessions.values()].reduce((a, e) => a + e.bytes, 0);
    for (const [role, e] of this.sessions) {
      if (held + incoming <= this.budget) return;
      if (e.busy > 0 || e.pins > 0) continue;
      this.sessions.delete(role);
      held -= e.bytes;
      void e.session.then((s) => s.release()).catch(() => undefined);
    }
  }

  newState(share?: RunState): RunState {
    return new RunState(this.config, share);
  }

  /** GQA's per-step inputs: total length after this step, and seqlens_k = total - 1. */
  stepFeeds(past: number, n: number): Feeds {
    const total = past + n;
    return {
      [IO.seqlensK]: i32(Int32Array.of(total - 1), [1]),
      [IO.totalLen]: i32(Int32Array.of(total), []),
      [IO.kvStart]: i64(BigInt64Array.of(BigInt(past)), [1]),
      [IO.kvEnd]: i64(BigInt64Array.of(BigInt(total)), [1]),
    };
  }

  idsTensor(tokens: number[]): OrtTensor {
    return i64(BigInt64Array.from(tokens, (t) => BigInt(t)), [1, tokens.length]);
  }

  /**
   * Full-depth forward of `tokens` at positions s.pos.. through the fused graph.
   * Returns logits (tokens.length, vocab) and advances the state.
   */
  async forward(tokens: number[], s: RunState): Promise<Float32Array> {
    const n = tokens.length;
    this.checkRoom(s, n);
    const L = this.config.nLayers;
    s.kv.ensure(s.pos + n, s.pos);
    const out = await this.run('full', s.kv.feeds(0, L, { [IO.inputIds]: this.idsTensor(tokens), ...this.stepFeeds(s.pos, n) }));
    s.kv.store(out, 0, L, s.pos, n);
    s.pos += n;
    return floats(out[IO.logits], 'logits');
  }

  /**
   * The same forward, one graph per layer: calibration reads every layer's state through
   * `onHidden`; `timer` receives the wall time of each step (embed, layer.N, head) for the bench.
   */
  async forwardLayered(tokens: number[], s: RunState, timer?: StepTimer, onHidden?: (layer: number, h: Float32Array) => void): Promise<Float32Array> {
    const n = tokens.length;
    this.checkRoom(s, n);
    const L = this.config.nLayers;
    const unpin = this.pin(this.layeredRoles());
    try {
      s.kv.ensure(s.pos + n, s.pos);
      const step = this.stepFeeds(s.pos, n);
      let t = performance.now();
      const lap = (role: string) => {
        if (!timer) return;
        const now = performance.now();
        timer(role, now - t);
        t = now;
      };

      // token embedding: (1, n, dim)
      let h = (await this.run('embed', { [IO.inputIds]: this.idsTensor(tokens) }))[IO.hiddenOut]!;
      lap('embed');
      for (let l = 0; l < L; l++) {
        // layer l: attention over the cache + this step, then the FFN; the cache grows by n
        const out = await this.run(`layer.${l}`, s.kv.feeds(l, l + 1, { [IO.hidden]: h, ...step }));
        h = out[IO.hiddenOut]!;
        s.kv.store(out, l, l + 1, s.pos, n);
        lap(`layer.${l}`);
        onHidden?.(l, floats(h, `hidden after layer ${l}`));
      }
      // final norm + LM head: (1, n, vocab)
      const logits = floats((await this.run('head', { [IO.hidden]: h }))[IO.logits], 'logits');
      lap('head');
      s.pos += n;
      return logits;
    } finally {
      unpin();
    }
  }

  checkRoom(s: RunState, n: number): void {
    if (n <= 0) throw new SedacError('E_INPUT', 'nothing to run: empty token list');
    if (s.pos + n > this.config.maxSeqLen) {
      throw new SedacError('E_INPUT', `${s.pos + n} tokens exceed the model's context of ${this.config.maxSeqLen}`);
    }
  }

  /** Prompt → [BOS] + ids, checked against the context. */
  encodePrompt(prompt: string): number[] {
    const ids = this.encodePromptTruncated(prompt, Infinity);
    if (ids.length === 0) throw new SedacError('E_INPUT', 'the prompt encodes to no tokens');
    if (ids.length >= this.config.maxSeqLen) {
      throw new SedacError('E_INPUT', `the prompt is ${ids.length} tokens; the model's context is ${this.config.maxSeqLen}`);
    }
    return ids;
  }

  /** [BOS] + ids of a text, cut to at most `max` tokens (for teacher-forced evaluation). */
  encodePromptTruncated(text: string, max: number): number[] {
    const ids = this.tokenizer.encode(text);
    if (this.tokenizer.bos !== undefined) ids.unshift(this.tokenizer.bos);
    return ids.slice(0, Math.max(0, max));
  }

  async generate(prompt: string, opts: GenerateOptions = {}): Promise<GenerateResult> {
    const t0 = performance.now();
    const temperature = opts.temperature ?? 0;
    const sampler = makeSampler(temperature, opts.topP ?? 1, opts.seed ?? 0);
    const ids = this.encodePrompt(prompt);
    const { level, note } = resolveLevel(this, opts.level);
    const r = await generateIds(this, ids, level, sampler, !(temperature > 0), opts.maxTokens ?? 64, opts.onToken);
    const ms = performance.now() - t0;
    const meanLayers = r.layers.length ? r.layers.reduce((a, b) => a + b, 0) / r.layers.length : this.config.nLayers;
    return {
      text: this.continuation(ids, r.tokens),
      tokens: r.tokens,
      promptTokens: ids.length,
      layers: r.layers,
      meanLayers,
      level: level?.name ?? 'full',
      ms,
      tokensPerS: r.tokens.length / (ms / 1000),
      stop: r.stop,
      ...(note || r.note ? { note: note ?? r.note } : {}),
    };
  }

  /** The text the new tokens add after the prompt, keeping the leading space a piece may carry. */
  continuation(promptIds: number[], tokens: number[]): string {
    const body = promptIds.filter((t) => t !== this.tokenizer.bos);
    const before = this.tokenizer.decode(body);
    const all = this.tokenizer.decode([...body, ...tokens]);
    return all.startsWith(before) ? all.slice(before.length) : this.tokenizer.decode(tokens);
  }

  async dispose(): Promise<void> {
    const all = [...this.sessions.values()];
    this.sessions.clear();
    await Promise.all(all.map(async (e) => (await e.session.catch(() => undefined))?.release()));
  }
}
