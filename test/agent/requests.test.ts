import assert from 'node:assert/strict';
import { test } from 'node:test';
import { externalText, isRejected, parseRequest, replyAddress, type RequestLimits } from '../../agent/features/requests.js';
import type { InboundMessage } from '../../agent/transport/mqttClient.js';

const L: RequestLimits = { maxPayloadBytes: 1024, maxCorrelationBytes: 16, maxChars: 10, maxTokens: 32 };
const P = (x: unknown): Buffer => Buffer.from(typeof x === 'string' ? x : JSON.stringify(x));

function code(payload: Buffer): string | undefined {
  const r = parseRequest(payload, L);
  return isRejected(r) ? r.error.code : undefined;
}

test('valid requests parse with their optional fields', () => {
  const r = parseRequest(P({ text: 'hi', transaction: 'a', level: 'eco', quality: 'exact', max_tokens: 4, deadline_ms: 100, extra: 1 }), L);
  assert.deepEqual(r, { text: 'hi', transaction: 'a', level: 'eco', quality: 'exact', maxTokens: 4, deadlineMs: 100 });
  assert.deepEqual(parseRequest(P({ text: 'x', transaction: 12 }), L), { text: 'x', transaction: 12 });
});

test('bad payloads get E_BAD_REQUEST or E_TOO_LARGE', () => {
  assert.equal(code(P('not json')), 'E_BAD_REQUEST');
  assert.equal(code(Buffer.from([0x7b, 0xff, 0xfe, 0x7d])), 'E_BAD_REQUEST');
  assert.equal(code(P('')), 'E_BAD_REQUEST');
  assert.equal(code(P('[1]')), 'E_BAD_REQUEST');
  assert.equal(code(P('null')), 'E_BAD_REQUEST');
  assert.equal(code(P({})), 'E_BAD_REQUEST');
  assert.equal(code(P({ text: 5 })), 'E_BAD_REQUEST');
  assert.equal(code(P({ text: '   ' })), 'E_BAD_REQUEST');
  assert.equal(code(P({ text: 'hello world!' })), 'E_TOO_LARGE');
  assert.equal(code(P({ text: '😀😀😀😀😀😀😀😀😀😀' })), undefined, '10 code points are 20 UTF-16 units: still within 10 characters');
  assert.equal(code(P('{"text":"a\\ud800b"}')), 'E_BAD_REQUEST', 'lone surrogate');
  assert.equal(code(P({ text: 'x', max_tokens: 0 })), 'E_BAD_REQUEST');
  assert.equal(code(P({ text: 'x', max_tokens: 33 })), 'E_BAD_REQUEST');
  assert.equal(code(P({ text: 'x', max_tokens: 1.5 })), 'E_BAD_REQUEST');
  assert.equal(code(P({ text: 'x', max_tokens: '3' })), 'E_BAD_REQUEST');
  assert.equal(code(P({ text: 'x', deadline_ms: 0 })), 'E_BAD_REQUEST');
  assert.equal(code(P({ text: 'x', level: 3 })), 'E_BAD_REQUEST');
  assert.equal(code(P({ text: 'x', transaction: { a: 1 } })), 'E_BAD_REQUEST');
  assert.equal(code(P({ text: 'x', transaction: 'y'.repeat(300) })), 'E_BAD_REQUEST');
  assert.equal(code(P('{"__proto__":{"text":"x"}}')), 'E_BAD_REQUEST');
  assert.equal(code(Buffer.alloc(2000, 0x20)), 'E_TOO_LARGE');
  assert.equal(code(P('['.repeat(1000))), 'E_BAD_REQUEST');
  assert.equal((parseRequest(P('['.repeat(30000) + ']'.repeat(30000)), { ...L, maxPayloadBytes: 1e6 }) as { error?: { code: string } }).error?.code, 'E_BAD_REQUEST', 'deep nesting');
});

test('the transaction is echoed on field errors once it could be read', () => {
  const r = parseRequest(P({ transaction: 'keep', text: 7 }), L);
  assert.ok(isRejected(r));
  assert.equal(r.transaction, 'keep');
});

function msg(over: Partial<InboundMessage>): InboundMessage {
  return { topic: 't', payload: Buffer.alloc(0), qos: 1, retain: false, receivedAt: 0, captures: [], ...over };
}

test('replyAddress: MQTT 5 response topic, default topic, wildcard and oversized correlation problems', () => {
  assert.deepEqual(replyAddress(msg({}), 'd/response/r', 16), { topic: 'd/response/r' });
  const cd = Buffer.from('abc');
  assert.deepEqual(replyAddress(msg({ responseTopic: 'me/reply', correlationData: cd }), 'd', 16), { topic: 'me/reply', correlationData: cd });
  const w = replyAddress(msg({ responseTopic: 'me/+/reply', correlationData: cd }), 'd', 16);
  assert.equal(w.topic, 'd');
  assert.equal(w.problem?.code, 'E_BAD_REQUEST');
  assert.equal(w.correlationData, cd);
  const big = replyAddress(msg({ responseTopic: 'me', correlationData: Buffer.alloc(17) }), 'd', 16);
  assert.equal(big.topic, 'me');
  assert.equal(big.problem?.code, 'E_TOO_LARGE');
  assert.equal(big.correlationData, undefined);
});

test('externalText: JSON {text}, JSON string, raw text; bad ones coded', () => {
  assert.equal(externalText(P({ text: 'a dog' }), L), 'a dog');
  assert.equal(externalText(P('"a cat"'), L), 'a cat');
  assert.equal(externalText(P('plain'), L), 'plain');
  assert.equal(externalText(P('{not json'), L), '{not json');
  const bad = (b: Buffer): string | undefined => {
    const r = externalText(b, L);
    return typeof r === 'string' ? undefined : r.code;
  };
  assert.equal(bad(P({ text: 1 })), 'E_BAD_REQUEST');
  assert.equal(bad(Buffer.from([0xff])), 'E_BAD_REQUEST');
  assert.equal(bad(P('x'.repeat(11))), 'E_TOO_LARGE');
  assert.equal(bad(P(' ')), 'E_BAD_REQUEST');
});
