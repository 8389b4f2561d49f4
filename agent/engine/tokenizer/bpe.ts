/**
 * The `BPE` model of a Hugging Face tokenizer.json: characters → vocabulary ids (unknown characters
 * fall back to `<0xNN>` byte tokens when `byte_fallback`, else unk), then merges are applied by rank
 * (lowest first, ties leftmost) from a heap, as HF tokenizers' `Word::merge_all` does.
 */
import { Heap } from './heap.js';
import { asArray, asInt, asObject, asString, badTokenizer, bytePiece, optBool, optString, type JsonObject } from './common.js';

export interface WordModel {
  /** ids of one pre-tokenized word */
  tokenize(word: string): number[];
  idToToken(id: number): string | undefined;
  tokenToId(token: string): number | undefined;
  readonly size: number;
}

interface Symbol {
  id: number;
  prev: number;
  next: number;
  /** false once merged into its left neighbour */
  alive: boolean;
}

interface Candidate {
  rank: number;
  pos: number;
  newId: number;
}

const lowerRankFirst = (a: Candidate, b: Candidate): boolean => a.rank < b.rank || (a.rank === b.rank && a.pos < b.pos);

/** Read a tokenizer.json `vocab` object into maps. */
export function readVocab(v: unknown, where: string): { toId: Map<string, number>; toToken: string[] } {
  const toId = new Map<string, number>();
  const toToken: string[] = [];
  for (const [token, id] of Object.entries(asObject(v, where))) {
    const n = asInt(id, `${where}[${JSON.stringify(token)}]`);
    if (n < 0) throw badTokenizer(`${where}: negative id for ${JSON.stringify(token)}`);
    toId.set(token, n);
    toToken[n] = token;
  }
  return { toId, toToken };
}

export class BpeModel implements WordModel {
  private readonly vocab: Map<string, number>;
  private readonly tokens: string[];
  /** (left id, right id) packed as left * size + right → [rank, merged id] */
  private readonly merges = new Map<number, [number, number]>();
  private readonly unk: number | undefined;
  private readonly byteFallback: boolean;
  private readonly fuseUnk: boolean;
  private readonly ignoreMerges: boolean;
  private readonly prefix: string | undefined;
  private readonly suffix: string | undefined;
  readonly size: number;

  constructor(model: JsonObject) {
    if (model.dropout !== undefined && model.dropout !== null && model.dropout !== 0) {
      throw badTokenizer('BPE dropout is a training-time option and is not supported');
    }
    const { toId, toToken } = readVocab(model.vocab, 'model.vocab');
    this.vocab = toId;
    this.tokens = toToken;
    this.size = toToken.length;
    const unkToken = optString(model.unk_token, 'model.unk_token');
    this.unk = unkToken === undefined ? undefined : toId.get(unkToken);
    if (unkToken !== undefined && this.unk === undefined) throw badTokenizer(`model.unk_token ${JSON.stringify(unkToken)} is not in the vocabulary`);
    this.byteFallback = optBool(model.byte_fallback, false);
    this.fuseUnk = optBool(model.fuse_unk, false);
    this.ignoreMerges = optBool(model.ignore_merges, false);
    this.prefix = optString(model.continuing_subword_prefix, 'model.continuing_subword_prefix');
    this.suffix = optString(model.end_of_word_suffix, 'model.end_of_word_suffix');
    asArray(model.merges ?? [], 'model.merges').forEach((m, rank) => {
      const [a, b] = typeof m === 'string' ? splitMerge(m, rank) : asArray(m, `model.merges[${rank}]`).map((x) => asString(x, `model.merges[${rank}]`));
      const aId = toId.get(a as string);
      const bId = toId.get(b as string);
      const merged = toId.get((a as string) + (b as string).slice(this.prefix !== undefined && (b as string).startsWith(this.prefix) ? this.prefix.length : 0));
      if (aId === undefined || bId === undefined || merged === undefined) {
        throw badTokenizer(`model.merges[${rank}] ${JSON.stringify(m)} uses a token missing from the vocabulary`);
      }
      const key = aId * this.size + bId;
      if (!this.merges.has(key)) this.merges.set(key, [rank, merged]);
    });
  }

  idToToken(id: number): string | undefined {
    return this.tokens[id];
  }

  tokenToId(token: string): number | undefined {
    return this.vocab.get(token);
  }

  tokenize(word: string): number[] {
    if (word.length === 0) return [];
    if (this.ignoreMerges) {
      const whole = this.vocab.get(word);
      if (whole !== undefined) return [whole];
    }
    const symbols = this.initialSymbols(word);
    this.mergeAll(symbols);
    const ids: number[] = [];
    for (const s of symbols) if (s.alive) ids.push(s.id);
    return ids;
  }

  /** One symbol per character (byte tokens or unk for characters outside the vocabulary). */
  private initialSymbols(word: string): Symbol[] {
    const symbols: Symbol[] = [];
    const chars = Array.from(word);
    let lastWasUnk = false;
    const push = (id: number): void => {
      symbols.push({ id, prev: symbols.length - 1, next: -1, alive: true });
    };
    chars.forEach((ch, i) => {
      let piece = ch;
      if (i > 0 && this.prefix !== undefined) piece = this.prefix + piece;
      if (i === chars.length - 1 && this.suffix !== undefined) piece += this.suffix;
      const id = this.vocab.get(piece);
      if (id !== undefined) {
        push(id);
        lastWasUnk = false;
        return;
      }
      if (this.byteFallback) {
        const byteIds = Array.from(Buffer.from(ch, 'utf8'), (b) => this.vocab.get(bytePiece(b)));
        if (byteIds.every((b) => b !== undefined)) {
          for (const b of byteIds) push(b as number);
          lastWasUnk = false;
          return;
        }
      }
      if (this.unk === undefined) throw badTokenizer(`character ${JSON.stringify(ch)} is not in the vocabulary and the model has no unk_token`);
      // fuse_unk: a run of unknown characters becomes one unk.
      if (!(this.fuseUnk && lastWasUnk)) push(this.unk);
      lastWasUnk = true;
    });
    symbols.forEach((s, i) => (s.next = i + 1 < symbols.length ? i + 1 : -1));
    return symbols;
  }

  private mergeAll(symbols: Symbol[]): void {
    const heap = new Heap<Candidate>(lowerRankFirst);
    const consider = (pos: number): void => {
      const left = symbols[pos];
      if (left === undefined || left.next < 0) return;
      const right = symbols[left.next] as Symbol;
      const m = this.merges.get(left.id * this.size + right.id);
      if (m !== undefined) heap.push({ rank: m[0], pos, newId: m[1] });
    };
    for (let i = 0; i + 1 < symbols.length; i++) consider(i);
    for (let top = heap.pop(); top !== undefined; top = heap.pop()) {
      const left = symbols[top.pos] as Symbol;
      if (!left.alive || left.next < 0) continue;
      const right = symbols[left.next] as Symbol;
      // A stale entry: the pair at this position no longer merges into the same token.
      const m = this.merges.get(left.id * this.size + right.id);
      if (m === undefined || m[1] !== top.newId) continue;
      left.id = top.newId;
      right.alive = false;
      left.next = right.next;
      if (right.next >= 0) (symbols[right.next] as Symbol).prev = top.pos;
      if (left.prev >= 0) consider(left.prev);
      consider(top.pos);
    }
  }
}

function splitMerge(m: string, rank: number): [string, string] {
  const i = m.indexOf(' ', 1);
  if (i < 0) throw badTokenizer(`model.merges[${rank}] ${JSON.stringify(m)} is not "a b"`);
  return [m.slice(0, i), m.slice(i + 1)];
}
