/**
 * SentencePiece BPE from a vocabulary of pieces + scores + types (GGUF `tokenizer.ggml.*`,
 * tokenizer.model, llama2.c tokenizer.bin): the encoder SentencePiece's bpe_model.cc and llama.cpp's
 * SPM tokenizer run. Text is split into characters, then the adjacent pair whose concatenation is a
 * vocabulary piece with the highest score is merged, again and again (ties: leftmost). A heap of
 * candidate pairs over a linked list of symbols keeps this O(n log n). Characters that end up as
 * no piece fall back to their UTF-8 bytes (`<0xNN>`), or to unk when the vocabulary has no bytes.
 * Vocabularies of SentencePiece's unigram algorithm are segmented by Viterbi instead (unigram.ts).
 */
import { StringDecoder } from 'node:string_decoder';
import type { SentencePieceVocab } from '../../convert/source.js';
import { SedacError } from '../../errors.js';
import { bytePieceValue, wellFormed, type DecodeStream, type EngineTokenizer, type SpecialEncoding } from './common.js';
import { Heap } from './heap.js';
import { UnigramSegmenter } from './unigram.js';

/** SentencePiece piece types (sentencepiece_model.proto; GGUF token_type uses the same numbers). */
export const PIECE_TYPE = { normal: 1, unknown: 2, control: 3, userDefined: 4, unused: 5, byte: 6 } as const;

const SPACE = '\u2581';
/** what SentencePiece prints for <unk> */
const UNK_SURFACE = ' \u2047 ';

interface Candidate {
  score: number;
  left: number;
  right: number;
  /** UTF-16 length of the merged piece; a mismatch at pop time means the entry is stale */
  size: number;
}

const higherScoreFirst = (a: Candidate, b: Candidate): boolean => a.score > b.score || (a.score === b.score && a.left < b.left);

export class SentencePieceTokenizer implements EngineTokenizer {
  readonly kind = 'sentencepiece' as const;
  readonly vocabSize: number;
  readonly bos: number | undefined;
  readonly eos: number | undefined;
  private readonly unk: number;
  private readonly pieces: string[];
  private readonly scores: number[];
  private readonly types: Uint8Array;
  private readonly addDummyPrefix: boolean;
  private readonly splitDigits: boolean;
  /** pieces BPE may produce: normal, user-defined and unused (control, unk and byte pieces never merge) */
  private readonly mergeable = new Map<string, number>();
  /** every piece → id, for the final lookup (SentencePiece's PieceToId) */
  private readonly pieceIds = new Map<string, number>();
  /** byte value → id of its `<0xNN>` piece, -1 when absent */
  private readonly byteIds = new Int32Array(256).fill(-1);
  /** user-defined pieces, matched whole in the input before BPE, longest first */
  private readonly userDefined: string[] = [];
  /** UTF-8 surface of each id as decoded mid-text (▁ → space); bytes for byte pieces */
  private readonly surfaces: Buffer[];
  /** set for unigram vocabularies */
  private readonly unigram: UnigramSegmenter | undefined;

