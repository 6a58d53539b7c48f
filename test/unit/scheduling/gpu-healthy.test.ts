import { it } from 'node:test';
import assert from 'node:assert/strict';
import { gpuHealthy } from '../../../router/scheduling/filters/gpu-healthy.ts';
import { node } from './helpers.ts';

const req = { model: 'm', exclude: new Set<string>() };
it('gpu-healthy drops UNHEALTHY nodes and keeps HEALTHY and DEGRADED ones', () => {
  assert.equal(gpuHealthy.keep(node('a', { verdict: 'UNHEALTHY' }), req), false);
  assert.equal(gpuHealthy.keep(node('a', { verdict: 'DEGRADED' }), req), true);
  assert.equal(gpuHealthy.keep(node('a', { verdict: 'HEALTHY' }), req), true);
});
