/**
 * The request wire format, pure: where to answer, what was asked, and the response bodies.
 *
 * Request JSON: `{text, transaction?, level?, quality?, max_tokens?, deadline_ms?}`.
 * Response JSON: `{status:"ok", data, transaction}` or `{status:"error", error:{code,message}, transaction}`.
 */
import type { ClassifyResult, GenerateResult } from '../engine/types.js';
import { SedacError, type ErrorCode } from '../errors.js';
import type { InboundMessage } from '../transport/mqttClient.js';
import { isPublishableTopic } from '../transport/topics.js';

export type Transaction = string | number;

export interface ReplyAddress {
  topic: string;
  correlationData?: Buffer;
  /** a problem with the address the sender gave; answered at `topic` with this error */
  problem?: SedacError;
}

export interface RequestLimits {
  maxPayloadBytes: number;
  maxCorrelationBytes: number;
  maxChars: number;
  maxTokens: number;
}

export interface ParsedRequest {
  text: string;
  transaction?: Transaction;
  level?: string;
  quality?: string;
  maxTokens?: number;
  deadlineMs?: number;
}

/** A request that failed validation; `transaction` is echoed when it could be read. */
export interface RejectedRequest {
  error: SedacError;
  transaction?: Transaction;
}

const MAX_TRANSACTION_CHARS = 256;
const MAX_LEVEL_CHARS = 64;
const LEVEL_KEYS = ['level', 'quality'] as const;
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });

/**
 * Where the answer to a request goes: the MQTT 5 response topic when it is usable, else the
 * route's default response topic. A wildcard response topic or oversized correlation data is a
 * problem reported at the address that remains.
 */
export function replyAddress(msg: InboundMessage, defaultTopic: string, maxCorrelationBytes: number): ReplyAddress {
  let topic = defaultTopic;
  let problem: SedacError | undefined;
  if (msg.responseTopic !== undefined) {
    if (isPublishableTopic(msg.responseTopic)) topic = msg.responseTopic;
    else problem = new SedacError('E_BAD_REQUEST', 'responseTopic must be a topic name without wildcards');
  }
  const cd = msg.correlationData;
  if (cd !== undefined && cd.length > maxCorrelationBytes) {
    problem ??= new SedacError('E_TOO_LARGE', `correlationData is ${cd.length} bytes; the limit is ${maxCorrelationBytes}`);
    return { topic, problem };
  }
  const addr: ReplyAddress = { topic };
  if (cd !== undefined) addr.correlationData = cd;
  if (problem) addr.problem = problem;
  return addr;
}

