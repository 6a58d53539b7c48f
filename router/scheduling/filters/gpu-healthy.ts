import type { Filter } from '../types.ts';

/** Drops nodes whose agent judged a GPU UNHEALTHY (DEGRADED ones stay; a scorer ranks them lower). */
export const gpuHealthy: Filter = {
  name: 'gpu-healthy',
  keep: (c) => c.status?.gpuVerdict !== 'UNHEALTHY',
};
