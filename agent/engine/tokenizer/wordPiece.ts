/**
 * BERT tokenization: the BertNormalizer (clean text, isolate CJK characters, strip accents,
 * lowercase), the BertPreTokenizer (split on whitespace, isolate punctuation) and the WordPiece
 * model (greedy longest match, `##` for word-internal pieces, whole word → [UNK] when a piece is
 * missing or the word is longer than max_input_chars_per_word). Also builds the equivalent
 * tokenizer.json from `vocab.txt` + `tokenizer_config.json`, so both sources behave identically.
 */
import type { HfTokenizerJson } from '../../convert/source.js';
import { asInt, asString, badTokenizer, optString, type JsonObject } from './common.js';
import { readVocab, type WordModel } from './bpe.js';

export interface BertNormalizerOptions {
  cleanText: boolean;
  handleChineseChars: boolean;
  stripAccents: boolean;
  lowercase: boolean;
}

const CONTROL = /\p{C}/u; // Cc, Cf, Cs, Co, Cn — what HF's `is_other` and Python's category "C*" accept
const WHITESPACE = /\p{White_Space}/u;
const NONSPACING_MARKS = /\p{Mn}/gu;
const PUNCTUATION = /\p{P}/u;

/** CJK Unified Ideographs blocks, as HF tokenizers' BertNormalizer lists them. */
function isChineseChar(cp: number): boolean {
  return (
    (cp >= 0x4e00 && cp <= 0x9fff) ||
    (cp >= 0x3400 && cp <= 0x4dbf) ||
    (cp >= 0x20000 && cp <= 0x2a6df) ||
    (cp >= 0x2a700 && cp <= 0x2b73f) ||
    (cp >= 0x2b740 && cp <= 0x2b81f) ||
    (cp >= 0x2b920 && cp <= 0x2ceaf) ||
    (cp >= 0xf900 && cp <= 0xfaff) ||
    (cp >= 0x2f800 && cp <= 0x2fa1f)
  );
}

function isBertWhitespace(ch: string): boolean {
  return ch === '\t' || ch === '\n' || ch === '\r' || WHITESPACE.test(ch);
}

function isBertControl(ch: string): boolean {
  return ch !== '\t' && ch !== '\n' && ch !== '\r' && CONTROL.test(ch);
}

/** ASCII punctuation (which includes $+<=>^`|~) or any Unicode P* character. */
export function isBertPunctuation(ch: string): boolean {
  const c = ch.codePointAt(0) as number;
  return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126) || PUNCTUATION.test(ch);
}

/** Lowercase one code point at a time (HF tokenizers does; no context-dependent final sigma). */
export function lowercaseChars(text: string): string {
  // eslint-disable-next-line no-control-regex
  if (/^[\x00-\x7f]*$/.test(text)) return text.toLowerCase();
  let out = '';
  for (const ch of text) out += ch.toLowerCase();
  return out;
}

export function bertNormalize(text: string, o: BertNormalizerOptions): string {
  let s = text;
  if (o.cleanText || o.handleChineseChars) {
    let out = '';
    for (const ch of s) {
      const cp = ch.codePointAt(0) as number;
      if (o.cleanText) {
        if (cp === 0 || cp === 0xfffd || isBertControl(ch)) continue;
        if (isBertWhitespace(ch)) {
          out += ' ';
          continue;
        }
      }
      out += o.handleChineseChars && isChineseChar(cp) ? ` ${ch} ` : ch;
    }
    s = out;
  }
  if (o.stripAccents) s = s.normalize('NFD').replace(NONSPACING_MARKS, '');
  if (o.lowercase) s = lowercaseChars(s);
  return s;
}

/** Split on whitespace (dropped) and punctuation (each mark its own word). */
export function bertPreTokenize(text: string): string[] {
  const words: string[] = [];
  let word = '';
  for (const ch of text) {
    if (isBertWhitespace(ch)) {
      if (word) words.push(word);
      word = '';
    } else if (isBertPunctuation(ch)) {
      if (word) words.push(word);
      words.push(ch);
      word = '';
    } else {
      word += ch;
    }
  }
  if (word) words.push(word);
  return words;
}