/** Validate a request payload. Never throws. */
export function parseRequest(payload: Buffer, limits: RequestLimits): ParsedRequest | RejectedRequest {
  if (payload.length > limits.maxPayloadBytes) {
    return reject('E_TOO_LARGE', `payload is ${payload.length} bytes; the limit is ${limits.maxPayloadBytes}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(utf8.decode(payload));
  } catch (err) {
    const why = err instanceof TypeError ? 'payload is not valid UTF-8' : 'payload is not valid JSON';
    return reject('E_BAD_REQUEST', why);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) return reject('E_BAD_REQUEST', 'payload must be a JSON object');
  const o = json as Record<string, unknown>;
  const tx = o.transaction;
  let transaction: Transaction | undefined;
  if (tx !== undefined) {
    const ok = (typeof tx === 'string' && tx.length <= MAX_TRANSACTION_CHARS) || (typeof tx === 'number' && Number.isFinite(tx));
    if (!ok) return reject('E_BAD_REQUEST', `transaction must be a string of at most ${MAX_TRANSACTION_CHARS} characters or a finite number`);
    transaction = tx as Transaction;
  }
  const fail = (code: ErrorCode, message: string): RejectedRequest => {
    const r = reject(code, message);
    if (transaction !== undefined) r.transaction = transaction;
    return r;
  };

  const text = o.text;
  if (text === undefined) return fail('E_BAD_REQUEST', 'text is missing');
  if (typeof text !== 'string') return fail('E_BAD_REQUEST', 'text must be a string');
  if (text.trim().length === 0) return fail('E_BAD_REQUEST', 'text is empty');
  if (overChars(text, limits.maxChars)) return fail('E_TOO_LARGE', `text is over ${limits.maxChars} characters`);
  if (hasUnpairedSurrogate(text)) return fail('E_BAD_REQUEST', 'text contains unpaired surrogates');

  const out: ParsedRequest = { text };
  if (transaction !== undefined) out.transaction = transaction;
  for (const key of LEVEL_KEYS) {
    const v = o[key];
    if (v === undefined) continue;
    if (typeof v !== 'string' || v.length === 0 || v.length > MAX_LEVEL_CHARS) return fail('E_BAD_REQUEST', `${key} must be a level name`);
    out[key] = v;
  }
  if (o.max_tokens !== undefined) {
    const v = o.max_tokens;
    if (!isIntIn(v, 1, limits.maxTokens)) return fail('E_BAD_REQUEST', `max_tokens must be an integer from 1 to ${limits.maxTokens}`);
    out.maxTokens = v;
  }
  if (o.deadline_ms !== undefined) {
    const v = o.deadline_ms;
    if (!isIntIn(v, 1, 3_600_000)) return fail('E_BAD_REQUEST', 'deadline_ms must be an integer from 1 to 3600000');
    out.deadlineMs = v;
  }
  return out;
}

export function isRejected(r: ParsedRequest | RejectedRequest): r is RejectedRequest {
  return 'error' in r;
}

/** Text of a message on a subscribed external topic: JSON `{text}`, a JSON string, or raw UTF-8. */
export function externalText(payload: Buffer, limits: RequestLimits): string | SedacError {
  if (payload.length > limits.maxPayloadBytes) return new SedacError('E_TOO_LARGE', `payload is ${payload.length} bytes`);
  let raw: string;
  try {
    raw = utf8.decode(payload);
  } catch {
    return new SedacError('E_BAD_REQUEST', 'payload is not valid UTF-8');
  }
  let text = raw;
  const first = raw.trimStart()[0];
  if (first === '{' || first === '"') {
    try {
      const j: unknown = JSON.parse(raw);
      if (typeof j === 'string') text = j;
      else if (typeof j === 'object' && j !== null && typeof (j as { text?: unknown }).text === 'string') text = (j as { text: string }).text;
      else return new SedacError('E_BAD_REQUEST', 'JSON payload has no string field text');
    } catch {
      // not JSON after all: serve it as raw text
    }
  }
  if (text.trim().length === 0) return new SedacError('E_BAD_REQUEST', 'text is empty');
  if (overChars(text, limits.maxChars)) return new SedacError('E_TOO_LARGE', `text is over ${limits.maxChars} characters`);
  return text;
}

export interface Timings {
  queueMs: number;
  inferMs: number;
}

/**
 * The `data` of a successful answer: the engine result, level and why, exit statistics, timings
 * (keys in this order), then the `extra` fields.
 */
export function resultData(result: GenerateResult | ClassifyResult, reasons: string[], t: Timings, extra?: Record<string, unknown>): Record<string, unknown> {
  const data: Record<string, unknown> =
    'text' in result
      ? {
          text: result.text,
          tokens: result.tokens.length,
          prompt_tokens: result.promptTokens,
          stop: result.stop,
          layers: result.layers,
          mean_layers: round(result.meanLayers),
          level: result.level,
          reasons,
          queue_ms: round(t.queueMs),
          infer_ms: round(t.inferMs),
        }
      : { label: result.label, probs: result.probs, layers: result.layers, mean_layers: result.layers, level: result.level, reasons, queue_ms: round(t.queueMs), infer_ms: round(t.inferMs) };
  return extra ? Object.assign(data, extra) : data;
}

export function okBody(data: Record<string, unknown>, transaction?: Transaction): string {
  const body: Record<string, unknown> = { status: 'ok', data };
  if (transaction !== undefined) body.transaction = transaction;
  return JSON.stringify(body);
}

export function errorBody(err: SedacError, transaction?: Transaction): string {
  const body: Record<string, unknown> = { status: 'error', error: err.toJSON() };
  if (transaction !== undefined) body.transaction = transaction;
  return JSON.stringify(body);
}

/** True when `s` has more than `max` code points. */
function overChars(s: string, max: number): boolean {
  if (s.length <= max) return false; // UTF-16 length bounds the code point count from above
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) i++;
    }
    if (++n > max) return true;
  }
  return false;
}

const SURROGATE = /[\uD800-\uDFFF]/;

/** True when `s` has a lone surrogate (a string JSON.parse accepts but UTF-8 cannot carry). */
function hasUnpairedSurrogate(s: string): boolean {
  if (!SURROGATE.test(s)) return false; // most texts have no surrogates at all: skip the copy below
  return SURROGATE.test(s.replace(/[\uD800-\uDBFF][\uDC00-\uDFFF]/g, ''));
}

function isIntIn(v: unknown, lo: number, hi: number): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= lo && v <= hi;
}

function reject(code: ErrorCode, message: string): RejectedRequest {
  return { error: new SedacError(code, message) };
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}
