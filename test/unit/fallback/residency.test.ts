import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { dataMayLeave } from '../../../router/upstream/fallback-dispatch.ts';

describe('residency: may a request leave the cluster?', () => {
  const cfg = { residency: { keys: { 'sk-eu-only': 'cluster' as const, 'sk-free': 'any' as const }, default: 'any' as const } };

  it('follows the per-key map, then the default', () => {
    assert.equal(dataMayLeave(cfg, { apiKey: 'sk-eu-only' }), false);
    assert.equal(dataMayLeave(cfg, { apiKey: 'sk-free' }), true);
    assert.equal(dataMayLeave(cfg, { apiKey: 'sk-unknown' }), true);
    assert.equal(dataMayLeave(cfg, {}), true);
    assert.equal(dataMayLeave({ residency: { keys: {}, default: 'cluster' } }, {}), false);
  });

  it('a tenant that forbids hosted fallback never leaves, whatever the key map says', () => {
    assert.equal(dataMayLeave(cfg, { apiKey: 'sk-free', dataMayLeave: false }), false);
    assert.equal(dataMayLeave(cfg, { apiKey: 'sk-eu-only', dataMayLeave: true }), false, 'the stricter rule wins');
    assert.equal(dataMayLeave(cfg, { apiKey: 'sk-free', dataMayLeave: undefined }), true);
  });
});
