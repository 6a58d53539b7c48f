// TGI's /metrics for the simulator, declared in one place with TGI's own names, help texts and
// bucket bounds (router/src/server.rs: describe_* and the PrometheusBuilder buckets;
// backends/v3/src/{backend,queue,lib}.rs for where each is set; huggingface/text-generation-inference
// at db931fcf). Exported by metrics-exporter-prometheus there, so: counters WITHOUT `_total`, no
// labels except method="prefill"|"decode" on batch series and err="..." on failures, no model label.
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

/** 0.0001 x 1.5^k, k = 1..35: TGI's duration buckets (the capture starts at 0.00015). */
export const DURATION_BUCKETS = Array.from({ length: 35 }, (_, k) => 0.0001 * 1.5 ** (k + 1));
const linear = (max: number) => Array.from({ length: 100 }, (_, x) => (max / 100) * (x + 1));

export interface TgiSimMetrics {
  registry: Registry;
  request(): void;
  failure(err: 'validation' | 'generation' | 'incomplete' | 'dropped' | 'overloaded'): void;
  validated(inputLength: number, maxNewTokens: number): void;
  /** one engine step: prefill when it admitted new sequences */
  step(method: 'prefill' | 'decode', seconds: number, newBatchSize: number): void;
  success(o: { total: number; queue: number; inference: number; generated: number }): void;
}

export function createTgiSimMetrics(
  maxInputTokens: number,
  maxTotalTokens: number,
  budget: number,
  batch: () => { running: number; waiting: number; reservedTokens: number },
): TgiSimMetrics {
  const registry = new Registry();
  const registers = [registry];
  const count = new Counter({ name: 'tgi_request_count', help: 'Total number of requests', registers });
  count.inc(0);
  const success = new Counter({ name: 'tgi_request_success', help: 'Number of successful requests', registers });
  success.inc(0);
  const failure = new Counter({ name: 'tgi_request_failure', help: 'Number of failed requests', labelNames: ['err'], registers });
  new Gauge({
    name: 'tgi_queue_size',
    help: 'Current queue size',
    registers,
    collect() {
      this.set(batch().waiting);
    },
  });
  new Gauge({
    name: 'tgi_batch_current_size',
    help: 'Current batch size',
    registers,
    collect() {
      this.set(batch().running);
    },
  });
  new Gauge({
    name: 'tgi_batch_current_max_tokens',
    help: 'Maximum tokens for the current batch',
    registers,
    collect() {
      this.set(batch().reservedTokens);
    },
  });
  new Gauge({
    name: 'tgi_batch_max_total_tokens',
    help: 'Maximum amount of tokens in total.',
    registers,
    collect() {
      this.set(budget);
    },
  });
  const h = (name: string, help: string, buckets: number[], labelNames: string[] = []) =>
    new Histogram({ name, help, buckets, labelNames, registers });
  const duration = h('tgi_request_duration', 'Total time spent processing the request', DURATION_BUCKETS);
  const validation = h('tgi_request_validation_duration', 'Time spent validating the request', DURATION_BUCKETS);
  const queue = h('tgi_request_queue_duration', 'Time spent in the queue per request', DURATION_BUCKETS);
  const inference = h('tgi_request_inference_duration', 'Request inference duration', DURATION_BUCKETS);
  const perToken = h('tgi_request_mean_time_per_token_duration', 'Mean time per token per request', DURATION_BUCKETS);
  const inputLength = h('tgi_request_input_length', 'Input token length per request', linear(maxInputTokens));
  const maxNew = h('tgi_request_max_new_tokens', 'Maximum new tokens per request', linear(maxTotalTokens));
  const generated = h('tgi_request_generated_tokens', 'Generated tokens per request', linear(maxTotalTokens));
  const batchInference = h('tgi_batch_inference_duration', 'Batch inference duration', DURATION_BUCKETS, ['method']);
  const batchForward = h('tgi_batch_forward_duration', 'Batch forward duration per method (prefill or decode)', DURATION_BUCKETS, [
    'method',
  ]);
  const nextSize = h(
    'tgi_batch_next_size',
    'Batch size of the next batch',
    Array.from({ length: 1024 }, (_, x) => x + 1),
  );
  const inferenceCount = new Counter({
    name: 'tgi_batch_inference_count',
    help: 'Inference calls per method (prefill or decode)',
    labelNames: ['method'],
    registers,
  });
  const inferenceSuccess = new Counter({
    name: 'tgi_batch_inference_success',
    help: 'Number of successful inference calls per method (prefill or decode)',
    labelNames: ['method'],
    registers,
  });

  return {
    registry,
    request: () => count.inc(),
    failure: (err) => failure.inc({ err }),
    validated: (n, m) => {
      inputLength.observe(n);
      maxNew.observe(m);
      validation.observe(0.0001);
    },
    step: (method, seconds, newBatchSize) => {
      batchInference.observe({ method }, seconds);
      batchForward.observe({ method }, seconds * 0.98); // forward is most of an inference call
      inferenceCount.inc({ method });
      inferenceSuccess.inc({ method });
      if (method === 'prefill') nextSize.observe(newBatchSize);
    },
    success: (o) => {
      success.inc();
      duration.observe(o.total);
      queue.observe(o.queue);
      inference.observe(o.inference);
      perToken.observe(o.generated > 0 ? o.inference / o.generated : 0);
      generated.observe(o.generated);
    },
  };
}