export class WordPieceModel implements WordModel {
  private readonly vocab: Map<string, number>;
  private readonly tokens: string[];
  private readonly unk: number;
  private readonly prefix: string;
  private readonly maxChars: number;
  readonly size: number;

  constructor(model: JsonObject) {
    const { toId, toToken } = readVocab(model.vocab, 'model.vocab');
    this.vocab = toId;
    this.tokens = toToken;
    this.size = toToken.length;
    const unkToken = asString(model.unk_token ?? '[UNK]', 'model.unk_token');
    const unk = toId.get(unkToken);
    if (unk === undefined) throw badTokenizer(`model.unk_token ${JSON.stringify(unkToken)} is not in the vocabulary`);
    this.unk = unk;
    this.prefix = optString(model.continuing_subword_prefix, 'model.continuing_subword_prefix') ?? '##';
    this.maxChars = model.max_input_chars_per_word === undefined ? 100 : asInt(model.max_input_chars_per_word, 'model.max_input_chars_per_word');
  }

  idToToken(id: number): string | undefined {
    return this.tokens[id];
  }

  tokenToId(token: string): number | undefined {
    return this.vocab.get(token);
  }

  /** Greedy longest-match-first; a word with any unmatched rest is one [UNK]. */
  tokenize(word: string): number[] {
    const chars = Array.from(word);
    if (chars.length === 0) return [];
    if (chars.length > this.maxChars) return [this.unk];
    const ids: number[] = [];
    let start = 0;
    while (start < chars.length) {
      let found: number | undefined;
      let end = chars.length;
      for (; end > start; end--) {
        const sub = (start > 0 ? this.prefix : '') + chars.slice(start, end).join('');
        found = this.vocab.get(sub);
        if (found !== undefined) break;
      }
      if (found === undefined) return [this.unk];
      ids.push(found);
      start = end;
    }
    return ids;
  }
}

/** The words of vocab.txt, one per line, id = line number (as BertTokenizer's load_vocab). */
export function parseVocabTxt(text: string): string[] {
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  return lines;
}

/**
 * The tokenizer.json HF's BertConverter would write for `vocab.txt` + `tokenizer_config.json`, so a
 * BERT model without tokenizer.json tokenizes exactly like one with it.
 */
export function bertTokenizerJson(vocabTxt: string, config: JsonObject = {}): HfTokenizerJson {
  const words = parseVocabTxt(vocabTxt);
  if (words.length === 0) throw badTokenizer('vocab.txt is empty');
  const vocab: Record<string, number> = {};
  words.forEach((w, i) => (vocab[w] = i));
  const name = (key: string, fallback: string): string => optString(config[key], `tokenizer_config.${key}`) ?? fallback;
  const unk = name('unk_token', '[UNK]');
  const cls = name('cls_token', '[CLS]');
  const sep = name('sep_token', '[SEP]');
  const specials = [name('pad_token', '[PAD]'), unk, cls, sep, name('mask_token', '[MASK]')];
  for (const t of [unk, cls, sep]) if (vocab[t] === undefined) throw badTokenizer(`vocab.txt has no ${t}`);
  const lowercase = config.do_lower_case !== false;
  const stripAccents = config.strip_accents;
  const json = {
    added_tokens: specials
      .filter((t) => vocab[t] !== undefined)
      .map((t) => ({ id: vocab[t], content: t, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: {
      type: 'BertNormalizer',
      clean_text: true,
      handle_chinese_chars: config.tokenize_chinese_chars !== false,
      strip_accents: typeof stripAccents === 'boolean' ? stripAccents : null,
      lowercase,
    },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: cls, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: sep, type_id: 0 } }],
      pair: [
        { SpecialToken: { id: cls, type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: sep, type_id: 0 } },
        { Sequence: { id: 'B', type_id: 1 } },
        { SpecialToken: { id: sep, type_id: 1 } },
      ],
      special_tokens: {
        [cls]: { id: cls, ids: [vocab[cls]], tokens: [cls] },
        [sep]: { id: sep, ids: [vocab[sep]], tokens: [sep] },
      },
    },
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    model: { type: 'WordPiece', unk_token: unk, continuing_subword_prefix: '##', max_input_chars_per_word: 100, vocab },
  };
  return { kind: 'hf-tokenizer-json', json };
}
