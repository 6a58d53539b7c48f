import type { Candidate, Scorer } from '../types.ts';

/** Floor for the per-request cost estimate when a node has not reported a TTFT yet. */
const DEFAULT_TTFT_SECONDS = 0.05;

/**
 * Predicted time until a new request would see its first token, in seconds: everything queued
 * ahead of it (the node's waiting queue plus what this router sent since the last status) times
 * the node's recent TTFT. A full batch (running at max_num_seqs) counts as one more queue slot.
 */
export function predictedWaitSeconds(c: Candidate): number {
  const load = c.status?.load;
  const ttft = load && load.ttftRecentSeconds > 0 ? load.ttftRecentSeconds : DEFAULT_TTFT_SECONDS;
  const waiting = (load?.waiting ?? 0) + c.dispatchedSinceStatus;
  const batchFull = load && load.maxNumSeqs > 0 && load.running >= load.maxNumSeqs ? 1 : 0;
  return ttft * (1 + waiting + batchFull);
}

/** Higher for shorter predicted waits; 1 for an idle node with an instant TTFT. */
export const predictedWait: Scorer = {
  name: 'predicted-wait',
  score: (c) => 1 / (1 + predictedWaitSeconds(c)),
};
