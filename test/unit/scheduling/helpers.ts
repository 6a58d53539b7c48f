import type { Candidate } from '../../../router/scheduling/types.ts';

export interface NodeOver {
  running?: number;
  waiting?: number;
  ttft?: number;
  maxNumSeqs?: number;
  ready?: boolean;
  draining?: boolean;
  models?: string[];
  kvUsage?: number;
  kvCapacity?: number;
  verdict?: 'HEALTHY' | 'DEGRADED' | 'UNHEALTHY';
}

export function node(id: string, over: NodeOver = {}, c: Partial<Candidate> = {}): Candidate {
  return {
    id,
    status: {
      nodeId: id,
      seq: '1',
      timestampMs: '0',
      ready: over.ready ?? true,
      notReadyReason: '',
      draining: over.draining ?? false,
      models: (over.models ?? ['m']).map((name) => ({ name, engineKind: 'vllm', maxContext: 4096 })),
      load: {
        running: over.running ?? 0,
        waiting: over.waiting ?? 0,
        kvCacheUsage: over.kvUsage ?? 0,
        ttftRecentSeconds: over.ttft ?? 0.1,
        prefixCacheHitRate: 0,
        maxNumSeqs: over.maxNumSeqs ?? 0,
        kvCacheCapacityTokens: String(over.kvCapacity ?? 0),
      },
      gpuVerdict: over.verdict ?? 'HEALTHY',
      gpus: [],
      heartbeatIntervalMs: 500,
    },
    statusAgeMs: 100,
    connected: true,
    cordoned: false,
    inFlight: 0,
    dispatchedSinceStatus: 0,
    ...c,
  };
}
