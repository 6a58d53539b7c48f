import { it } from 'node:test';
import assert from 'node:assert/strict';
import { bestWaitSeconds, DEFAULT_MAX_NUM_SEQS, nodeLoad } from '../../../router/scheduling/saturation.ts';
import { node } from './helpers.ts';

it("saturation: this router's in-flight count has no lag; other routers' work comes from the status", () => {
  // status: 6 running, of which 4 were this router's at status time; 3 more sent since
  const l = nodeLoad(node('a', { running: 6, maxNumSeqs: 8 }, { inFlight: 7, inFlightAtStatus: 4, dispatchedSinceStatus: 3 }));
  assert.equal(l.occupied, 9); // 7 mine + 2 foreign
  assert.equal(l.free, -1);
  assert.equal(nodeLoad(node('a', { running: 2, maxNumSeqs: 8 }, { inFlight: 2, inFlightAtStatus: 2 })).free, 6);
});

it('saturation: without the in-flight count at status time, dispatches since the status bound it', () => {
  // 5 in flight, 2 of them sent since the status: 3 were mine at status; 4 reported -> 1 foreign
  assert.equal(nodeLoad(node('a', { running: 4, maxNumSeqs: 8 }, { inFlight: 5, dispatchedSinceStatus: 2 })).occupied, 6);
});

it('saturation: a queue in the engine at status time means no free slot (KV-bound engine)', () => {
  const l = nodeLoad(node('a', { running: 3, waiting: 2, maxNumSeqs: 8 }, { inFlight: 5, inFlightAtStatus: 5, serviceSeconds: 8 }));
  assert.equal(l.free, -2);
  assert.equal(l.waitSeconds, 3 / (8 / 8));
});

it('saturation: drain rate is max_num_seqs over the mean slot time; default slots when unreported', () => {
  assert.equal(nodeLoad(node('a', { maxNumSeqs: 32 }, { serviceSeconds: 8 })).drainPerSecond, 4);
  assert.equal(nodeLoad(node('a')).slots, DEFAULT_MAX_NUM_SEQS);
  assert.equal(nodeLoad(node('a')).drainPerSecond, undefined);
});

it("saturation: the pool's signal is the best node's wait; Infinity with no node", () => {
  const full = node('a', { running: 8, maxNumSeqs: 8 }, { inFlight: 8, serviceSeconds: 4 });
  const free = node('b', { running: 1, maxNumSeqs: 8 }, { inFlight: 1 });
  assert.equal(bestWaitSeconds([full]), 0.5);
  assert.equal(bestWaitSeconds([full, free]), 0);
  assert.equal(bestWaitSeconds([]), Infinity);
});
