/**
 * What every SEDAC tokenizer offers beyond the engine's `Tokenizer` contract, plus small helpers
 * shared by the SentencePiece, BPE and WordPiece implementations.
 */
import { SedacError } from '../../errors.js';
import type { Tokenizer } from '../types.js';

/** Ids of one text with the model's special tokens added (BERT: `[CLS] … [SEP]`; Llama: `<s> …`). */
export interface SpecialEncoding {
  ids: number[];
  /** segment ids (token_type_ids); all 0 for a single text */
  typeIds: number[];
  /** 1 for every token (no padding is added) */
  attentionMask: number[];
}

/** Incremental decoder: feed generated ids one by one, get the text they complete. */
export interface DecodeStream {
  /** Add one id; returns the text it completes ('' while a multi-byte character is still open). */
  push(id: number): string;
  /** Text still held back at the end of generation (an unfinished byte sequence decodes to U+FFFD). */
  flush(): string;
}

export interface EngineTokenizer extends Tokenizer {
  /** which implementation: `sentencepiece`, `bpe` or `wordpiece` */
  readonly kind: 'sentencepiece' | 'bpe' | 'wordpiece';
  /**
   * Encode with the model's special tokens (its post-processor template), truncating the text part
   * so that the result has at most `maxLen` ids with the closing special token (e.g. [SEP]) kept.
   */
  encodeWithSpecial(text: string, maxLen?: number): SpecialEncoding;
  /** Streaming decoder for generation: never emits half of a multi-byte character. */
  decodeStream(): DecodeStream;
  /** the vocabulary string of an id, or undefined when out of range */
  idToPiece(id: number): string | undefined;
  /** the id of a vocabulary string, or undefined */
  pieceToId(piece: string): number | undefined;
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/** Replace unpaired UTF-16 surrogates by U+FFFD, exactly as UTF-8 encoding (Buffer.from) does. */
export function wellFormed(text: string): string {
  return LONE_SURROGATE.test(text) ? text.replace(LONE_SURROGATE, '\uFFFD') : text;
}

/** `<0xNN>` → byte value, anything else → -1. */
export function bytePieceValue(piece: string): number {
  if (piece.length !== 6 || !piece.startsWith('<0x') || piece[5] !== '>') return -1;
  const hex = piece.slice(3, 5);
  return /^[0-9A-Fa-f]{2}$/.test(hex) ? parseInt(hex, 16) : -1;
}

/** `<0xNN>` with upper-case hex, the spelling SentencePiece and HF tokenizers use. */
export function bytePiece(byte: number): string {
  return `<0x${byte.toString(16).toUpperCase().padStart(2, '0')}>`;
}

/** Split a string into code points (surrogate pairs kept together). */
export function codePoints(text: string): string[] {
  return Array.from(text);
}

/**
 * Streaming decode over any tokenizer's `decode` (the algorithm of HF tokenizers' DecodeStream): keep
 * a short window of recent ids, decode it, and emit what it adds past the already-emitted prefix. A
 * trailing U+FFFD means a multi-byte character is still open, so nothing is emitted yet. The window
 * keeps one id of context so per-sequence rules (the stripped leading space) cancel out.
 */
export class WindowDecodeStream implements DecodeStream {
  private ids: number[] = [];
  private prefix = '';
  private prefixIndex = 0;

  constructor(private readonly decode: (ids: number[]) => string) {}

  push(id: number): string {
    if (this.prefix === '' && this.ids.length > 0) {
      const p = this.decode(this.ids);
      if (!p.endsWith('\uFFFD')) {
        this.prefix = p;
        this.prefixIndex = this.ids.length;
      }
    }
    this.ids.push(id);
    const text = this.decode(this.ids);
    if (text.length <= this.prefix.length || text.endsWith('\uFFFD') || !text.startsWith(this.prefix)) return '';
    const out = text.slice(this.prefix.length);
    const keep = this.ids.length - this.prefixIndex;
    this.ids = this.ids.slice(this.prefixIndex);
    this.prefix = this.decode(this.ids);
    this.prefixIndex = keep;
    return out;
  }

  flush(): string {
    const text = this.decode(this.ids);
    const out = text.startsWith(this.prefix) ? text.slice(this.prefix.length) : '';
    this.ids = [];
    this.prefix = '';
    this.prefixIndex = 0;
    return out;
  }
}

// ---- reading an untyped tokenizer.json: every accessor names what is wrong ----

export type JsonObject = Record<string, unknown>;

export function badTokenizer(message: string): SedacError {
  return new SedacError('E_MODEL_TOKENIZER', `tokenizer.json: ${message}`);
}

export function asObject(v: unknown, where: string): JsonObject {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw badTokenizer(`${where} must be an object`);
  return v as JsonObject;
}

export function asArray(v: unknown, where: string): unknown[] {
  if (!Array.isArray(v)) throw badTokenizer(`${where} must be an array`);
  return v;
}

export function asString(v: unknown, where: string): string {
  if (typeof v !== 'string') throw badTokenizer(`${where} must be a string`);
  return v;
}

export function asInt(v: unknown, where: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v)) throw badTokenizer(`${where} must be an integer`);
  return v;
}

export function optString(v: unknown, where: string): string | undefined {
  return v === undefined || v === null ? undefined : asString(v, where);
}

export function optBool(v: unknown, fallback: boolean): boolean {
  return typeof v === 'boolean' ? v : fallback;
}
