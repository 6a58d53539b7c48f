import { it } from 'node:test';
import assert from 'node:assert/strict';
import { roundRobinPicker } from '../../../router/scheduling/pickers/round-robin.ts';
import { node } from './helpers.ts';

it('round-robin cycles through candidates whatever their scores', () => {
  const p = roundRobinPicker();
  const cands = [node('b'), node('a'), node('c')].map((candidate, i) => ({ candidate, score: i }));
  assert.deepEqual(
    [1, 2, 3, 4].map(() => p.pick(cands)!.id),
    ['a', 'b', 'c', 'a'],
  );
  assert.equal(p.pick([]), undefined);
});
