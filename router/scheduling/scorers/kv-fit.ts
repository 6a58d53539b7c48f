import type { Scorer } from '../types.ts';

/**
 * KV-cache pressure and fit. A node whose free KV cache holds the prompt scores its free
 * fraction (1 - usage); one where the prompt does not fit the free part scores 0: the request
 * would queue behind running sequences or preempt one. Unknown capacity: judged on usage alone.
 */
export const kvFit: Scorer = {
  name: 'kv-fit',
  score: (c, req) => {
    const load = c.status?.load;
    if (!load) return 0;
    const usage = Math.min(1, Math.max(0, load.kvCacheUsage));
    const cap = Number(load.kvCacheCapacityTokens);
    if (cap > 0 && (req.promptTokens ?? 0) > cap * (1 - usage)) return 0;
    return 1 - usage;
  },
};