  constructor(vocab: SentencePieceVocab) {
    const n = vocab.pieces.length;
    if (n === 0 || vocab.scores.length !== n || vocab.types.length !== n) {
      throw new SedacError('E_MODEL_TOKENIZER', `SentencePiece vocabulary is inconsistent: ${n} pieces, ${vocab.scores.length} scores, ${vocab.types.length} types`);
    }
    for (const [name, id] of [['unk', vocab.unk], ['bos', vocab.bos], ['eos', vocab.eos]] as const) {
      if (!Number.isInteger(id) || id < -1 || id >= n) {
        throw new SedacError('E_MODEL_TOKENIZER', `SentencePiece ${name} id ${id} is outside the vocabulary of ${n}`);
      }
    }
    this.vocabSize = n;
    this.pieces = vocab.pieces;
    this.scores = vocab.scores;
    this.bos = vocab.bos >= 0 ? vocab.bos : undefined;
    this.eos = vocab.eos >= 0 ? vocab.eos : undefined;
    this.unk = vocab.unk;
    this.addDummyPrefix = vocab.addDummyPrefix;
    this.splitDigits = vocab.splitDigits === true;
    this.types = Uint8Array.from(vocab.types);
    // Vocabularies without byte types (llama2.c tokenizer.bin) still spell byte pieces <0xNN>.
    const hasByteType = this.types.includes(PIECE_TYPE.byte);
    for (let id = 0; id < n; id++) {
      const piece = this.pieces[id] as string;
      let type = this.types[id] as number;
      if (!hasByteType && type === PIECE_TYPE.normal && bytePieceValue(piece) >= 0) {
        type = PIECE_TYPE.byte;
        this.types[id] = type;
      }
      if (!this.pieceIds.has(piece)) this.pieceIds.set(piece, id);
      if (type === PIECE_TYPE.byte) {
        const b = bytePieceValue(piece);
        if (b >= 0 && (this.byteIds[b] as number) < 0) this.byteIds[b] = id;
      } else if (type === PIECE_TYPE.normal || type === PIECE_TYPE.userDefined || type === PIECE_TYPE.unused) {
        if (!this.mergeable.has(piece)) this.mergeable.set(piece, id);
        if (type === PIECE_TYPE.userDefined && piece.length > 0) this.userDefined.push(piece);
      }
    }
    this.userDefined.sort((a, b) => b.length - a.length);
    this.unigram =
      vocab.algorithm === 'unigram'
        ? new UnigramSegmenter({
            lookup: this.mergeable,
            scores: this.scores,
            isUserDefined: (id) => this.types[id] === PIECE_TYPE.userDefined,
            isUnused: (id) => this.types[id] === PIECE_TYPE.unused,
          })
        : undefined;
    this.surfaces = this.pieces.map((p, id) => {
      const t = this.types[id];
      if (t === PIECE_TYPE.control) return Buffer.alloc(0);
      if (t === PIECE_TYPE.unknown) return Buffer.from(UNK_SURFACE, 'utf8');
      if (t === PIECE_TYPE.byte) return Buffer.of(bytePieceValue(p));
      return Buffer.from(p.replaceAll(SPACE, ' '), 'utf8');
    });
  }

  idToPiece(id: number): string | undefined {
    return this.pieces[id];
  }

  pieceToId(piece: string): number | undefined {
    return this.pieceIds.get(piece);
  }

  encode(text: string): number[] {
    const clean = wellFormed(text);
    if (clean.length === 0) return [];
    // Normalize (identity rule): dummy prefix, then every U+0020 becomes ▁.
    const norm = (this.addDummyPrefix ? SPACE : '') + clean.replaceAll(' ', SPACE);
    const ids: number[] = [];
    let prevUnk = false;
    for (const piece of this.unigram?.segment(norm) ?? this.bpe(norm)) {
      const id = this.pieceIds.get(piece);
      if (id !== undefined && this.types[id] !== PIECE_TYPE.unknown) {
        ids.push(id);
        prevUnk = false;
      } else if (this.canSpellBytes(piece)) {
        for (const b of Buffer.from(piece, 'utf8')) ids.push(this.byteIds[b] as number);
        prevUnk = false;
      } else {
        if (this.unk < 0) throw new SedacError('E_INPUT', `cannot encode ${JSON.stringify(piece)}: not in the vocabulary, no byte pieces and no unk`);
        // Without byte fallback, runs of unknown pieces collapse into one unk (as SentencePiece does).
        if (!prevUnk) ids.push(this.unk);
        prevUnk = true;
      }
    }
    return ids;
  }

