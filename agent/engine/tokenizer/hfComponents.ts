/**
 * The pipeline stages of a Hugging Face tokenizer.json that SEDAC's models use: normalizers,
 * pre-tokenizers and decoders, each built from its JSON description into a plain function with the
 * semantics of HF tokenizers (the Rust library). Unsupported stage types are refused with
 * E_MODEL_UNSUPPORTED rather than approximated.
 */
import { TextDecoder } from 'node:util';
import { SedacError } from '../../errors.js';
import { asArray, asInt, asObject, asString, bytePieceValue, optBool, optString } from './common.js';
import { bertNormalize, bertPreTokenize, isBertPunctuation, lowercaseChars } from './wordPiece.js';

export type Normalizer = (text: string) => string;
/** `atStart`: the piece begins at offset 0 of the original text (Metaspace prepend_scheme "first") */
export type PreTokenizer = (text: string, atStart: boolean) => string[];
export type Decoder = (tokens: string[]) => string[];

const SPACE = '\u2581';

function unsupported(stage: string, type: string): SedacError {
  return new SedacError('E_MODEL_UNSUPPORTED', `tokenizer.json ${stage} type ${JSON.stringify(type)} is not supported`);
}

/** A Replace/Split `pattern`: `{String: s}` or `{Regex: r}` → a global RegExp. */
function pattern(v: unknown, where: string): RegExp {
  const p = asObject(v, where);
  if (typeof p.String === 'string') return new RegExp(p.String.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'), 'gu');
  if (typeof p.Regex === 'string') return new RegExp(p.Regex, 'gu');
  throw new SedacError('E_MODEL_TOKENIZER', `tokenizer.json: ${where} needs String or Regex`);
}

export function buildNormalizer(v: unknown, where = 'normalizer'): Normalizer {
  if (v === null || v === undefined) return (s) => s;
  const n = asObject(v, where);
  const type = asString(n.type, `${where}.type`);
  switch (type) {
    case 'Sequence': {
      const parts = asArray(n.normalizers, `${where}.normalizers`).map((x, i) => buildNormalizer(x, `${where}.normalizers[${i}]`));
      return (s) => parts.reduce((acc, f) => f(acc), s);
    }
    case 'Prepend': {
      const prefix = asString(n.prepend, `${where}.prepend`);
      return (s) => (s.length > 0 ? prefix + s : s);
    }
    case 'Append': {
      const suffix = asString(n.append, `${where}.append`);
      return (s) => (s.length > 0 ? s + suffix : s);
    }
    case 'Replace': {
      const re = pattern(n.pattern, `${where}.pattern`);
      const content = asString(n.content, `${where}.content`);
      return (s) => s.replace(re, () => content);
    }
    case 'BertNormalizer': {
      const lowercase = optBool(n.lowercase, true);
      const o = {
        cleanText: optBool(n.clean_text, true),
        handleChineseChars: optBool(n.handle_chinese_chars, true),
        stripAccents: typeof n.strip_accents === 'boolean' ? n.strip_accents : lowercase,
        lowercase,
      };
      return (s) => bertNormalize(s, o);
    }
    case 'Lowercase':
      return lowercaseChars;
    case 'NFC':
    case 'NFD':
    case 'NFKC':
    case 'NFKD':
      return (s) => s.normalize(type);
    case 'StripAccents':
      return (s) => s.replace(/\p{Mn}/gu, '');
    case 'Strip': {
      const left = optBool(n.strip_left, true);
      const right = optBool(n.strip_right, true);
      return (s) => {
        let r = left ? s.replace(/^\p{White_Space}+/u, '') : s;
        if (right) r = r.replace(/\p{White_Space}+$/u, '');
        return r;
      };
    }
    default:
      throw unsupported('normalizer', type);
  }
}

/** Split before every occurrence of `mark`, keeping it at the start of the next piece. */
function splitMergedWithNext(s: string, mark: string): string[] {
  const out: string[] = [];
  let from = 0;
  for (let i = s.indexOf(mark, 1); i >= 0; i = s.indexOf(mark, i + mark.length)) {
    out.push(s.slice(from, i));
    from = i;
  }
  out.push(s.slice(from));
  return out.filter((p) => p.length > 0);
}

export function buildPreTokenizer(v: unknown, where = 'pre_tokenizer'): PreTokenizer {
  if (v === null || v === undefined) return (s) => (s.length > 0 ? [s] : []);
  const p = asObject(v, where);
  const type = asString(p.type, `${where}.type`);
  switch (type) {
    case 'Sequence': {
      const parts = asArray(p.pretokenizers, `${where}.pretokenizers`).map((x, i) => buildPreTokenizer(x, `${where}.pretokenizers[${i}]`));
      return (s, atStart) => parts.reduce<string[]>((words, f) => words.flatMap((w, i) => f(w, atStart && i === 0)), [s]);
    }
    case 'BertPreTokenizer':
      return (s) => bertPreTokenize(s);
    case 'WhitespaceSplit':
      return (s) => s.split(/\p{White_Space}+/u).filter((w) => w.length > 0);
    case 'Whitespace':
      return (s) => s.match(/[\p{L}\p{N}\p{M}\p{Pc}]+|[^\p{L}\p{N}\p{M}\p{Pc}\p{White_Space}]+/gu) ?? [];
    case 'Punctuation':
      return (s) => {
        const out: string[] = [];
        let word = '';
        for (const ch of s) {
          if (isBertPunctuation(ch)) {
            if (word) out.push(word);
            out.push(ch);
            word = '';
          } else word += ch;
        }
        if (word) out.push(word);
        return out;
      };
    case 'Digits': {
      const re = optBool(p.individual_digits, false) ? /\p{Nd}|\P{Nd}+/gu : /\p{Nd}+|\P{Nd}+/gu;
      return (s) => s.match(re) ?? [];
    }
    case 'Metaspace': {
      const mark = asString(p.replacement ?? SPACE, `${where}.replacement`);
      const legacyPrefix = optBool(p.add_prefix_space, true);
      const scheme = optString(p.prepend_scheme, `${where}.prepend_scheme`) ?? (legacyPrefix ? 'always' : 'never');
      const split = optBool(p.split, true);
      return (s, atStart) => {
        if (s.length === 0) return [];
        let r = s.replaceAll(' ', mark);
        if (!r.startsWith(mark) && (scheme === 'always' || (scheme === 'first' && atStart))) r = mark + r;
        return split ? splitMergedWithNext(r, mark) : [r];
      };
    }
    default:
      throw unsupported('pre_tokenizer', type);
  }
}

const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true });

