/**
 * A tokenizer built from a Hugging Face tokenizer.json, following HF tokenizers (Rust) step by step:
 *   1. split the text on added tokens (special tokens such as `<s>` or `[SEP]` written in the text),
 *   2. normalize each remaining piece, split it on `normalized` added tokens,
 *   3. pre-tokenize into words, run the model (BPE or WordPiece) on each word,
 *   4. `encodeWithSpecial` adds the post-processor's template (`[CLS] $A [SEP]`, `<s> $A`).
 * Decoding maps ids to tokens, drops special tokens and runs the decoder chain.
 */
import type { HfTokenizerJson } from '../../convert/source.js';
import { SedacError } from '../../errors.js';
import {
  asArray,
  asInt,
  asObject,
  asString,
  badTokenizer,
  optBool,
  wellFormed,
  WindowDecodeStream,
  type DecodeStream,
  type EngineTokenizer,
  type JsonObject,
  type SpecialEncoding,
} from './common.js';
import { BpeModel, type WordModel } from './bpe.js';
import { buildDecoder, buildNormalizer, buildPreTokenizer, type Decoder, type Normalizer, type PreTokenizer } from './hfComponents.js';
import { WordPieceModel } from './wordPiece.js';

interface AddedToken {
  id: number;
  content: string;
  special: boolean;
  singleWord: boolean;
  lstrip: boolean;
  rstrip: boolean;
  normalized: boolean;
}

type Piece = { text: string; atStart: boolean } | { id: number };

const WS = /\p{White_Space}/u;
const WORD_CHAR = /[\p{L}\p{N}_]/u;

/** Leftmost-longest matching of added tokens, with their lstrip / rstrip / single_word options. */
class AddedTokenSplitter {
  private readonly byFirst = new Map<string, { token: AddedToken; content: string }[]>();

  constructor(entries: { token: AddedToken; content: string }[]) {
    for (const e of entries) {
      if (e.content.length === 0) continue;
      const key = e.content[0] as string;
      const list = this.byFirst.get(key) ?? [];
      list.push(e);
      this.byFirst.set(key, list);
    }
    for (const list of this.byFirst.values()) list.sort((a, b) => b.content.length - a.content.length);
  }

  get empty(): boolean {
    return this.byFirst.size === 0;
  }

  split(text: string, atStart: boolean): Piece[] {
    if (this.empty) return [{ text, atStart }];
    const out: Piece[] = [];
    let last = 0;
    for (let i = 0; i < text.length; ) {
      const match = this.byFirst.get(text[i] as string)?.find((e) => text.startsWith(e.content, i) && this.wordOk(e.token, text, i, i + e.content.length));
      if (match === undefined) {
        i++;
        continue;
      }
      let s = i;
      let e = i + match.content.length;
      if (match.token.lstrip) while (s > last && WS.test(text[s - 1] as string)) s--;
      if (match.token.rstrip) while (e < text.length && WS.test(text[e] as string)) e++;
      if (s > last) out.push({ text: text.slice(last, s), atStart: atStart && last === 0 });
      out.push({ id: match.token.id });
      last = e;
      i = e;
    }
    if (last < text.length) out.push({ text: text.slice(last), atStart: atStart && last === 0 });
    return out;
  }

  private wordOk(t: AddedToken, text: string, s: number, e: number): boolean {
    if (!t.singleWord) return true;
    const before = s > 0 ? String.fromCodePoint(text.codePointAt(s - 1) as number) : '';
    const after = e < text.length ? String.fromCodePoint(text.codePointAt(e) as number) : '';
    return !(before && WORD_CHAR.test(before)) && !(after && WORD_CHAR.test(after));
  }
}

interface TemplateItem {
  /** ids of a special token, or undefined for the text itself ($A) */
  special?: number[];
  typeId: number;
}

function readTemplate(v: unknown): TemplateItem[] {
  const text: TemplateItem = { typeId: 0 };
  if (v === null || v === undefined) return [text];
  const p = asObject(v, 'post_processor');
  const type = asString(p.type, 'post_processor.type');
  switch (type) {
    case 'TemplateProcessing': {
      const specials = asObject(p.special_tokens ?? {}, 'post_processor.special_tokens');
      return asArray(p.single, 'post_processor.single').map((raw, i) => {
        const item = asObject(raw, `post_processor.single[${i}]`);
        if (item.Sequence !== undefined) return { typeId: asInt(asObject(item.Sequence, 'Sequence').type_id ?? 0, 'type_id') };
        const st = asObject(item.SpecialToken, `post_processor.single[${i}].SpecialToken`);
        const name = asString(st.id, 'SpecialToken.id');
        const def = asObject(specials[name], `post_processor.special_tokens[${JSON.stringify(name)}]`);
        return { special: asArray(def.ids, 'ids').map((x) => asInt(x, 'ids[]')), typeId: asInt(st.type_id ?? 0, 'type_id') };
      });
    }
    case 'BertProcessing':
    case 'RobertaProcessing': {
      const id = (key: string): number => asInt(asArray(p[key], `post_processor.${key}`)[1], `post_processor.${key}[1]`);
      return [{ special: [id('cls')], typeId: 0 }, text, { special: [id('sep')], typeId: 0 }];
    }
    case 'ByteLevel':
      return [text];
    case 'Sequence': {
      const templates = asArray(p.processors, 'post_processor.processors').map(readTemplate).filter((t) => t.length > 1);
      return templates[templates.length - 1] ?? [text];
    }
    default:
      throw new SedacError('E_MODEL_UNSUPPORTED', `tokenizer.json post_processor type ${JSON.stringify(type)} is not supported`);
  }
}

