import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { dataMayLeave } from '../../../router/upstream/fallback-dispatch.ts';
import { fallbackConfigSchema } from '../../../router/upstream/fallback-config.ts';
import { PROTOTYPE_KEYS } from '../../fuzz/generators.ts';

describe('residency: may a request leave the cluster?', () => {
  const cfg = fallbackConfigSchema.parse({
    residency: { keys: { '00000000e0e0': 'cluster', '00000000f0f0': 'any' }, tenants: { t_eu: 'cluster' }, default: 'any' },
  });
  const eu = { keyId: '00000000e0e0', tenantId: 't_x' };
  const free = { keyId: '00000000f0f0', tenantId: 't_eu' };

  it('follows the key id, then the tenant id, then the default; no caller (auth off) gets the default', () => {
    assert.equal(dataMayLeave(cfg, { caller: eu }), false);
    assert.equal(dataMayLeave(cfg, { caller: free }), true, "the key's own entry wins over its tenant's");
    assert.equal(dataMayLeave(cfg, { caller: { keyId: '111111111111', tenantId: 't_eu' } }), false);
    assert.equal(dataMayLeave(cfg, { caller: { keyId: '111111111111', tenantId: 't_x' } }), true);
    assert.equal(dataMayLeave(cfg, {}), true);
    assert.equal(dataMayLeave(fallbackConfigSchema.parse({ residency: { default: 'cluster' } }), {}), false);
  });

  it('a tenant that forbids hosted fallback never leaves, whatever the maps say', () => {
    assert.equal(dataMayLeave(cfg, { caller: free, dataMayLeave: false }), false);
    assert.equal(dataMayLeave(cfg, { caller: eu, dataMayLeave: true }), false, 'the stricter rule wins');
    assert.equal(dataMayLeave(cfg, { caller: free, dataMayLeave: undefined }), true);
  });

  it('prototype member names as ids find nothing: the default holds', () => {
    const strict = fallbackConfigSchema.parse({ residency: { default: 'cluster' } });
    for (const name of PROTOTYPE_KEYS) assert.equal(dataMayLeave(strict, { caller: { keyId: name, tenantId: name } }), false, name);
  });

  it('a raw API key in residency.keys fails to load, saying to use the key id', () => {
    const r = fallbackConfigSchema.safeParse({ residency: { keys: { 'sk-eu-customer-key': 'cluster' } } });
    assert.equal(r.success, false);
    assert.match(JSON.stringify(r.error!.issues), /looks like a raw API key: refer to it by its key id/);
    assert.equal(fallbackConfigSchema.safeParse({ residency: { tenants: { 'sk-icp-aaaaaaaaaaaa-x': 'cluster' } } }).success, false);
  });
});
