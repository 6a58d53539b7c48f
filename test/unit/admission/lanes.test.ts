import { it } from 'node:test';
import assert from 'node:assert/strict';
import { apiKeyOf, resolveLane } from '../../../router/admission/lanes.ts';

const policy = { keys: { 'key-gold': 'critical' as const, 'key-batch': 'sheddable' as const }, defaultMaxLane: 'standard' as const };
it('a lane is what the request asks, capped by its key, defaulting when absent or unknown', () => {
  assert.deepEqual(resolveLane('critical', 'key-gold', policy, 'standard'), { lane: 'critical', capped: false });
  assert.deepEqual(resolveLane('critical', 'key-other', policy, 'standard'), { lane: 'standard', capped: true });
  assert.deepEqual(resolveLane('critical', undefined, policy, 'standard'), { lane: 'standard', capped: true });
  assert.deepEqual(resolveLane('standard', 'key-batch', policy, 'standard'), { lane: 'sheddable', capped: true });
  assert.deepEqual(resolveLane('sheddable', 'key-gold', policy, 'standard'), { lane: 'sheddable', capped: false });
  assert.deepEqual(resolveLane('bogus', 'key-gold', policy, 'standard'), { lane: 'standard', capped: false });
  // A tenant's maxLane (control-plane policy) is the cap, above the config's key map and default.
  assert.deepEqual(resolveLane('critical', 'key-other', policy, 'standard', 'critical'), { lane: 'critical', capped: false });
  assert.deepEqual(resolveLane('critical', 'key-gold', policy, 'standard', 'sheddable'), { lane: 'sheddable', capped: true });
  assert.deepEqual(resolveLane(undefined, undefined, policy, 'standard', 'sheddable'), { lane: 'sheddable', capped: true });
  assert.equal(apiKeyOf('Bearer  key-gold '), 'key-gold');
  assert.equal(apiKeyOf('Basic xyz'), undefined);
});