function readAddedTokens(v: unknown): AddedToken[] {
  return asArray(v ?? [], 'added_tokens').map((raw, i) => {
    const t = asObject(raw, `added_tokens[${i}]`);
    return {
      id: asInt(t.id, `added_tokens[${i}].id`),
      content: asString(t.content, `added_tokens[${i}].content`),
      special: optBool(t.special, false),
      singleWord: optBool(t.single_word, false),
      lstrip: optBool(t.lstrip, false),
      rstrip: optBool(t.rstrip, false),
      normalized: optBool(t.normalized, !optBool(t.special, false)),
    };
  });
}

export class HfTokenizer implements EngineTokenizer {
  readonly kind: 'bpe' | 'wordpiece';
  readonly vocabSize: number;
  readonly bos: number | undefined;
  readonly eos: number | undefined;
  private readonly model: WordModel;
  private readonly normalizer: Normalizer;
  private readonly preTokenizer: PreTokenizer;
  private readonly decoder: Decoder;
  private readonly addedById = new Map<number, AddedToken>();
  private readonly addedByContent = new Map<string, AddedToken>();
  private readonly rawSplitter: AddedTokenSplitter;
  private readonly normalizedSplitter: AddedTokenSplitter;
  private readonly template: TemplateItem[];

  constructor(src: HfTokenizerJson) {
    const json: JsonObject = asObject(src.json, 'the file');
    const model = asObject(json.model, 'model');
    const type = model.type ?? (model.merges !== undefined ? 'BPE' : undefined);
    if (type === 'BPE') {
      this.model = new BpeModel(model);
      this.kind = 'bpe';
    } else if (type === 'WordPiece') {
      this.model = new WordPieceModel(model);
      this.kind = 'wordpiece';
    } else {
      throw new SedacError('E_MODEL_UNSUPPORTED', `tokenizer.json model type ${JSON.stringify(type)} is not supported (BPE, WordPiece)`);
    }
    this.normalizer = buildNormalizer(json.normalizer);
    this.preTokenizer = buildPreTokenizer(json.pre_tokenizer);
    this.decoder = buildDecoder(json.decoder);
    const added = readAddedTokens(json.added_tokens);
    for (const t of added) {
      this.addedById.set(t.id, t);
      this.addedByContent.set(t.content, t);
    }
    this.rawSplitter = new AddedTokenSplitter(added.filter((t) => !t.normalized).map((token) => ({ token, content: token.content })));
    this.normalizedSplitter = new AddedTokenSplitter(added.filter((t) => t.normalized).map((token) => ({ token, content: this.normalizer(token.content) })));
    this.template = readTemplate(json.post_processor);
    this.vocabSize = Math.max(this.model.size, ...added.map((t) => t.id + 1));
    const textAt = this.template.findIndex((t) => t.special === undefined);
    const leading = this.template[0]?.special;
    const trailing = this.template[this.template.length - 1]?.special;
    this.bos = src.bos ?? (textAt > 0 && leading?.length === 1 ? leading[0] : this.pieceToId('<s>'));
    this.eos = src.eos ?? (textAt < this.template.length - 1 && trailing?.length === 1 ? trailing[0] : this.pieceToId('</s>'));
    for (const [name, id] of [['bos', this.bos], ['eos', this.eos]] as const) {
      if (id !== undefined && (id < 0 || id >= this.vocabSize)) throw badTokenizer(`${name} id ${id} is outside the vocabulary of ${this.vocabSize}`);
    }
  }

  idToPiece(id: number): string | undefined {
    return this.addedById.get(id)?.content ?? this.model.idToToken(id);
  }

  pieceToId(piece: string): number | undefined {
    return this.addedByContent.get(piece)?.id ?? this.model.tokenToId(piece);
  }

  encode(text: string): number[] {
    const ids: number[] = [];
    for (const piece of this.rawSplitter.split(wellFormed(text), true)) {
      if ('id' in piece) {
        ids.push(piece.id);
        continue;
      }
      if (piece.text.length === 0) continue;
      for (const sub of this.normalizedSplitter.split(this.normalizer(piece.text), piece.atStart)) {
        if ('id' in sub) ids.push(sub.id);
        else for (const word of this.preTokenizer(sub.text, sub.atStart)) ids.push(...this.model.tokenize(word));
      }
    }
    return ids;
  }

  encodeWithSpecial(text: string, maxLen = Infinity): SpecialEncoding {
    const nSpecial = this.template.reduce((n, t) => n + (t.special?.length ?? 0), 0);
    if (maxLen < nSpecial) throw new SedacError('E_INPUT', `maxLen ${maxLen} leaves no room for the ${nSpecial} special tokens`);
    const body = this.encode(text).slice(0, maxLen - nSpecial);
    const enc: SpecialEncoding = { ids: [], typeIds: [], attentionMask: [] };
    for (const item of this.template) {
      for (const id of item.special ?? body) {
        enc.ids.push(id);
        enc.typeIds.push(item.typeId);
        enc.attentionMask.push(1);
      }
    }
    return enc;
  }

  decode(ids: number[]): string {
    const tokens: string[] = [];
    for (const id of ids) {
      const added = this.addedById.get(id);
      if (added?.special) continue;
      const token = added?.content ?? this.model.idToToken(id);
      if (token !== undefined) tokens.push(token);
    }
    return this.decoder(tokens).join('');
  }

  decodeStream(): DecodeStream {
    return new WindowDecodeStream((ids) => this.decode(ids));
  }
}
