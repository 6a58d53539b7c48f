// What the control plane records about a node: one sample per node per sampling tick (raw), and
// 1-minute buckets of them (downsampled). Plain JSON records: they go to a file (or Redis) as is.

export type Verdict = 'HEALTHY' | 'DEGRADED' | 'UNHEALTHY' | 'UNKNOWN';

export interface GpuSample {
  index: number;
  uuid: string;
  name: string;
  verdict: Verdict;
  reasons: string[];
  /** nvidia-smi readings that matter for capacity; absent when the GPU does not report one. */
  utilization?: number; // 0..1
  memoryUsedBytes?: number;
  memoryTotalBytes?: number;
  temperatureC?: number;
  powerW?: number;
}

export interface NodeSample {
  kind: 'raw';
  t: number; // ms, control-plane clock
  node: string;
  models: string[];
  /** WatchStatus stream open and the last status fresh. */
  connected: boolean;
  ready: boolean;
  draining: boolean;
  cordoned: boolean;
  gpuVerdict: Verdict;
  running: number;
  waiting: number;
  kvCacheUsage: number;
  /** Engine-side mean TTFT over the agent's last scrape window; 0 = no first token in it. */
  ttftSeconds: number;
  prefixCacheHitRate: number;
  maxNumSeqs: number;
  /** From the agent's /metrics counters (rates since the previous sample); absent without a metrics URL. */
  requestsPerSecond?: number;
  promptTokensPerSecond?: number;
  generationTokensPerSecond?: number;
  gpus: GpuSample[];
}

/** Numeric fields a bucket averages (and keeps the max of). */
export const NUMERIC_FIELDS = [
  'running',
  'waiting',
  'kvCacheUsage',
  'ttftSeconds',
  'prefixCacheHitRate',
  'requestsPerSecond',
  'promptTokensPerSecond',
  'generationTokensPerSecond',
] as const;
export type NumericField = (typeof NUMERIC_FIELDS)[number];

export interface NodeBucket {
  kind: 'bucket';
  t: number; // bucket start
  durationMs: number;
  node: string;
  models: string[];
  samples: number;
  /** Share of the bucket's samples that were connected, ready, draining, cordoned (0..1). */
  connected: number;
  ready: number;
  draining: number;
  cordoned: number;
  /** Worst GPU verdict seen in the bucket and the reasons behind it. */
  gpuVerdict: Verdict;
  gpuReasons: string[];
  maxNumSeqs: number;
  mean: Partial<Record<NumericField, number>>;
  max: Partial<Record<NumericField, number>>;
  /** Mean of samples whose TTFT was measured (>0): an idle sample says nothing about latency. */
  ttftSecondsBusy?: number;
  gpus: GpuSample[]; // readings averaged, verdict the worst
}

export type HistoryRecord = NodeSample | NodeBucket;

const ORDER: Record<Verdict, number> = { HEALTHY: 0, UNKNOWN: 1, DEGRADED: 2, UNHEALTHY: 3 };
export function worstVerdict(a: Verdict, b: Verdict): Verdict {
  return ORDER[b] > ORDER[a] ? b : a;
}
export function toVerdict(v: unknown): Verdict {
  return v === 'HEALTHY' || v === 'DEGRADED' || v === 'UNHEALTHY' ? v : 'UNKNOWN';
}
