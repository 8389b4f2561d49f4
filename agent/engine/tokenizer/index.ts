/**
 * Tokenizers: one entry point for every source (SentencePiece vocabulary from GGUF / tokenizer.model
 * / llama2.c, Hugging Face tokenizer.json, BERT vocab.txt), and the compact JSON form a bundle
 * stores as its `tokenizer.json`.
 */
import { readFileSync } from 'node:fs';
import type { HfTokenizerJson, SentencePieceVocab, TokenizerSource } from '../../convert/source.js';
import { SedacError } from '../../errors.js';
import type { EngineTokenizer } from './common.js';
import { HfTokenizer } from './hfJson.js';
import { SentencePieceTokenizer } from './sentencePiece.js';

export type { DecodeStream, EngineTokenizer, SpecialEncoding } from './common.js';
export { bertTokenizerJson, parseVocabTxt } from './wordPiece.js';
export { HfTokenizer } from './hfJson.js';
export { PIECE_TYPE, SentencePieceTokenizer } from './sentencePiece.js';

/** Build the tokenizer a source describes. Throws E_MODEL_TOKENIZER / E_MODEL_UNSUPPORTED. */
export function createTokenizer(src: TokenizerSource): EngineTokenizer {
  switch (src.kind) {
    case 'sentencepiece':
      return new SentencePieceTokenizer(src);
    case 'hf-tokenizer-json':
      return new HfTokenizer(src);
    default:
      throw new SedacError('E_MODEL_TOKENIZER', `unknown tokenizer kind ${JSON.stringify((src as { kind?: unknown }).kind)}`);
  }
}

/** Version of the bundle tokenizer file written by tokenizerToJson. */
export const TOKENIZER_FILE_VERSION = 1;

/** Shortest decimal that reads back as the same float32 (scores come from float32 fields). */
function compactScore(x: number): number {
  if (!Number.isFinite(x) || Math.fround(x) !== x) return x;
  for (let p = 1; p <= 9; p++) {
    const y = Number(x.toPrecision(p));
    if (Math.fround(y) === x) return y;
  }
  return x;
}

/**
 * The JSON object a bundle stores for its tokenizer. SentencePiece vocabularies keep piece types as
 * one digit per piece and scores in their shortest float32 spelling; tokenizer.json is kept verbatim.
 */
export function tokenizerToJson(src: TokenizerSource): Record<string, unknown> {
  if (src.kind === 'sentencepiece') {
    return {
      kind: src.kind,
      version: TOKENIZER_FILE_VERSION,
      bos: src.bos,
      eos: src.eos,
      unk: src.unk,
      add_dummy_prefix: src.addDummyPrefix,
      split_digits: src.splitDigits === true,
      algorithm: src.algorithm ?? 'bpe',
      types: src.types.join(''),
      pieces: src.pieces,
      scores: src.scores.map(compactScore),
    };
  }
  const out: Record<string, unknown> = { kind: src.kind, version: TOKENIZER_FILE_VERSION, json: src.json };
  if (src.bos !== undefined) out.bos = src.bos;
  if (src.eos !== undefined) out.eos = src.eos;
  return out;
}

function bad(message: string): SedacError {
  return new SedacError('E_MODEL_TOKENIZER', `bundle tokenizer: ${message}`);
}

function int(o: Record<string, unknown>, key: string): number {
  const v = o[key];
  if (typeof v !== 'number' || !Number.isInteger(v)) throw bad(`${key} must be an integer`);
  return v;
}

/** Read back what tokenizerToJson wrote (validated; throws E_MODEL_TOKENIZER). */
export function tokenizerFromJson(obj: unknown): TokenizerSource {
  if (typeof obj !== 'object' || obj === null) throw bad('not a JSON object');
  const o = obj as Record<string, unknown>;
  if (typeof o.version === 'number' && o.version > TOKENIZER_FILE_VERSION) throw bad(`version ${o.version} is newer than this agent reads (${TOKENIZER_FILE_VERSION})`);
  if (o.kind === 'sentencepiece') {
    const { pieces, scores, types } = o;
    if (!Array.isArray(pieces) || !pieces.every((p) => typeof p === 'string')) throw bad('pieces must be an array of strings');
    if (!Array.isArray(scores) || !scores.every((s) => typeof s === 'number')) throw bad('scores must be an array of numbers');
    const typeList = typeof types === 'string' ? Array.from(types, Number) : types;
    if (!Array.isArray(typeList) || !typeList.every((t) => Number.isInteger(t) && t >= 1 && t <= 6)) throw bad('types must be piece types 1..6');
    if (scores.length !== pieces.length || typeList.length !== pieces.length) throw bad(`${pieces.length} pieces but ${scores.length} scores and ${typeList.length} types`);
    const vocab: SentencePieceVocab = {
      kind: 'sentencepiece',
      pieces: pieces as string[],
      scores: scores as number[],
      types: typeList as number[],
      bos: int(o, 'bos'),
      eos: int(o, 'eos'),
      unk: int(o, 'unk'),
      addDummyPrefix: o.add_dummy_prefix === true,
      splitDigits: o.split_digits === true,
    };
    if (o.algorithm !== undefined) {
      if (o.algorithm !== 'bpe' && o.algorithm !== 'unigram') throw bad(`algorithm ${JSON.stringify(o.algorithm)} is neither bpe nor unigram`);
      vocab.algorithm = o.algorithm;
    }
    return vocab;
  }
  if (o.kind === 'hf-tokenizer-json') {
    if (typeof o.json !== 'object' || o.json === null) throw bad('json must be the tokenizer.json object');
    const src: HfTokenizerJson = { kind: 'hf-tokenizer-json', json: o.json };
    if (o.bos !== undefined) src.bos = int(o, 'bos');
    if (o.eos !== undefined) src.eos = int(o, 'eos');
    return src;
  }
  throw bad(`unknown kind ${JSON.stringify(o.kind)}`);
}

/** Load a bundle's tokenizer file and build the tokenizer. */
export function readTokenizerFile(path: string): EngineTokenizer {
  let obj: unknown;
  try {
    obj = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new SedacError('E_MODEL_TOKENIZER', `cannot read tokenizer ${path}: ${(err as Error).message}`);
  }
  return createTokenizer(tokenizerFromJson(obj));
}
