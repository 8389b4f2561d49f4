/**
 * Hugging Face `LlamaForCausalLM` folders: config.json, model.safetensors (or the sharded
 * model.safetensors.index.json form), and tokenizer.json or tokenizer.model.
 *
 * q_proj / k_proj are kept exactly as stored, i.e. permuted for HF's rotate-half RoPE
 * (ropeLayout 'halves'); the graph builder handles both layouts.
 */
import { stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { SedacError } from '../errors.js';
import { widenBf16 } from './dequant.js';
import {
  checkTensorShapes,
  combineSha256,
  exists,
  isRecord,
  missingTensor,
  parseJson,
  readWhole,
  sameTensor,
  sha256Hex,
  validateConfig,
} from './readerCommon.js';
import { parseSafetensors, type SafetensorsEntry } from './safetensors.js';
import { parseSentencePieceModel } from './spModel.js';
import type { HfTokenizerJson, LlamaConfig, LlamaLayerTensors, LlamaSource, SourceTensor, TokenizerSource } from './source.js';

type Files = { path: string; buf: Buffer }[];

function formatError(where: string, message: string): SedacError {
  return new SedacError('E_MODEL_FORMAT', `${where}: ${message}`);
}

/** Whether config.json describes a Llama decoder. */
export function isHfLlamaConfig(cfg: unknown): boolean {
  if (!isRecord(cfg)) return false;
  const archs = Array.isArray(cfg.architectures) ? cfg.architectures : [];
  return archs.includes('LlamaForCausalLM') || cfg.model_type === 'llama';
}

function hfConfig(cfg: Record<string, unknown>, where: string): LlamaConfig {
  const int = (key: string, fallback?: number): number => {
    const v = cfg[key] ?? fallback;
    if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw formatError(where, `${key} is ${JSON.stringify(v)}, not an integer`);
    return v;
  };
  const num = (key: string, fallback: number): number => {
    const v = cfg[key] ?? fallback;
    if (typeof v !== 'number') throw formatError(where, `${key} is ${JSON.stringify(v)}, not a number`);
    return v;
  };
  const unsupported = (m: string): SedacError => new SedacError('E_MODEL_UNSUPPORTED', `${where}: ${m}`);
  if (cfg.hidden_act !== undefined && cfg.hidden_act !== 'silu') throw unsupported(`hidden_act '${String(cfg.hidden_act)}' (only silu)`);
  if (cfg.attention_bias === true) throw unsupported('attention biases are not supported');
  if (cfg.mlp_bias === true) throw unsupported('MLP biases are not supported');
  const scaling = cfg.rope_scaling;
  if (scaling !== undefined && scaling !== null) {
    const kind = isRecord(scaling) ? (scaling.rope_type ?? scaling.type) : scaling;
    if (kind !== 'default') throw unsupported(`rope_scaling ${JSON.stringify(scaling)} is not supported`);
  }
  const dim = int('hidden_size');
  const nHeads = int('num_attention_heads');
  const headDim = cfg.head_dim ?? (nHeads > 0 && dim % nHeads === 0 ? dim / nHeads : undefined);
  if (typeof headDim !== 'number' || !Number.isSafeInteger(headDim)) throw formatError(where, `head_dim is ${JSON.stringify(headDim)}`);
  return {
    dim,
    nLayers: int('num_hidden_layers'),
    nHeads,
    nKvHeads: int('num_key_value_heads', nHeads),
    headDim,
    ffnDim: int('intermediate_size'),
    vocabSize: int('vocab_size'),
    normEps: num('rms_norm_eps', 1e-6),
    ropeTheta: num('rope_theta', 10000),
    maxSeqLen: int('max_position_embeddings', 2048),
    ropeLayout: 'halves',
    tiedEmbeddings: cfg.tie_word_embeddings === true, // HF LlamaConfig's default is false
  };
}

/** Read the safetensors weights (single file or sharded index) into one name → entry map. */
async function readWeights(dir: string, files: Files): Promise<Map<string, SafetensorsEntry>> {
  const single = join(dir, 'model.safetensors');
  const indexPath = join(dir, 'model.safetensors.index.json');
  if (await exists(indexPath)) {
    const indexBuf = await readWhole(indexPath);
    files.push({ path: indexPath, buf: indexBuf });
    const index = parseJson(indexBuf, indexPath);
    const map = isRecord(index) ? index.weight_map : undefined;
    if (!isRecord(map)) throw formatError(indexPath, 'has no weight_map object');
    const shards = new Set<string>();
    for (const [name, file] of Object.entries(map)) {
      // shard names must be plain file names inside the folder
      if (typeof file !== 'string' || file !== basename(file) || file === '..' || !file.endsWith('.safetensors')) {
        throw formatError(indexPath, `tensor ${name} maps to ${JSON.stringify(file)}, not a .safetensors file in the folder`);
      }
      shards.add(file);
    }
    const all = new Map<string, SafetensorsEntry>();
    const owner = new Map<string, string>();
    for (const shard of [...shards].sort()) {
      const p = join(dir, shard);
      const buf = await readWhole(p);
      files.push({ path: p, buf });
      for (const [name, e] of parseSafetensors(buf, shard)) {
        if (all.has(name)) throw formatError(indexPath, `tensor ${name} is in both ${owner.get(name)} and ${shard}`);
        all.set(name, e);
        owner.set(name, shard);
      }
    }
    for (const [name, file] of Object.entries(map)) {
      if (owner.get(name) !== file) throw missingTensor(name, `${file} (per model.safetensors.index.json)`);
    }
    return all;
  }
  if (await exists(single)) {
    const buf = await readWhole(single);
    files.push({ path: single, buf });
    return parseSafetensors(buf, 'model.safetensors');
  }
  if (await exists(join(dir, 'pytorch_model.bin'))) {
    throw new SedacError('E_MODEL_UNSUPPORTED', `${dir}: only pytorch_model.bin (pickle) found; SEDAC reads safetensors weights`);
  }
  throw formatError(dir, 'no model.safetensors or model.safetensors.index.json');
}

/** An HF tensor as a SourceTensor; BF16 is widened to F32, which is exact. */
function toSource(e: SafetensorsEntry): SourceTensor {
  switch (e.dtype) {
    case 'F32':
      return { name: e.name, dtype: 'f32', shape: e.shape, data: e.data };
    case 'F16':
      return { name: e.name, dtype: 'f16', shape: e.shape, data: e.data };
    case 'BF16':
      return { name: e.name, dtype: 'f32', shape: e.shape, data: widenBf16(e.data) };
    default:
      throw new SedacError('E_MODEL_UNSUPPORTED', `tensor ${e.name} has dtype ${e.dtype}; SEDAC reads F32, F16 and BF16 safetensors`, {
        tensor: e.name,
        dtype: e.dtype,
      });
  }
}

const LAYER_NAMES: [keyof LlamaLayerTensors, string][] = [
  ['attnNorm', 'input_layernorm'],
  ['wq', 'self_attn.q_proj'],
  ['wk', 'self_attn.k_proj'],
  ['wv', 'self_attn.v_proj'],
  ['wo', 'self_attn.o_proj'],
  ['ffnNorm', 'post_attention_layernorm'],
  ['wGate', 'mlp.gate_proj'],
  ['wUp', 'mlp.up_proj'],
  ['wDown', 'mlp.down_proj'],
];

/** Resolve a special token (string or {content}) to an id through tokenizer.json's tables. */
function tokenId(json: Record<string, unknown>, token: unknown): number | undefined {
  const content = isRecord(token) ? token.content : token;
  if (typeof content !== 'string') return undefined;
  const added = Array.isArray(json.added_tokens) ? json.added_tokens : [];
  for (const t of added) if (isRecord(t) && t.content === content && typeof t.id === 'number') return t.id;
  const model = isRecord(json.model) ? json.model : undefined;
  const vocab = model?.vocab;
  if (isRecord(vocab) && typeof vocab[content] === 'number') return vocab[content];
  if (Array.isArray(vocab)) {
    const i = vocab.findIndex((v) => Array.isArray(v) && v[0] === content);
    if (i >= 0) return i;
  }
  return undefined;
}

function firstId(v: unknown): number | undefined {
  const x = Array.isArray(v) ? v[0] : v;
  return typeof x === 'number' && Number.isSafeInteger(x) && x >= 0 ? x : undefined;
}

async function readTokenizer(dir: string, cfg: Record<string, unknown>, vocabSize: number, files: Files): Promise<TokenizerSource> {
  const jsonPath = join(dir, 'tokenizer.json');
  const modelPath = join(dir, 'tokenizer.model');
  if (await exists(jsonPath)) {
    const buf = await readWhole(jsonPath, 'E_MODEL_TOKENIZER');
    files.push({ path: jsonPath, buf });
    const json = parseJson(buf, jsonPath, 'E_MODEL_TOKENIZER');
    if (!isRecord(json) || !isRecord(json.model)) throw new SedacError('E_MODEL_TOKENIZER', `${jsonPath} has no "model" object`);
    let tokCfg: Record<string, unknown> = {};
    const tokCfgPath = join(dir, 'tokenizer_config.json');
    if (await exists(tokCfgPath)) {
      const b = await readWhole(tokCfgPath, 'E_MODEL_TOKENIZER');
      files.push({ path: tokCfgPath, buf: b });
      const parsed = parseJson(b, tokCfgPath, 'E_MODEL_TOKENIZER');
      if (isRecord(parsed)) tokCfg = parsed;
    }
    const out: HfTokenizerJson = { kind: 'hf-tokenizer-json', json };
    const bos = tokenId(json, tokCfg.bos_token) ?? firstId(cfg.bos_token_id);
    const eos = tokenId(json, tokCfg.eos_token) ?? firstId(cfg.eos_token_id);
    for (const [name, id] of [['bos', bos], ['eos', eos]] as const) {
      if (id !== undefined && id >= vocabSize) throw new SedacError('E_MODEL_TOKENIZER', `${dir}: ${name} id ${id} is outside the vocabulary of ${vocabSize}`);
    }
    if (bos !== undefined) out.bos = bos;
    if (eos !== undefined) out.eos = eos;
    return out;
  }
  if (await exists(modelPath)) {
    const buf = await readWhole(modelPath, 'E_MODEL_TOKENIZER');
    files.push({ path: modelPath, buf });
    const vocab = parseSentencePieceModel(buf, modelPath);
    if (vocab.pieces.length > vocabSize) {
      throw new SedacError('E_MODEL_TOKENIZER', `${modelPath} has ${vocab.pieces.length} pieces, more than the model's vocabulary of ${vocabSize}`);
    }
    return vocab;
  }
  throw new SedacError('E_MODEL_TOKENIZER', `${dir}: no tokenizer.json or tokenizer.model`);
}

/** Read a Hugging Face Llama folder into a LlamaSource. */
export async function readHfLlama(dir: string): Promise<LlamaSource> {
  const root = resolve(dir);
  let isDir: boolean;
  try {
    isDir = (await stat(root)).isDirectory();
  } catch {
    throw new SedacError('E_MODEL_NOT_FOUND', `${dir} does not exist`);
  }
  if (!isDir) throw formatError(dir, 'is not a directory');
  const configPath = join(root, 'config.json');
  if (!(await exists(configPath))) throw formatError(dir, 'has no config.json');
  const files: Files = [];
  const configBuf = await readWhole(configPath);
  files.push({ path: configPath, buf: configBuf });
  const cfg = parseJson(configBuf, configPath);
  if (!isRecord(cfg)) throw formatError(configPath, 'is not a JSON object');
  if (!isHfLlamaConfig(cfg)) {
    const archs = JSON.stringify(cfg.architectures ?? null);
    throw new SedacError('E_MODEL_UNSUPPORTED', `${configPath}: architectures ${archs} / model_type ${JSON.stringify(cfg.model_type ?? null)} is not a Llama decoder`, {
      architectures: cfg.architectures,
      model_type: cfg.model_type,
    });
  }
  const config = hfConfig(cfg, configPath);
  validateConfig(config, configPath);

  const weights = await readWeights(root, files);
  const used = new Set<string>();
  const take = (name: string): SourceTensor => {
    const e = weights.get(name);
    if (!e) throw missingTensor(name, dir);
    used.add(name);
    return toSource(e);
  };
  const tokEmbd = take('model.embed_tokens.weight');
  const outputNorm = take('model.norm.weight');
  const layers: LlamaLayerTensors[] = [];
  for (let i = 0; i < config.nLayers; i++) {
    const layer: Partial<LlamaLayerTensors> = {};
    for (const [key, name] of LAYER_NAMES) layer[key] = take(`model.layers.${i}.${name}.weight`);
    layers.push(layer as LlamaLayerTensors);
  }
  let output: SourceTensor | undefined;
  if (weights.has('lm_head.weight')) {
    const head = take('lm_head.weight');
    // with tie_word_embeddings HF uses the embedding whatever lm_head holds; a byte-identical
    // copy is a tied head too
    if (!config.tiedEmbeddings && !sameTensor(head, tokEmbd)) output = head;
  }
  config.tiedEmbeddings = output === undefined;
  const extra = [...weights.keys()].filter((n) => !used.has(n) && !n.endsWith('.rotary_emb.inv_freq'));
  if (extra.length > 0) {
    throw new SedacError('E_MODEL_UNSUPPORTED', `${dir}: tensors a plain Llama does not have: ${extra.slice(0, 5).join(', ')}${extra.length > 5 ? ', …' : ''}`, {
      tensors: extra,
    });
  }
  const tensors = { tokEmbd, outputNorm, layers, ...(output ? { output } : {}) };
  checkTensorShapes(config, tensors);
  const tokenizer = await readTokenizer(root, cfg, config.vocabSize, files);
  const sha256 = combineSha256(files.map((f) => ({ path: f.path, sha256: sha256Hex(f.buf) })));
  return { format: 'hf', name: hfModelName(root), config, tensors, tokenizer, sha256 };
}

/**
 * A name for the manifest: the folder's name, or its parent's when the folder is a generic `hf`
 * subfolder or a hub cache snapshot (`models--org--name/snapshots/<commit>` → `org/name`).
 */
function hfModelName(root: string): string {
  const base = basename(root);
  if (base !== 'hf' && !/^[0-9a-f]{40}$/.test(base)) return base;
  const parent = dirname(root);
  if (basename(parent) === 'snapshots') {
    const repo = basename(dirname(parent));
    if (repo.startsWith('models--')) return repo.slice('models--'.length).replaceAll('--', '/');
  }
  return basename(parent) || base;
}

/**
 * The files readHfLlama reads for this folder (what its sha256 covers): config.json, the weights
 * (index + shards or model.safetensors), tokenizer.json + tokenizer_config.json or tokenizer.model.
 */
export async function hfSourceFiles(dir: string): Promise<string[]> {
  const root = resolve(dir);
  const out = [join(root, 'config.json')];
  const indexPath = join(root, 'model.safetensors.index.json');
  if (await exists(indexPath)) {
    out.push(indexPath);
    const index = parseJson(await readWhole(indexPath), indexPath);
    const map = isRecord(index) && isRecord(index.weight_map) ? index.weight_map : {};
    const shards = new Set(Object.values(map).filter((f): f is string => typeof f === 'string'));
    for (const s of [...shards].sort()) out.push(join(root, basename(s)));
  } else out.push(join(root, 'model.safetensors'));
  if (await exists(join(root, 'tokenizer.json'))) {
    out.push(join(root, 'tokenizer.json'));
    if (await exists(join(root, 'tokenizer_config.json'))) out.push(join(root, 'tokenizer_config.json'));
  } else out.push(join(root, 'tokenizer.model'));
  return out;
}