/** HF cleanup of detokenized English ("a ." → "a.", " n't" → "n't"). */
function cleanup(s: string): string {
  return s
    .replaceAll(' .', '.')
    .replaceAll(' ?', '?')
    .replaceAll(' !', '!')
    .replaceAll(' ,', ',')
    .replaceAll(" ' ", "'")
    .replaceAll(" n't", "n't")
    .replaceAll(" 'm", "'m")
    .replaceAll(' do not', " don't")
    .replaceAll(" 's", "'s")
    .replaceAll(" 've", "'ve")
    .replaceAll(" 're", "'re");
}

export function buildDecoder(v: unknown, where = 'decoder'): Decoder {
  if (v === null || v === undefined) return (t) => [t.join(' ')];
  const d = asObject(v, where);
  const type = asString(d.type, `${where}.type`);
  switch (type) {
    case 'Sequence': {
      const parts = asArray(d.decoders, `${where}.decoders`).map((x, i) => buildDecoder(x, `${where}.decoders[${i}]`));
      return (t) => parts.reduce((acc, f) => f(acc), t);
    }
    case 'Replace': {
      const re = pattern(d.pattern, `${where}.pattern`);
      const content = asString(d.content, `${where}.content`);
      return (t) => t.map((s) => s.replace(re, () => content));
    }
    case 'ByteFallback':
      return byteFallback;
    case 'Fuse':
      return (t) => [t.join('')];
    case 'Strip': {
      const content = asString(d.content, `${where}.content`);
      const start = asInt(d.start ?? 0, `${where}.start`);
      const stop = asInt(d.stop ?? 0, `${where}.stop`);
      return (t) => t.map((s) => stripChars(s, content, start, stop));
    }
    case 'Metaspace': {
      const mark = asString(d.replacement ?? SPACE, `${where}.replacement`);
      const scheme = optString(d.prepend_scheme, `${where}.prepend_scheme`) ?? (optBool(d.add_prefix_space, true) ? 'always' : 'never');
      // As HF: in the first token every replacement char is dropped, elsewhere it becomes a space.
      return (t) => t.map((s, i) => s.replaceAll(mark, i === 0 && scheme !== 'never' ? '' : ' '));
    }
    case 'WordPiece': {
      const prefix = asString(d.prefix ?? '##', `${where}.prefix`);
      const clean = optBool(d.cleanup, true);
      return (t) =>
        t.map((s, i) => {
          let r = s;
          if (i > 0) r = r.startsWith(prefix) ? r.slice(prefix.length) : ` ${r}`;
          return clean ? cleanup(r) : r;
        });
    }
    default:
      throw unsupported('decoder', type);
  }
}

/** Runs of `<0xNN>` tokens become their UTF-8 text; an invalid run becomes one U+FFFD per byte. */
function byteFallback(tokens: string[]): string[] {
  const out: string[] = [];
  let bytes: number[] = [];
  const flush = (): void => {
    if (bytes.length === 0) return;
    try {
      out.push(STRICT_UTF8.decode(Uint8Array.from(bytes)));
    } catch {
      for (let i = 0; i < bytes.length; i++) out.push('\uFFFD');
    }
    bytes = [];
  };
  for (const t of tokens) {
    const b = bytePieceValue(t);
    if (b >= 0) bytes.push(b);
    else {
      flush();
      out.push(t);
    }
  }
  flush();
  return out;
}

function stripChars(s: string, content: string, start: number, stop: number): string {
  const chars = Array.from(s);
  let a = 0;
  while (a < start && a < chars.length && chars[a] === content) a++;
  let b = chars.length;
  while (chars.length - b < stop && b > a && chars[b - 1] === content) b--;
  return chars.slice(a, b).join('');
}
