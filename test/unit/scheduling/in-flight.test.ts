import { it } from 'node:test';
import assert from 'node:assert/strict';
import { inFlight } from '../../../router/scheduling/scorers/in-flight.ts';
import { node } from './helpers.ts';

const req = { model: 'm', exclude: new Set<string>() };
it('in-flight: fewer outstanding requests from this router score higher; halves at scale', () => {
  const s = inFlight(8);
  assert.equal(s.score(node('a', {}, { inFlight: 0 }), req), 1);
  assert.equal(s.score(node('a', {}, { inFlight: 8 }), req), 0.5);
  assert.ok(s.score(node('a', {}, { inFlight: 1 }), req) > s.score(node('b', {}, { inFlight: 5 }), req));
});
