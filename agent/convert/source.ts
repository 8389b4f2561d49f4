/**
 * The in-memory form every reader (GGUF, llama2.c, Hugging Face) produces for a Llama-family
 * decoder, before the bundle writer turns it into ONNX graphs.
 *
 * Matrices are row-major [out, in] (PyTorch nn.Linear and GGUF ne[1]×ne[0] agree on this);
 * quantized blocks (Q8_0, Q4_0) run along `in`, 32 values per block, exactly as ggml stores them.
 */

/**
 * f32 / f16: plain little-endian floats. q8_0 / q4_0: ggml blocks of 32 (fp16 scale + quants).
 * q8_g: llama2.c v2 group quantization: `data` holds int8 values, `scales` one f32 per group of
 * `groupSize` consecutive values in row-major order. export.py only makes groupSize divide `dim`,
 * so when it does not divide a matrix's `in` (e.g. w2 with in = hidden_dim) groups span rows.
 */
export type SourceDType = 'f32' | 'f16' | 'q8_0' | 'q4_0' | 'q8_g';

export interface SourceTensor {
  name: string;
  dtype: SourceDType;
  /** row-major, outermost first: [out, in] for matrices, [n] for vectors */
  shape: number[];
  /** the tensor's bytes exactly as stored in the source file (little-endian) */
  data: Uint8Array;
  /** q8_g only: one scale per group */
  scales?: Float32Array;
  /** q8_g only: values per group */
  groupSize?: number;
}

/** How RoPE pairs the dimensions of a head. */
export type RopeLayout =
  /** Meta / llama2.c / GGUF: rotate adjacent pairs (2i, 2i+1) */
  | 'adjacent'
  /** Hugging Face: rotate halves (i, i + head_dim/2) */
  | 'halves';

export interface LlamaConfig {
  dim: number;
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  headDim: number;
  /** SwiGLU hidden size */
  ffnDim: number;
  vocabSize: number;
  /** RMSNorm epsilon */
  normEps: number;
  ropeTheta: number;
  /** maximum context the model was trained for */
  maxSeqLen: number;
  ropeLayout: RopeLayout;
  /** true when the LM head is the token embedding */
  tiedEmbeddings: boolean;
}

export interface LlamaLayerTensors {
  attnNorm: SourceTensor; // (dim)
  wq: SourceTensor; // (nHeads*headDim, dim)
  wk: SourceTensor; // (nKvHeads*headDim, dim)
  wv: SourceTensor; // (nKvHeads*headDim, dim)
  wo: SourceTensor; // (dim, nHeads*headDim)
  ffnNorm: SourceTensor; // (dim)
  wGate: SourceTensor; // (ffnDim, dim)
  wUp: SourceTensor; // (ffnDim, dim)
  wDown: SourceTensor; // (dim, ffnDim)
}

export interface LlamaTensors {
  tokEmbd: SourceTensor; // (vocab, dim)
  outputNorm: SourceTensor; // (dim)
  /** LM head (vocab, dim); absent when tied to tokEmbd */
  output?: SourceTensor;
  layers: LlamaLayerTensors[];
}

/** SentencePiece-style vocabulary, as carried by GGUF, tokenizer.model or llama2.c tokenizer.bin. */
export interface SentencePieceVocab {
  kind: 'sentencepiece';
  pieces: string[];
  scores: number[];
  /** SentencePiece piece types: 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte */
  types: number[];
  /** special token ids; -1 when the model defines none */
  bos: number;
  eos: number;
  unk: number;
  addDummyPrefix: boolean;
  /**
   * segmentation algorithm: 'bpe' merges pieces by score (Llama, llama2.c, GGUF 'llama'),
   * 'unigram' is SentencePiece's Viterbi model. Absent means 'bpe'.
   */
  algorithm?: 'bpe' | 'unigram';
  /** split digits into single pieces before BPE (SentencePiece split_digits) */
  splitDigits?: boolean;
  /**
   * collapse runs of whitespace and trim before encoding (SentencePiece normalizer
   * remove_extra_whitespaces); absent means false, as in llama.cpp and llama2.c
   */
  removeExtraWhitespaces?: boolean;
}

/** A Hugging Face tokenizer.json, kept verbatim. */
export interface HfTokenizerJson {
  kind: 'hf-tokenizer-json';
  json: unknown;
  bos?: number;
  eos?: number;
}

export type TokenizerSource = SentencePieceVocab | HfTokenizerJson;

export interface LlamaSource {
  format: 'gguf' | 'llama2c' | 'hf';
  /** model name for the manifest */
  name: string;
  config: LlamaConfig;
  tensors: LlamaTensors;
  tokenizer: TokenizerSource;
  /** sha256 (hex) of the source file(s), in a stable order */
  sha256: string;
}
