import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fillTemplate, isPublishableTopic, matchTopic, topicsFor } from '../../agent/transport/topics.js';

test('topic layout under <base>/<device_id>', () => {
  const t = topicsFor('sedac', 'pi1');
  assert.equal(t.state, 'sedac/pi1/state');
  assert.equal(t.info, 'sedac/pi1/info');
  assert.equal(t.health, 'sedac/pi1/health');
  assert.equal(t.policy, 'sedac/pi1/policy');
  assert.equal(t.request('caption'), 'sedac/pi1/request/caption');
  assert.equal(t.response('caption'), 'sedac/pi1/response/caption');
  assert.equal(t.requestFilter, 'sedac/pi1/request/#');
  assert.equal(t.configDesired, 'sedac/pi1/config/desired');
  assert.equal(t.fleetConfigDesired, 'sedac/fleet/config/desired');
  assert.equal(t.configReported, 'sedac/pi1/config/reported');
});

test('matchTopic: exact, +, # and $-topics', () => {
  assert.deepEqual(matchTopic('a/b', 'a/b'), []);
  assert.equal(matchTopic('a/b', 'a/c'), undefined);
  assert.deepEqual(matchTopic('frigate/+/caption', 'frigate/front/caption'), ['front']);
  assert.equal(matchTopic('frigate/+/caption', 'frigate/front/x/caption'), undefined);
  assert.deepEqual(matchTopic('a/#', 'a/b/c'), ['b/c']);
  assert.deepEqual(matchTopic('a/#', 'a'), [''], '# also matches the parent level');
  assert.deepEqual(matchTopic('+/+', 'x/y'), ['x', 'y']);
  assert.equal(matchTopic('#', '$SYS/x'), undefined);
  assert.equal(matchTopic('+/x', '$SYS/x'), undefined);
  assert.deepEqual(matchTopic('+/b', '/b'), ['']);
});

test('fillTemplate: names, wildcard captures, unknown placeholders kept, no re-expansion', () => {
  assert.equal(fillTemplate('{base}/{device_id}/caption/{1}', { base: 'sedac', device_id: 'pi' }, ['front']), 'sedac/pi/caption/front');
  assert.equal(fillTemplate('{2}-{1}', {}, ['a', 'b']), 'b-a');
  assert.equal(fillTemplate('{nope} {3}', {}, ['a']), '{nope} {3}');
  assert.equal(fillTemplate('Q: {text}', { text: '{text} {1}' }, ['x']), 'Q: {text} {1}');
});

test('isPublishableTopic refuses wildcards, NUL and empty topics', () => {
  assert.ok(isPublishableTopic('a/b'));
  assert.ok(!isPublishableTopic(''));
  assert.ok(!isPublishableTopic('a/+/b'));
  assert.ok(!isPublishableTopic('a/#'));
  assert.ok(!isPublishableTopic('a\u0000b'));
});
