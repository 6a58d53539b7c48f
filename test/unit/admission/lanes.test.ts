import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ApiError } from '../../../common/errors.ts';
import { apiKeyOf, lanePolicySchema, resolveLane } from '../../../router/admission/lanes.ts';
import { PROTOTYPE_KEYS } from '../../fuzz/generators.ts';

const GOLD = { keyId: '0123456789ab', tenantId: 't_gold' };
const BATCH = { keyId: 'ba7c0000000b', tenantId: 't_batch' };
const OTHER = { keyId: 'ffffffffffff', tenantId: 't_other' };
const policy = lanePolicySchema.parse({
  keys: { [GOLD.keyId]: 'critical', [BATCH.keyId]: 'sheddable' },
  tenants: { t_batch: 'critical', t_other: 'sheddable' },
  defaultMaxLane: 'standard',
});

describe('lanes', () => {
  it('a lane is what the request asks, capped by its key id, then its tenant id, then the default', () => {
    assert.deepEqual(resolveLane('critical', GOLD, policy, 'standard'), { lane: 'critical', capped: false });
    assert.deepEqual(resolveLane('critical', { ...GOLD, keyId: 'aaaaaaaaaaaa', tenantId: 't_none' }, policy, 'standard'), {
      lane: 'standard',
      capped: true,
    });
    assert.deepEqual(resolveLane('critical', undefined, policy, 'standard'), { lane: 'standard', capped: true });
    // The key's own entry wins over its tenant's.
    assert.deepEqual(resolveLane('standard', BATCH, policy, 'standard'), { lane: 'sheddable', capped: true });
    assert.deepEqual(resolveLane('critical', OTHER, policy, 'standard'), { lane: 'sheddable', capped: true });
    assert.deepEqual(resolveLane('sheddable', GOLD, policy, 'standard'), { lane: 'sheddable', capped: false });
    assert.deepEqual(resolveLane(undefined, GOLD, policy, 'standard'), { lane: 'standard', capped: false });
    // A tenant's maxLane (control-plane policy) is the cap, above the config's maps and default.
    assert.deepEqual(resolveLane('critical', OTHER, policy, 'standard', 'critical'), { lane: 'critical', capped: false });
    assert.deepEqual(resolveLane('critical', GOLD, policy, 'standard', 'sheddable'), { lane: 'sheddable', capped: true });
    assert.deepEqual(resolveLane(undefined, undefined, policy, 'standard', 'sheddable'), { lane: 'sheddable', capped: true });
    assert.equal(apiKeyOf('Bearer  key-gold '), 'key-gold');
    assert.equal(apiKeyOf('Basic xyz'), undefined);
  });

  it('a header naming no lane is a 400 naming the header (prototype member names included)', () => {
    for (const bad of ['bogus', '', ...PROTOTYPE_KEYS]) {
      assert.throws(
        () => resolveLane(bad, GOLD, policy, 'standard'),
        (e: unknown) => e instanceof ApiError && e.status === 400 && e.param === 'x-priority-lane' && !e.message.includes(bad || '\0'),
        bad,
      );
    }
  });

  it('a caller whose key id or tenant id is a prototype member name gets the default cap, not a crash', () => {
    for (const name of PROTOTYPE_KEYS) {
      assert.deepEqual(resolveLane('critical', { keyId: name, tenantId: name }, policy, 'standard'), { lane: 'standard', capped: true });
    }
  });

  it('the config refers to key ids and tenant ids; a raw API key fails to load, without echoing it', () => {
    const raw = 'sk-icp-0123456789ab-' + 'S'.repeat(43);
    const r = lanePolicySchema.safeParse({ keys: { [raw]: 'critical' } });
    assert.equal(r.success, false);
    const text = JSON.stringify(r.error!.issues);
    assert.match(text, /raw API key: refer to it by its key id/);
    assert.ok(!text.includes('S'.repeat(10)), 'the secret is not in the error');
    assert.equal(lanePolicySchema.safeParse({ keys: { 'sk-ops-pager': 'critical' } }).success, false);
    assert.equal(lanePolicySchema.safeParse({ tenants: { 'sk-ops-pager': 'critical' } }).success, false);
    assert.equal(lanePolicySchema.safeParse({ keys: { 'not-a-key-id': 'critical' } }).success, false);
    assert.equal(lanePolicySchema.safeParse({ keys: { '0123456789ab': 'critical' }, tenants: { t_1: 'sheddable' } }).success, true);
  });
});
