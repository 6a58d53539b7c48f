// vLLM's /metrics, declared in one place with vLLM's own names, help texts and bucket bounds
// (read from vllm/v1/metrics/loggers.py; see test/fixtures/vllm/SOURCES.md). Every series
// carries model_name and engine="0", as vLLM >= 0.10 does with one engine core.
//
// 'current' naming is vLLM >= 0.12 (kv_cache_usage_perc, inter_token_latency_seconds,
// prefix_cache_*); 'legacy' is the 0.8-0.10 era (gpu_cache_usage_perc,
// time_per_output_token_seconds, gpu_prefix_cache_*), so the agent can be shown to read both.
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { EngineObserver, EngineState } from './batching.ts';

export type MetricsNaming = 'current' | 'legacy';

export const TTFT_BUCKETS = [
  0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
];
export const ITL_BUCKETS = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0];
export const REQUEST_LATENCY_BUCKETS = [
  0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0,
];

export function metricNames(naming: MetricsNaming) {
  const legacy = naming === 'legacy';
  return {
    running: 'vllm:num_requests_running',
    waiting: 'vllm:num_requests_waiting',
    kvUsage: legacy ? 'vllm:gpu_cache_usage_perc' : 'vllm:kv_cache_usage_perc',
    promptTokens: 'vllm:prompt_tokens_total',
    generationTokens: 'vllm:generation_tokens_total',
    prefixQueries: legacy ? 'vllm:gpu_prefix_cache_queries_total' : 'vllm:prefix_cache_queries_total',
    prefixHits: legacy ? 'vllm:gpu_prefix_cache_hits_total' : 'vllm:prefix_cache_hits_total',
    preemptions: 'vllm:num_preemptions_total',
    requestSuccess: 'vllm:request_success_total',
    ttft: 'vllm:time_to_first_token_seconds',
    itl: legacy ? 'vllm:time_per_output_token_seconds' : 'vllm:inter_token_latency_seconds',
    e2e: 'vllm:e2e_request_latency_seconds',
    queue: 'vllm:request_queue_time_seconds',
  } as const;
}

export interface SimMetrics {
  registry: Registry;
  observer: EngineObserver;
}

export function createSimMetrics(
  model: string,
  naming: MetricsNaming,
  engine: () => { state(): EngineState; kvCacheUsage(): number },
): SimMetrics {
  const registry = new Registry();
  const n = metricNames(naming);
  const labelNames = ['model_name', 'engine'] as const;
  const labels = { model_name: model, engine: '0' };
  const registers = [registry];

  new Gauge({
    name: n.running,
    help: 'Number of requests in model execution batches.',
    labelNames,
    registers,
    collect() {
      this.set(labels, engine().state().running);
    },
  });
  new Gauge({
    name: n.waiting,
    help: 'Number of requests waiting to be processed.',
    labelNames,
    registers,
    collect() {
      this.set(labels, engine().state().waiting);
    },
  });
  new Gauge({
    name: n.kvUsage,
    help: naming === 'legacy' ? 'GPU KV-cache usage. 1 means 100 percent usage.' : 'KV-cache usage. 1 means 100 percent usage.',
    labelNames,
    registers,
    collect() {
      this.set(labels, engine().kvCacheUsage());
    },
  });
  const counter = (name: string, help: string) => {
    const c = new Counter({ name, help, labelNames, registers });
    c.inc(labels, 0); // vLLM exposes its counters at 0 from the start
    return c;
  };
  const prompt = counter(n.promptTokens, 'Number of prefill tokens processed.');
  const generation = counter(n.generationTokens, 'Number of generation tokens processed.');
  const prefixQueries = counter(n.prefixQueries, 'Prefix cache queries, in terms of number of queried tokens.');
  const prefixHits = counter(n.prefixHits, 'Prefix cache hits, in terms of number of cached tokens.');
  const preemptions = counter(n.preemptions, 'Cumulative number of preemption from the engine.');
  const success = new Counter({
    name: n.requestSuccess,
    help: 'Count of successfully processed requests.',
    labelNames: ['model_name', 'engine', 'finished_reason'],
    registers,
  });
  for (const r of ['stop', 'length', 'abort']) success.inc({ ...labels, finished_reason: r }, 0);

  const histogram = (name: string, help: string, buckets: number[]) => new Histogram({ name, help, labelNames, buckets, registers });
  const ttft = histogram(n.ttft, 'Histogram of time to first token in seconds.', TTFT_BUCKETS);
  const itl = histogram(
    n.itl,
    naming === 'legacy' ? 'Histogram of time per output token in seconds.' : 'Histogram of inter-token latency in seconds.',
    ITL_BUCKETS,
  );
  const e2e = histogram(n.e2e, 'Histogram of e2e request latency in seconds.', REQUEST_LATENCY_BUCKETS);
  const queue = histogram(n.queue, 'Histogram of time spent in WAITING phase for request.', REQUEST_LATENCY_BUCKETS);

  const observer: EngineObserver = {
    onPromptTokens: (t) => prompt.inc(labels, t),
    onGenerationToken: () => generation.inc(labels, 1),
    onPrefixCache: (q, h) => {
      prefixQueries.inc(labels, q);
      prefixHits.inc(labels, h);
    },
    onPreemption: () => preemptions.inc(labels, 1),
    onFirstToken: (t, q) => {
      ttft.observe(labels, t);
      queue.observe(labels, q);
    },
    onInterToken: (t) => itl.observe(labels, t),
    onFinish: (reason, e2eS) => {
      success.inc({ ...labels, finished_reason: reason }, 1);
      if (reason !== 'abort') e2e.observe(labels, e2eS);
    },
  };
  return { registry, observer };
}
