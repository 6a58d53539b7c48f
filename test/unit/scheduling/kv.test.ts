import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { kvCapacity } from '../../../router/scheduling/filters/kv-capacity.ts';
import { kvFit } from '../../../router/scheduling/scorers/kv-fit.ts';
import { node } from './helpers.ts';

const req = (promptTokens: number) => ({ model: 'm', exclude: new Set<string>(), promptTokens });

describe('kv-capacity filter', () => {
  it('drops a node whose whole KV cache cannot hold the prompt; keeps unknown capacity', () => {
    assert.equal(kvCapacity.keep(node('a', { kvCapacity: 4_096 }), req(5_000)), false);
    assert.equal(kvCapacity.keep(node('a', { kvCapacity: 8_192 }), req(5_000)), true);
    assert.equal(kvCapacity.keep(node('a', { kvCapacity: 0 }), req(50_000)), true);
  });
});

describe('kv-fit scorer', () => {
  it('scores the free fraction when the prompt fits the free cache', () => {
    assert.ok(Math.abs(kvFit.score(node('a', { kvCapacity: 10_000, kvUsage: 0.3 }), req(1_000)) - 0.7) < 1e-9);
  });
  it('scores 0 when the prompt does not fit the free part', () => {
    assert.equal(kvFit.score(node('a', { kvCapacity: 10_000, kvUsage: 0.95 }), req(1_000)), 0);
  });
  it('prefers the emptier cache', () => {
    assert.ok(
      kvFit.score(node('a', { kvCapacity: 10_000, kvUsage: 0.1 }), req(10)) >
        kvFit.score(node('b', { kvCapacity: 10_000, kvUsage: 0.8 }), req(10)),
    );
  });
});