  /** Score-driven BPE over the normalized text; returns the final pieces (unused pieces re-split). */
  private bpe(norm: string): string[] {
    // Initial symbols: user-defined pieces (frozen) or single code points.
    const start: number[] = [];
    const end: number[] = [];
    const frozen: boolean[] = [];
    const digit: boolean[] = [];
    for (let i = 0; i < norm.length; ) {
      const user = this.userDefined.length > 0 ? this.userDefined.find((u) => norm.startsWith(u, i)) : undefined;
      const code = norm.codePointAt(i) as number;
      const len = user?.length ?? (code > 0xffff ? 2 : 1);
      start.push(i);
      end.push(i + len);
      frozen.push(user !== undefined);
      digit.push(user === undefined && code >= 0x30 && code <= 0x39);
      i += len;
    }
    const count = start.length;
    const prev = new Int32Array(count);
    const next = new Int32Array(count);
    for (let i = 0; i < count; i++) {
      prev[i] = i - 1;
      next[i] = i + 1 < count ? i + 1 : -1;
    }
    const alive = new Uint8Array(count).fill(1);
    const heap = new Heap<Candidate>(higherScoreFirst);
    /** unused pieces produced by a merge → the two pieces they came from */
    const revMerge = new Map<string, [string, string]>();

    const consider = (left: number, right: number): void => {
      if (left < 0 || right < 0 || frozen[left] || frozen[right]) return;
      if (this.splitDigits && (digit[left] || digit[right])) return;
      const s = start[left] as number;
      const e = end[right] as number;
      const piece = norm.slice(s, e);
      const id = this.mergeable.get(piece);
      if (id === undefined) return;
      heap.push({ score: this.scores[id] as number, left, right, size: e - s });
      if (this.types[id] === PIECE_TYPE.unused) {
        revMerge.set(piece, [norm.slice(s, end[left]), norm.slice(start[right], e)]);
      }
    };

    for (let i = 1; i < count; i++) consider(i - 1, i);
    for (let top = heap.pop(); top !== undefined; top = heap.pop()) {
      const { left, right } = top;
      if (!alive[left] || !alive[right]) continue;
      if ((end[left] as number) - (start[left] as number) + (end[right] as number) - (start[right] as number) !== top.size) continue;
      // Merge right into left and unlink right.
      end[left] = end[right] as number;
      alive[right] = 0;
      const after = next[right] as number;
      next[left] = after;
      if (after >= 0) prev[after] = left;
      consider(prev[left] as number, left);
      consider(left, after);
    }

    const out: string[] = [];
    const resegment = (piece: string): void => {
      const id = this.pieceIds.get(piece);
      const split = id !== undefined && this.types[id] === PIECE_TYPE.unused ? revMerge.get(piece) : undefined;
      if (split === undefined) {
        out.push(piece);
        return;
      }
      resegment(split[0]);
      resegment(split[1]);
    };
    for (let s = count > 0 ? 0 : -1; s >= 0; s = next[s] as number) resegment(norm.slice(start[s], end[s]));
    return out;
  }

  private canSpellBytes(piece: string): boolean {
    for (const b of Buffer.from(piece, 'utf8')) if ((this.byteIds[b] as number) < 0) return false;
    return true;
  }

  decode(ids: number[]): string {
    const stream = this.decodeStream();
    let text = '';
    for (const id of ids) text += stream.push(id);
    return text + stream.flush();
  }

  /**
   * SentencePiece decoding, one id at a time: control pieces vanish, ▁ becomes a space, byte pieces
   * are re-assembled into UTF-8, and the first visible piece loses its leading ▁ (the dummy prefix;
   * as llama.cpp and HF's Strip decoder do — SentencePiece itself also drops further leading ▁
   * pieces, which loses leading spaces). An incomplete UTF-8 sequence is held back until its last
   * byte arrives.
   */
  decodeStream(): DecodeStream {
    const utf8 = new StringDecoder('utf8');
    let first = true;
    return {
      push: (id: number): string => {
        const surface = this.surfaces[id];
        if (surface === undefined || surface.length === 0) return '';
        const type = this.types[id];
        const strip = first && this.addDummyPrefix && type !== PIECE_TYPE.byte && type !== PIECE_TYPE.unknown && (this.pieces[id] as string).startsWith(SPACE);
        first = false;
        return utf8.write(strip ? surface.subarray(1) : surface);
      },
      flush: (): string => utf8.end(),
    };
  }

  encodeWithSpecial(text: string, maxLen = Infinity): SpecialEncoding {
    const prefix = this.bos !== undefined ? [this.bos] : [];
    const body = this.encode(text).slice(0, Math.max(0, maxLen - prefix.length));
    const ids = [...prefix, ...body];
    return { ids, typeIds: ids.map(() => 0), attentionMask: ids.map(() => 1) };
  }
}
