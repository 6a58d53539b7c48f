import type { Scorer } from '../types.ts';

/**
 * Least outstanding requests: fewer generations in flight from this router scores higher. This
 * router's own count has no status lag, so it corrects load signals between two statuses.
 * `scale` is the in-flight count that halves the score.
 */
export function inFlight(scale = 8): Scorer {
  return {
    name: 'in-flight',
    score: (c) => 1 / (1 + c.inFlight / scale),
  };
}
