// Parses a TGI (text-generation-inference) /metrics scrape into the same engine-neutral snapshot
// the vLLM parser produces, so the agent publishes one kind of load reading for either engine.
//
// TGI's names come from router/src/server.rs (describe_*) and backends/v3/src/{backend,queue,lib}.rs
// (huggingface/text-generation-inference at db931fcf); they are exported by metrics-exporter-prometheus,
// so counters have NO `_total` suffix and durations are in seconds without a `_seconds` suffix.
// Most TGI series carry no labels; the batch ones carry method="prefill"|"decode".
//
// Mapping (snapshot field <- TGI):
//   running               <- tgi_batch_current_size (gauge: requests in the running batch)
//   waiting               <- tgi_queue_size (gauge: requests queued, not yet batched)
//   kvCacheUsage          <- tgi_batch_current_max_tokens / tgi_batch_max_total_tokens. TGI admits
//                            by a token budget: each request reserves input + max_new_tokens slots
//                            of the KV cache, and max_batch_total_tokens (measured at warm-up) is
//                            the whole cache. So this is the RESERVED share, not the used share
//                            (vLLM's kv_cache_usage_perc counts blocks actually held); it runs
//                            higher than vLLM's for the same load. tgi_batch_max_total_tokens
//                            exists since TGI 2.3.x (2024-10); without it the value is 0.
//   promptTokensTotal     <- tgi_request_input_length_sum (histogram, recorded at validation)
//   generationTokensTotal <- tgi_request_generated_tokens_sum (recorded when a request SUCCEEDS,
//                            so tokens of running or failed requests are missing until then)
//   ttft                  <- no TGI equivalent. Estimated per request as queue time + mean prefill:
//                            sum = tgi_request_queue_duration_sum
//                                  + tgi_request_queue_duration_count x mean(tgi_batch_inference_duration{method="prefill"})
//                            count = tgi_request_queue_duration_count. Queue time is recorded when
//                            a request finishes, so this estimate lags by one request duration.
//   interTokenLatency     <- tgi_request_mean_time_per_token_duration (mean time per output token,
//                            one observation per request)
//   e2eLatency            <- tgi_request_duration
//   prefixCacheQueries/Hits, preemptionsTotal: no TGI metric; always 0.
//   modelNames            <- always [] (TGI's series carry no model label; the model is in /info).
//
// Policy as in vllm-metrics.ts: never throws; unreadable input yields zeros.
import { parseSamples, type Sample } from '../../common/prometheus-text.ts';
import type { EngineMetricsSnapshot, HistogramSummary } from './vllm-metrics.ts';
import { own } from '../../common/own.ts';

/** The TGI series this parser reads, in one place (the simulator exports the same names). */
export const TGI_METRICS = {
  running: 'tgi_batch_current_size',
  waiting: 'tgi_queue_size',
  batchMaxTokens: 'tgi_batch_current_max_tokens',
  totalTokenBudget: 'tgi_batch_max_total_tokens',
  inputLength: 'tgi_request_input_length',
  generatedTokens: 'tgi_request_generated_tokens',
  queueDuration: 'tgi_request_queue_duration',
  batchInferenceDuration: 'tgi_batch_inference_duration',
  meanTimePerToken: 'tgi_request_mean_time_per_token_duration',
  requestDuration: 'tgi_request_duration',
} as const;

function sum(samples: Sample[] | undefined, labels: Record<string, string> = {}): number {
  if (!samples) return 0;
  let total = 0;
  for (const s of samples) {
    if (!Number.isFinite(s.value)) continue;
    if (Object.entries(labels).every(([k, v]) => own(s.labels, k) === v)) total += s.value;
  }
  return total;
}

export function parseTgiMetrics(text: string): EngineMetricsSnapshot {
  const byName = new Map<string, Sample[]>();
  for (const s of parseSamples(text)) {
    if (!s.name.startsWith('tgi_')) continue;
    let list = byName.get(s.name);
    if (!list) byName.set(s.name, (list = []));
    list.push(s);
  }
  const get = (name: string, labels?: Record<string, string>) => sum(byName.get(name), labels);
  const hist = (base: string): HistogramSummary => ({ sum: get(`${base}_sum`), count: get(`${base}_count`) });
  const n = TGI_METRICS;

  const budget = get(n.totalTokenBudget);
  const kv = budget > 0 ? Math.min(1, Math.max(0, get(n.batchMaxTokens) / budget)) : 0;

  const queue = hist(n.queueDuration);
  const prefill = {
    sum: get(`${n.batchInferenceDuration}_sum`, { method: 'prefill' }),
    count: get(`${n.batchInferenceDuration}_count`, { method: 'prefill' }),
  };
  const meanPrefill = prefill.count > 0 ? prefill.sum / prefill.count : 0;

  return {
    running: get(n.running),
    waiting: get(n.waiting),
    kvCacheUsage: kv,
    promptTokensTotal: get(`${n.inputLength}_sum`),
    generationTokensTotal: get(`${n.generatedTokens}_sum`),
    prefixCacheQueriesTotal: 0,
    prefixCacheHitsTotal: 0,
    preemptionsTotal: 0,
    ttft: { sum: queue.sum + queue.count * meanPrefill, count: queue.count },
    interTokenLatency: hist(n.meanTimePerToken),
    e2eLatency: hist(n.requestDuration),
    modelNames: [],
  };
}
