/**
 * SentencePiece `tokenizer.model` (a serialized sentencepiece.ModelProto) → SentencePieceVocab.
 *
 * Field numbers (sentencepiece_model.proto):
 *   ModelProto     { repeated SentencePiece pieces = 1; TrainerSpec trainer_spec = 2;
 *                    NormalizerSpec normalizer_spec = 3; }
 *   SentencePiece  { string piece = 1; float score = 2; Type type = 3 [default NORMAL = 1]; }
 *   TrainerSpec    { ModelType model_type = 3 (UNIGRAM 1, BPE 2); bool split_digits = 25;
 *                    bool byte_fallback = 35; int32 unk_id = 40; bos_id = 41; eos_id = 42; }
 *   NormalizerSpec { bool add_dummy_prefix = 3 [default true];
 *                    bool remove_extra_whitespaces = 4 [default true]; }
 */
import { SedacError } from '../errors.js';
import { decodeUtf8 } from './readerCommon.js';
import { readProto, type ProtoField } from './protobuf.js';
import type { SentencePieceVocab } from './source.js';

const MAX_PIECES = 1 << 22;

function fields(buf: Uint8Array, what: string, part: string): ProtoField[] {
  try {
    return readProto(buf);
  } catch (err) {
    throw new SedacError('E_MODEL_TOKENIZER', `${what}: malformed ${part}: ${(err as Error).message}`);
  }
}

/** proto int32 from a varint (negative values are sign-extended to 64 bits on the wire) */
function int32(f: ProtoField): number {
  return Number(BigInt.asIntN(32, f.int ?? 0n));
}

export function parseSentencePieceModel(buf: Uint8Array, what = 'tokenizer.model'): SentencePieceVocab {
  const fail = (m: string): SedacError => new SedacError('E_MODEL_TOKENIZER', `${what}: ${m}`);
  const pieces: string[] = [];
  const scores: number[] = [];
  const types: number[] = [];
  let unk = 0;
  let bos = 1;
  let eos = 2;
  let modelType = 1;
  let splitDigits = false;
  let addDummyPrefix = true;
  let removeExtraWhitespaces = true;

  for (const f of fields(buf, what, 'model')) {
    if (f.field === 1 && f.wire === 2) {
      if (pieces.length >= MAX_PIECES) throw fail(`more than ${MAX_PIECES} pieces`);
      let piece: string | undefined;
      let score = 0;
      let type = 1;
      for (const p of fields(f.data!, what, `piece ${pieces.length}`)) {
        if (p.field === 1 && p.wire === 2) piece = decodeUtf8(p.data!, () => fail(`piece ${pieces.length} is not valid UTF-8`));
        else if (p.field === 2 && p.wire === 5) score = new DataView(p.data!.buffer, p.data!.byteOffset, 4).getFloat32(0, true);
        else if (p.field === 3 && p.wire === 0) type = int32(p);
      }
      if (piece === undefined || piece.length === 0) throw fail(`piece ${pieces.length} is empty`);
      if (type < 1 || type > 6) throw fail(`piece ${pieces.length} has type ${type}`);
      pieces.push(piece);
      scores.push(score);
      types.push(type);
    } else if (f.field === 2 && f.wire === 2) {
      for (const t of fields(f.data!, what, 'trainer_spec')) {
        if (t.wire !== 0) continue;
        if (t.field === 3) modelType = int32(t);
        else if (t.field === 25) splitDigits = t.int !== 0n;
        else if (t.field === 40) unk = int32(t);
        else if (t.field === 41) bos = int32(t);
        else if (t.field === 42) eos = int32(t);
      }
    } else if (f.field === 3 && f.wire === 2) {
      for (const n of fields(f.data!, what, 'normalizer_spec')) {
        if (n.field === 3 && n.wire === 0) addDummyPrefix = n.int !== 0n;
        else if (n.field === 4 && n.wire === 0) removeExtraWhitespaces = n.int !== 0n;
      }
    }
  }
  if (pieces.length === 0) throw fail('no pieces');
  if (modelType !== 1 && modelType !== 2) throw fail(`model type ${modelType} is not supported (unigram and BPE are)`);
  for (const [name, id] of [['unk', unk], ['bos', bos], ['eos', eos]] as const) {
    if (id < -1 || id >= pieces.length) throw fail(`${name}_id ${id} is outside the ${pieces.length} pieces`);
  }
  if (unk < 0) throw fail('unk_id must be set');
  return {
    kind: 'sentencepiece',
    pieces,
    scores,
    types,
    bos,
    eos,
    unk,
    addDummyPrefix,
    splitDigits,
    removeExtraWhitespaces,
    algorithm: modelType === 2 ? 'bpe' : 'unigram',
  };
}
