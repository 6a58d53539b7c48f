import { it } from 'node:test';
import assert from 'node:assert/strict';
import { freeSlots } from '../../../router/scheduling/scorers/free-slots.ts';
import { node } from './helpers.ts';

const req = { model: 'm', exclude: new Set<string>() };
it('free-slots: the free fraction of max_num_seqs; 0 when full or queued', () => {
  assert.equal(freeSlots.score(node('a', { maxNumSeqs: 8 }, { inFlight: 2 }), req), 0.75);
  assert.equal(freeSlots.score(node('a', { maxNumSeqs: 8, running: 8 }, { inFlight: 8 }), req), 0);
  assert.equal(freeSlots.score(node('a', { maxNumSeqs: 8, running: 9 }, { inFlight: 9 }), req), 0);
  assert.ok(
    freeSlots.score(node('big', { maxNumSeqs: 64 }, { inFlight: 8 }), req) >
      freeSlots.score(node('small', { maxNumSeqs: 16 }, { inFlight: 8 }), req),
  );
});
