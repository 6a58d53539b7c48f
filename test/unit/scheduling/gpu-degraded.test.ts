import { it } from 'node:test';
import assert from 'node:assert/strict';
import { gpuDegraded } from '../../../router/scheduling/scorers/gpu-degraded.ts';
import { node } from './helpers.ts';

const req = { model: 'm', exclude: new Set<string>() };
it('gpu-degraded penalises a DEGRADED node', () => {
  const s = gpuDegraded(0.2);
  assert.equal(s.score(node('a'), req), 1);
  assert.equal(s.score(node('a', { verdict: 'DEGRADED' }), req), 0.2);
});
