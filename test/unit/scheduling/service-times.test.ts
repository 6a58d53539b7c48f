import { it } from 'node:test';
import assert from 'node:assert/strict';
import { ServiceTimes } from '../../../router/scheduling/service-times.ts';

it('service times: per-node EWMA of slot time; ignores nonsense; forget()', () => {
  const s = new ServiceTimes(0.5);
  assert.equal(s.get('a'), undefined);
  s.observe('a', 4);
  assert.equal(s.get('a'), 4);
  s.observe('a', 8);
  assert.equal(s.get('a'), 6);
  s.observe('a', NaN);
  s.observe('a', -1);
  assert.equal(s.get('a'), 6);
  assert.equal(s.get('b'), undefined);
  s.forget('a');
  assert.equal(s.get('a'), undefined);
});
