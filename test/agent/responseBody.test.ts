/**
 * The request hot path's exact outputs: answer bodies byte for byte (key order as the README's
 * MQTT section gives it), template and topic-matching fast paths, surrogate checks. These pin the
 * wire format so that cheaper code on the request path cannot change what clients receive.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ClassifyResult, GenerateResult } from '../../agent/engine/types.js';
import { SedacError } from '../../agent/errors.js';
import { errorBody, isRejected, okBody, parseRequest, resultData } from '../../agent/features/requests.js';
import { fillTemplate, matchLevels, matchTopic } from '../../agent/transport/topics.js';

const generated: GenerateResult = {
  text: ' runs',
  tokens: [7, 9],
  promptTokens: 3,
  layers: [8, 3],
  meanLayers: 5.5,
  level: 'eco',
  ms: 1,
  tokensPerS: 2000,
  stop: 'max_tokens',
};

test('ok body of a generate answer: README key order, rounded timings, transaction last', () => {
  const data = resultData(generated, ['no policy', 'requested'], { queueMs: 0.123, inferMs: 4.5678 });
  assert.equal(
    okBody(data, 'tx-1'),
    '{"status":"ok","data":{"text":" runs","tokens":2,"prompt_tokens":3,"stop":"max_tokens","layers":[8,3],"mean_layers":5.5,"level":"eco","reasons":["no policy","requested"],"queue_ms":0.12,"infer_ms":4.57},"transaction":"tx-1"}',
  );
  assert.equal(okBody({ a: 1 }), '{"status":"ok","data":{"a":1}}', 'no transaction key when the request had none');
  assert.equal(okBody({ a: 1 }, 0), '{"status":"ok","data":{"a":1},"transaction":0}', 'a numeric transaction 0 is echoed');
});

test('ok body of a classify answer and of an external message (extra fields last)', () => {
  const c: ClassifyResult = { label: 'neither', probs: { offensive: 0.1, neither: 0.9 }, layers: 3, level: 'full', ms: 1 };
  const data = resultData(c, ['x'], { queueMs: 1, inferMs: 2 }, { source_topic: 'chat/a/message' });
  assert.equal(
    okBody(data),
    '{"status":"ok","data":{"label":"neither","probs":{"offensive":0.1,"neither":0.9},"layers":3,"mean_layers":3,"level":"full","reasons":["x"],"queue_ms":1,"infer_ms":2,"source_topic":"chat/a/message"}}',
  );
});

test('error body: {status, error:{code, message}, transaction}', () => {
  const e = new SedacError('E_BUSY', 'the queue is full');
  assert.equal(errorBody(e, 't'), '{"status":"error","error":{"code":"E_BUSY","message":"the queue is full"},"transaction":"t"}');
  assert.equal(errorBody(e), '{"status":"error","error":{"code":"E_BUSY","message":"the queue is full"}}');
});

test('fillTemplate fast paths give what the general path gives', () => {
  assert.equal(fillTemplate('{text}', { text: 'a $& {1} $1 dog' }, ['x']), 'a $& {1} $1 dog', 'no re-expansion, no replacement patterns');
  assert.equal(fillTemplate('{text}', { route: 'r' }), '{text}', 'unknown placeholder kept');
  assert.equal(fillTemplate('{text}', { text: '' }), '');
  assert.equal(fillTemplate('plain/topic', { text: 'x' }), 'plain/topic');
  assert.equal(fillTemplate(' {text}', { text: 'x' }), ' x');
});

test('matchLevels (pre-split) agrees with matchTopic, including the $-topic rule', () => {
  const cases: Array<[string, string, string[] | undefined]> = [
    ['a/b', 'a/b', []],
    ['a/+', 'a/b', ['b']],
    ['a/#', 'a/b/c', ['b/c']],
    ['#', '$SYS/x', undefined],
    ['+/x', '$SYS/x', undefined],
    ['$SYS/#', '$SYS/x', ['x']],
    ['a/+', 'a', undefined],
    ['a/+', 'a/b/c', undefined],
    ['sedac/pi/request/#', 'sedac/pi/request/caption', ['caption']],
  ];
  for (const [f, t, want] of cases) {
    assert.deepEqual(matchTopic(f, t), want, `${f} vs ${t}`);
    assert.deepEqual(matchLevels(f.split('/'), t.split('/')), want, `${f} vs ${t} (split)`);
  }
});

test('surrogates: pairs pass, lone high or low surrogates are refused', () => {
  const L = { maxPayloadBytes: 1024, maxCorrelationBytes: 16, maxChars: 100, maxTokens: 8 };
  const parse = (json: string): string | undefined => {
    const r = parseRequest(Buffer.from(json), L);
    return isRejected(r) ? r.error.code : undefined;
  };
  assert.equal(parse('{"text":"a \\ud83d\\ude00 dog"}'), undefined);
  assert.equal(parse('{"text":"a \\ude00 dog"}'), 'E_BAD_REQUEST');
  assert.equal(parse('{"text":"a \\ud83d"}'), 'E_BAD_REQUEST');
  assert.equal(parse('{"text":"\\ude00\\ud83d"}'), 'E_BAD_REQUEST', 'low then high is not a pair');
});
