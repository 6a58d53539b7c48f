// A synthetic history sample for the capacity unit tests.
import type { NodeSample } from '../../../control-plane/capacity/types.ts';

export function sample(t: number, node: string, over: Partial<NodeSample> = {}): NodeSample {
  return {
    kind: 'raw',
    t,
    node,
    models: ['m'],
    connected: true,
    ready: true,
    draining: false,
    cordoned: false,
    gpuVerdict: 'HEALTHY',
    running: 2,
    waiting: 0,
    kvCacheUsage: 0.1,
    ttftSeconds: 0.1,
    prefixCacheHitRate: 0,
    maxNumSeqs: 8,
    requestsPerSecond: 1,
    promptTokensPerSecond: 10,
    generationTokensPerSecond: 20,
    gpus: [],
    ...over,
  };
}
