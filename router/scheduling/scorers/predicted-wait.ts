import type { Candidate, Scorer } from '../types.ts';
import { nodeLoad } from '../saturation.ts';

/**
 * Predicted time until a new request gets a batch slot on the node, in seconds (saturation.ts):
 * 0 while the batch has a free slot; otherwise the requests queued ahead of it over the node's
 * drain rate. Uses this router's in-flight count (no status lag) plus other routers' work.
 */
export function predictedWaitSeconds(c: Candidate): number {
  return nodeLoad(c).waitSeconds;
}

/**
 * 1 for a node with a free batch slot; below 0.5 and falling with the predicted wait for a full
 * one, so a free slot anywhere beats any queue (join the shortest expected delay).
 */
export const predictedWait: Scorer = {
  name: 'predicted-wait',
  score: (c) => {
    const w = predictedWaitSeconds(c);
    return w <= 0 ? 1 : 0.5 / (1 + w);
  },
};
