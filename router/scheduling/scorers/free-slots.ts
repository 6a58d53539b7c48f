import type { Scorer } from '../types.ts';
import { nodeLoad } from '../saturation.ts';

/**
 * Batch headroom: the fraction of the node's max_num_seqs still free (0 when full). Spreads load
 * so every node keeps room for the next request, and a big node takes more than a small one.
 */
export const freeSlots: Scorer = {
  name: 'free-slots',
  score: (c) => {
    const l = nodeLoad(c);
    return Math.max(0, l.free) / l.slots;
  },
};
