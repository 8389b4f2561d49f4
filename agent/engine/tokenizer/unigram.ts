/**
 * SentencePiece's unigram segmentation (unigram_model.cc `EncodeOptimized`): the Viterbi path that
 * maximizes the summed piece scores over the normalized text. A character no piece covers becomes a
 * one-character unknown node scored `min score - 10`; the caller turns it into bytes or unk.
 * User-defined pieces score `length * max score - 0.1` so they always win; unused pieces are skipped.
 */
export interface UnigramVocab {
  /** pieces the lattice may use (normal, user-defined, unused) → id */
  lookup: Map<string, number>;
  scores: number[];
  isUserDefined: (id: number) => boolean;
  isUnused: (id: number) => boolean;
}

const UNK_PENALTY = 10;

export class UnigramSegmenter {
  private readonly maxLen: number;
  private readonly minScore: number;
  private readonly maxScore: number;

  constructor(private readonly v: UnigramVocab) {
    let maxLen = 1;
    let min = Infinity;
    let max = -Infinity;
    for (const [piece, id] of v.lookup) {
      maxLen = Math.max(maxLen, piece.length);
      if (!v.isUserDefined(id) && !v.isUnused(id)) {
        const s = v.scores[id] as number;
        min = Math.min(min, s);
        max = Math.max(max, s);
      }
    }
    this.maxLen = maxLen;
    this.minScore = Number.isFinite(min) ? min : 0;
    this.maxScore = Number.isFinite(max) ? max : 0;
  }

  /** The best segmentation of `norm` as piece strings. */
  segment(norm: string): string[] {
    const n = norm.length;
    // best[k]: best path ending at UTF-16 offset k (only code point boundaries are reached)
    const score = new Float64Array(n + 1);
    const from = new Int32Array(n + 1).fill(-1);
    const unkScore = this.minScore - UNK_PENALTY;
    for (let s = 0; s < n; ) {
      const charLen = (norm.codePointAt(s) as number) > 0xffff ? 2 : 1;
      if (s > 0 && from[s] === -1) {
        s += charLen;
        continue;
      }
      const base = score[s] as number;
      let hasSingle = false;
      const limit = Math.min(n, s + this.maxLen);
      for (let e = s + 1; e <= limit; e++) {
        const id = this.v.lookup.get(norm.slice(s, e));
        if (id === undefined || this.v.isUnused(id)) continue;
        const pieceScore = this.v.isUserDefined(id) ? (e - s) * this.maxScore - 0.1 : (this.v.scores[id] as number);
        if (from[e] === -1 || base + pieceScore > (score[e] as number)) {
          score[e] = base + pieceScore;
          from[e] = s;
        }
        if (e - s === charLen) hasSingle = true;
      }
      if (!hasSingle) {
        const e = s + charLen;
        if (from[e] === -1 || base + unkScore > (score[e] as number)) {
          score[e] = base + unkScore;
          from[e] = s;
        }
      }
      s += charLen;
    }
    const out: string[] = [];
    for (let e = n; e > 0; e = from[e] as number) out.push(norm.slice(from[e], e));
    return out.reverse();
  }
}
