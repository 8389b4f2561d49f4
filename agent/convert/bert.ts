/**
 * Hugging Face BERT-family sequence classifiers (`BertForSequenceClassification`,
 * `DistilBertForSequenceClassification`) → an in-memory BertSource → a SEDAC bundle.
 *
 * A bundle holds one graph per step so the engine can stop between layers:
 *   embed    ids, type ids, mask            → hidden (batch, seq, d)
 *   layer.N  hidden, mask                   → hidden
 *   head     hidden                         → logits (batch, classes)   (pooler / pre-classifier + classifier)
 *   full     ids, type ids, mask            → logits                    (the whole model: one call for full depth)
 */
import { existsSync, readFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { SedacError } from '../errors.js';
import { type Manifest, sha256 } from '../engine/bundle.js';
import { buildEmbedGraph, buildFullGraph, buildHeadGraph, buildLayerGraph, type BertSource, type BertConfig, type BertLayer, type HeadActivation } from './bertGraphs.js';
import type { GraphBuilder } from './onnx.js';
import { bertTokenizerJson } from '../engine/tokenizer/index.js';
import { writeBundle } from './bundleWriter.js';
import { combineSha256 } from './readerCommon.js';
import { parseSafetensors } from './safetensors.js';

export type { BertSource, BertConfig } from './bertGraphs.js';

/** A tensor as float32, shape outermost first (HF nn.Linear weights are (out, in)). */
export interface F32Tensor {
  shape: number[];
  data: Float32Array;
}

function f16ToF32(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** Every tensor of a safetensors file as float32 (F32, F16 and BF16 are read; others refused). */
function readSafetensorsF32(path: string): Map<string, F32Tensor> {
  const out = new Map<string, F32Tensor>();
  for (const [name, t] of parseSafetensors(readFileSync(path), path)) {
    const n = t.shape.reduce((x, y) => x * y, 1);
    const dv = new DataView(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    const data = new Float32Array(n);
    if (t.dtype === 'F32') for (let i = 0; i < n; i++) data[i] = dv.getFloat32(i * 4, true);
    else if (t.dtype === 'F16') for (let i = 0; i < n; i++) data[i] = f16ToF32(dv.getUint16(i * 2, true));
    else if (t.dtype === 'BF16') {
      const u = new Uint32Array(data.buffer);
      for (let i = 0; i < n; i++) u[i] = dv.getUint16(i * 2, true) << 16;
    } else if (name.endsWith('position_ids')) continue; // an int buffer some exports carry; not a weight
    else throw new SedacError('E_MODEL_UNSUPPORTED', `${path}: tensor ${name} has dtype ${t.dtype} (F32, F16, BF16 are read)`);
    out.set(name, { shape: t.shape, data });
  }
  return out;
}

/** The files a BERT source is made of: what its sha256 covers (same scheme as detect.ts's sourceSha256). */
export function bertSourceFiles(dir: string): string[] {
  const root = resolve(dir);
  const files = ['config.json', 'model.safetensors'];
  if (existsSync(join(root, 'tokenizer.json'))) files.push('tokenizer.json');
  else files.push('vocab.txt');
  if (existsSync(join(root, 'tokenizer_config.json'))) files.push('tokenizer_config.json');
  return files.map((f) => join(root, f));
}

type Json = Record<string, unknown>;

function num(cfg: Json, keys: string[], fallback?: number): number {
  for (const k of keys) if (typeof cfg[k] === 'number') return cfg[k];
  if (fallback !== undefined) return fallback;
  throw new SedacError('E_MODEL_FORMAT', `config.json: missing ${keys.join(' / ')}`);
}

function activation(v: unknown, where: string): 'gelu' | 'relu' | 'gelu_tanh' {
  if (v === 'gelu' || v === 'gelu_python') return 'gelu';
  if (v === 'relu') return 'relu';
  if (v === 'gelu_new' || v === 'gelu_pytorch_tanh') return 'gelu_tanh';
  throw new SedacError('E_MODEL_UNSUPPORTED', `${where}: activation ${String(v)} is not supported (gelu, gelu_new, relu)`);
}

/** Labels in class order from id2label, or LABEL_i when absent. */
function labelsOf(cfg: Json, n: number): string[] {
  const id2 = (cfg.id2label ?? {}) as Record<string, unknown>;
  return Array.from({ length: n }, (_, i) => (typeof id2[String(i)] === 'string' ? (id2[String(i)] as string) : `LABEL_${i}`));
}

/** Read an HF classifier directory (config.json + model.safetensors) into a BertSource. */
export function readBertSource(dir: string): BertSource {
  const root = resolve(dir);
  const cfgPath = join(root, 'config.json');
  const stPath = join(root, 'model.safetensors');
  if (!existsSync(cfgPath)) throw new SedacError('E_MODEL_NOT_FOUND', `${root}: config.json missing`);
  if (!existsSync(stPath)) {
    const alt = existsSync(join(root, 'pytorch_model.bin')) ? ' (only pytorch_model.bin found: convert it to safetensors first)' : '';
    throw new SedacError('E_MODEL_NOT_FOUND', `${root}: model.safetensors missing${alt}`);
  }
  let cfg: Json;
  try {
    cfg = JSON.parse(readFileSync(cfgPath, 'utf8')) as Json;
  } catch (err) {
    throw new SedacError('E_MODEL_FORMAT', `${cfgPath}: ${(err as Error).message}`);
  }
  const modelType = String(cfg.model_type ?? '');
  const tensors = readSafetensorsF32(stPath);
  const srcHash = combineSha256(bertSourceFiles(root).filter(existsSync).map((f) => ({ path: f, sha256: sha256(readFileSync(f)) })));
  if (modelType === 'bert') return bertLayout(cfg, tensors, root, srcHash);
  if (modelType === 'distilbert') return distilLayout(cfg, tensors, root, srcHash);
  throw new SedacError('E_MODEL_UNSUPPORTED', `${cfgPath}: model_type '${modelType}' is not a supported encoder classifier (bert, distilbert)`);
}

/** Finds tensors by their HF name, trying the known prefixes and old TF LayerNorm names. */
function picker(tensors: Map<string, F32Tensor>, prefixes: string[], where: string) {
  return (name: string, shape: number[]): F32Tensor => {
    const alts = [name, name.replace(/\.weight$/, '.gamma'), name.replace(/\.bias$/, '.beta')];
    for (const p of prefixes) {
      for (const a of alts) {
        const t = tensors.get(p + a);
        if (!t) continue;
        if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
          throw new SedacError('E_MODEL_SHAPE', `${where}: ${p + a} has shape [${t.shape.join(',')}], expected [${shape.join(',')}]`);
        }
        return t;
      }
    }
    throw new SedacError('E_MODEL_SHAPE', `${where}: tensor ${prefixes[0] ?? ''}${name} missing`);
  };
}

function bertLayout(cfg: Json, tensors: Map<string, F32Tensor>, root: string, srcHash: string): BertSource {
  const where = join(root, 'model.safetensors');
  if (cfg.position_embedding_type !== undefined && cfg.position_embedding_type !== 'absolute') {
    throw new SedacError('E_MODEL_UNSUPPORTED', `${root}: position_embedding_type ${String(cfg.position_embedding_type)} (only absolute)`);
  }
  const d = num(cfg, ['hidden_size']);
  const ff = num(cfg, ['intermediate_size']);
  const config: BertConfig = {
    vocabSize: num(cfg, ['vocab_size']),
    hidden: d,
    nLayers: num(cfg, ['num_hidden_layers']),
    nHeads: num(cfg, ['num_attention_heads']),
    intermediate: ff,
    maxPositions: num(cfg, ['max_position_embeddings']),
    typeVocabSize: num(cfg, ['type_vocab_size'], 0),
    layerNormEps: num(cfg, ['layer_norm_eps'], 1e-12),
    act: activation(cfg.hidden_act ?? 'gelu', 'hidden_act'),
    numLabels: 0,
    labels: [],
  };
  const get = picker(tensors, ['bert.', ''], where);
  const cls = tensors.get('classifier.weight');
  if (!cls || cls.shape.length !== 2 || cls.shape[1] !== d) throw new SedacError('E_MODEL_SHAPE', `${where}: classifier.weight missing or not (labels, ${d})`);
  config.numLabels = cls.shape[0]!;
  config.labels = labelsOf(cfg, config.numLabels);
  const layers: BertLayer[] = [];
  for (let l = 0; l < config.nLayers; l++) {
    const p = `encoder.layer.${l}.`;
    layers.push({
      q: get(`${p}attention.self.query.weight`, [d, d]),
      qb: get(`${p}attention.self.query.bias`, [d]),
      k: get(`${p}attention.self.key.weight`, [d, d]),
      kb: get(`${p}attention.self.key.bias`, [d]),
      v: get(`${p}attention.self.value.weight`, [d, d]),
      vb: get(`${p}attention.self.value.bias`, [d]),
      o: get(`${p}attention.output.dense.weight`, [d, d]),
      ob: get(`${p}attention.output.dense.bias`, [d]),
      ln1g: get(`${p}attention.output.LayerNorm.weight`, [d]),
      ln1b: get(`${p}attention.output.LayerNorm.bias`, [d]),
      up: get(`${p}intermediate.dense.weight`, [ff, d]),
      upb: get(`${p}intermediate.dense.bias`, [ff]),
      down: get(`${p}output.dense.weight`, [d, ff]),
      downb: get(`${p}output.dense.bias`, [d]),
      ln2g: get(`${p}output.LayerNorm.weight`, [d]),
      ln2b: get(`${p}output.LayerNorm.bias`, [d]),
    });
  }
  return {
    arch: 'bert',
    name: basename(root) === 'hf' ? basename(dirname(root)) : basename(root),
    path: root,
    sha256: srcHash,
    config,
    word: get('embeddings.word_embeddings.weight', [config.vocabSize, d]),
    position: get('embeddings.position_embeddings.weight', [config.maxPositions, d]),
    tokenType: config.typeVocabSize > 0 ? get('embeddings.token_type_embeddings.weight', [config.typeVocabSize, d]) : undefined,
    embLnG: get('embeddings.LayerNorm.weight', [d]),
    embLnB: get('embeddings.LayerNorm.bias', [d]),
    layers,
    pre: { w: get('pooler.dense.weight', [d, d]), b: get('pooler.dense.bias', [d]), act: 'tanh' as HeadActivation },
    cls: { w: cls, b: picker(tensors, [''], where)('classifier.bias', [config.numLabels]) },
  };
}

function distilLayout(cfg: Json, tensors: Map<string, F32Tensor>, root: string, srcHash: string): BertSource {
  const where = join(root, 'model.safetensors');
  if (cfg.sinusoidal_pos_embds === true) throw new SedacError('E_MODEL_UNSUPPORTED', `${root}: sinusoidal position embeddings`);
  const d = num(cfg, ['dim', 'hidden_size']);
  const ff = num(cfg, ['hidden_dim', 'intermediate_size']);
  const get = picker(tensors, ['distilbert.', ''], where);
  const cls = tensors.get('classifier.weight');
  if (!cls || cls.shape.length !== 2 || cls.shape[1] !== d) throw new SedacError('E_MODEL_SHAPE', `${where}: classifier.weight missing or not (labels, ${d})`);
  const config: BertConfig = {
    vocabSize: num(cfg, ['vocab_size']),
    hidden: d,
    nLayers: num(cfg, ['n_layers', 'num_hidden_layers']),
    nHeads: num(cfg, ['n_heads', 'num_attention_heads']),
    intermediate: ff,
    maxPositions: num(cfg, ['max_position_embeddings']),
    typeVocabSize: 0,
    layerNormEps: 1e-12,
    act: activation(cfg.activation ?? 'gelu', 'activation'),
    numLabels: cls.shape[0]!,
    labels: labelsOf(cfg, cls.shape[0]!),
  };
  const layers: BertLayer[] = [];
  for (let l = 0; l < config.nLayers; l++) {
    const p = `transformer.layer.${l}.`;
    layers.push({
      q: get(`${p}attention.q_lin.weight`, [d, d]),
      qb: get(`${p}attention.q_lin.bias`, [d]),
      k: get(`${p}attention.k_lin.weight`, [d, d]),
      kb: get(`${p}attention.k_lin.bias`, [d]),
      v: get(`${p}attention.v_lin.weight`, [d, d]),
      vb: get(`${p}attention.v_lin.bias`, [d]),
      o: get(`${p}attention.out_lin.weight`, [d, d]),
      ob: get(`${p}attention.out_lin.bias`, [d]),
      ln1g: get(`${p}sa_layer_norm.weight`, [d]),
      ln1b: get(`${p}sa_layer_norm.bias`, [d]),
      up: get(`${p}ffn.lin1.weight`, [ff, d]),
      upb: get(`${p}ffn.lin1.bias`, [ff]),
      down: get(`${p}ffn.lin2.weight`, [d, ff]),
      downb: get(`${p}ffn.lin2.bias`, [d]),
      ln2g: get(`${p}output_layer_norm.weight`, [d]),
      ln2b: get(`${p}output_layer_norm.bias`, [d]),
    });
  }
  return {
    arch: 'distilbert',
    name: basename(root),
    path: root,
    sha256: srcHash,
    config,
    word: get('embeddings.word_embeddings.weight', [config.vocabSize, d]),
    position: get('embeddings.position_embeddings.weight', [config.maxPositions, d]),
    tokenType: undefined,
    embLnG: get('embeddings.LayerNorm.weight', [d]),
    embLnB: get('embeddings.LayerNorm.bias', [d]),
    layers,
    pre: { w: get('pre_classifier.weight', [d, d]), b: get('pre_classifier.bias', [d]), act: 'relu' },
    cls: { w: cls, b: picker(tensors, [''], where)('classifier.bias', [config.numLabels]) },
  };
}

/** True for an HF folder holding a BERT-family sequence classifier this converter reads. */
export function isBertDir(dir: string): boolean {
  try {
    const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Json;
    return cfg.model_type === 'bert' || cfg.model_type === 'distilbert';
  } catch {
    return false;
  }
}

/**
 * The bundle's tokenizer.json: the HF file verbatim when present, else the equivalent WordPiece
 * description of vocab.txt + tokenizer_config.json (BertTokenizer semantics).
 */
function tokenizerJson(root: string): string {
  const tj = join(root, 'tokenizer.json');
  if (existsSync(tj)) return readFileSync(tj, 'utf8');
  const vp = join(root, 'vocab.txt');
  if (!existsSync(vp)) throw new SedacError('E_MODEL_TOKENIZER', `${root}: neither tokenizer.json nor vocab.txt`);
  const cp = join(root, 'tokenizer_config.json');
  const tc = existsSync(cp) ? (JSON.parse(readFileSync(cp, 'utf8')) as Json) : {};
  return JSON.stringify(bertTokenizerJson(readFileSync(vp, 'utf8'), tc).json);
}

/** The longest input the model takes: tokenizer_config's model_max_length capped by the positions. */
function maxLength(root: string, c: BertConfig): number {
  const p = join(root, 'tokenizer_config.json');
  let m = c.maxPositions;
  if (existsSync(p)) {
    const v = (JSON.parse(readFileSync(p, 'utf8')) as Json).model_max_length;
    if (typeof v === 'number' && v > 0 && v < m) m = v;
  }
  return m;
}

export interface BertConvertOptions {
  /** suppress the progress bar */
  quiet?: boolean;
}

/** HF BERT-family classifier folder → bundle directory (written to a temp dir, then renamed). */
export async function convertBert(srcDir: string, outDir: string, opts: BertConvertOptions = {}): Promise<Manifest> {
  const src = readBertSource(srcDir);
  const root = resolve(srcDir);
  const c = src.config;
  const { labels, ...dims } = c;
  return writeBundle(
    outDir,
    {
      graphs: [
        ['embed', () => buildEmbedGraph(src)],
        ...Array.from({ length: c.nLayers }, (_, l): [string, () => GraphBuilder] => [`layer.${l}`, () => buildLayerGraph(src, l)]),
        ['head', () => buildHeadGraph(src)],
        ['full', () => buildFullGraph(src)],
      ],
      tokenizer: tokenizerJson(root),
      manifest: {
        task: 'classify',
        architecture: 'bert',
        name: src.name,
        source: { format: 'hf', path: root, sha256: src.sha256 },
        config: { ...dims, family: src.arch, maxLength: maxLength(root, c), hasTokenTypes: src.tokenType !== undefined },
        weights: 'f32',
        labels,
      },
    },
    { quiet: opts.quiet, summary: `${c.nLayers} layers, ${c.numLabels} labels` },
  );
}
