import type { Scorer } from '../types.ts';

/**
 * Penalises nodes with a DEGRADED GPU verdict (throttling, correctable-error storms, hot): they
 * still serve, but a healthy peer with similar load should win. UNHEALTHY ones never get here
 * (`gpu-healthy` filter).
 */
export function gpuDegraded(degradedScore = 0): Scorer {
  return {
    name: 'gpu-degraded',
    score: (c) => (c.status?.gpuVerdict === 'DEGRADED' ? degradedScore : 1),
  };
}
