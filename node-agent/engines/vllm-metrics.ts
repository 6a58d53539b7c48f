// Parses a vLLM /metrics scrape (Prometheus text exposition format 0.0.4) into the load signals
// the agent publishes.
//
// Sample lines are read by common/prometheus-text.ts (which says why not a library).
//
// Policy: never throws. Unreadable or empty input yields a snapshot of zeros, so a bad scrape
// can never crash the agent; callers that need to tell "no data" apart look at modelNames
// (empty when no vllm: series were found).
//
// Names: new and old are both read (vLLM renamed them; see test/fixtures/vllm/metric-names.md):
//   kv_cache_usage_perc | gpu_cache_usage_perc, inter_token_latency_seconds |
//   time_per_output_token_seconds, prefix_cache_{queries,hits}_total | gpu_prefix_cache_*.
// When a server exposes both (0.9-0.11 do, during deprecation), the new name wins; the two
// are the same quantity, so they are never added together.
// Several engine cores (data parallel) expose one series per `engine` label: counters, gauges
// and histogram sums/counts are summed across engines, except KV-cache use, which is averaged.
// `*_created` families (prometheus_client's creation timestamps) are ignored.
import { parseSamples, type Sample } from '../../common/prometheus-text.ts';

export interface HistogramSummary {
  sum: number;
  count: number;
}
export interface EngineMetricsSnapshot {
  running: number;
  waiting: number;
  kvCacheUsage: number; // 0..1
  promptTokensTotal: number;
  generationTokensTotal: number;
  prefixCacheQueriesTotal: number;
  prefixCacheHitsTotal: number;
  preemptionsTotal: number;
  ttft: HistogramSummary;
  interTokenLatency: HistogramSummary;
  e2eLatency: HistogramSummary;
  modelNames: string[];
}

type Agg = 'sum' | 'mean';

/** Aggregate the first of `names` that has any sample (new name before old). */
function pick(byName: Map<string, Sample[]>, names: string[], agg: Agg): number {
  for (const n of names) {
    const ss = byName.get(n);
    if (!ss || ss.length === 0) continue;
    const vals = ss.map((s) => s.value).filter((v) => Number.isFinite(v));
    if (vals.length === 0) return 0;
    const total = vals.reduce((a, b) => a + b, 0);
    return agg === 'sum' ? total : total / vals.length;
  }
  return 0;
}

function histogram(byName: Map<string, Sample[]>, bases: string[]): HistogramSummary {
  for (const b of bases) {
    if (!byName.has(`${b}_sum`) && !byName.has(`${b}_count`)) continue;
    return { sum: pick(byName, [`${b}_sum`], 'sum'), count: pick(byName, [`${b}_count`], 'sum') };
  }
  return { sum: 0, count: 0 };
}

export function parseVllmMetrics(text: string): EngineMetricsSnapshot {
  const byName = new Map<string, Sample[]>();
  const models = new Set<string>();
  for (const s of parseSamples(text)) {
    if (!s.name.startsWith('vllm:')) continue;
    if (s.labels.model_name !== undefined) models.add(s.labels.model_name);
    let list = byName.get(s.name);
    if (!list) byName.set(s.name, (list = []));
    list.push(s);
  }
  return {
    running: pick(byName, ['vllm:num_requests_running'], 'sum'),
    waiting: pick(byName, ['vllm:num_requests_waiting'], 'sum'),
    kvCacheUsage: pick(byName, ['vllm:kv_cache_usage_perc', 'vllm:gpu_cache_usage_perc'], 'mean'),
    promptTokensTotal: pick(byName, ['vllm:prompt_tokens_total'], 'sum'),
    generationTokensTotal: pick(byName, ['vllm:generation_tokens_total'], 'sum'),
    prefixCacheQueriesTotal: pick(byName, ['vllm:prefix_cache_queries_total', 'vllm:gpu_prefix_cache_queries_total'], 'sum'),
    prefixCacheHitsTotal: pick(byName, ['vllm:prefix_cache_hits_total', 'vllm:gpu_prefix_cache_hits_total'], 'sum'),
    preemptionsTotal: pick(byName, ['vllm:num_preemptions_total'], 'sum'),
    ttft: histogram(byName, ['vllm:time_to_first_token_seconds']),
    interTokenLatency: histogram(byName, ['vllm:inter_token_latency_seconds', 'vllm:time_per_output_token_seconds']),
    e2eLatency: histogram(byName, ['vllm:e2e_request_latency_seconds']),
    modelNames: [...models].sort(),
  };
}
