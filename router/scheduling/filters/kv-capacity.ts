import type { Filter } from '../types.ts';

/**
 * Drops nodes whose whole KV cache could never hold the prompt: the engine would reject it (or
 * thrash). Nodes that do not report a capacity are kept. Whether the prompt fits the cache's
 * *free* part right now is a matter of degree, scored by `kv-fit`.
 */
export const kvCapacity: Filter = {
  name: 'kv-capacity',
  keep: (c, req) => {
    const cap = Number(c.status?.load?.kvCacheCapacityTokens ?? 0);
    return !(cap > 0 && (req.promptTokens ?? 0) + 1 > cap);
  },
};
