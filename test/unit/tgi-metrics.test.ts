// The agent's TGI /metrics parser against the real capture in test/fixtures/tgi and the mapping
// documented in node-agent/engines/tgi-metrics.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseTgiMetrics } from '../../node-agent/engines/tgi-metrics.ts';

const DIR = join(import.meta.dirname, '..', 'fixtures', 'tgi');
const read = (f: string) => readFileSync(join(DIR, f), 'utf8');
const close = (a: number, b: number) => assert.ok(Math.abs(a - b) < 1e-9, `${a} != ${b}`);

test('every file in test/fixtures/tgi goes through the parser without throwing; all numbers finite', () => {
  const files = readdirSync(DIR);
  assert.ok(files.some((f) => f.startsWith('metrics-')));
  for (const f of files) {
    const snap = parseTgiMetrics(read(f));
    for (const [k, v] of Object.entries(snap)) if (typeof v === 'number') assert.ok(Number.isFinite(v), `${f}: ${k} is ${v}`);
  }
});

test('Datadog capture (111 requests): queue, batch, token totals and the TTFT estimate', () => {
  const s = parseTgiMetrics(read('metrics-tgi-datadog-fixture.txt'));
  assert.equal(s.running, 0); // tgi_batch_current_size 0
  assert.equal(s.waiting, 0); // tgi_queue_size 0
  assert.equal(s.kvCacheUsage, 0); // no tgi_batch_max_total_tokens in this (pre-2.3) scrape
  assert.equal(s.promptTokensTotal, 662); // tgi_request_input_length_sum
  assert.equal(s.generationTokensTotal, 3423); // tgi_request_generated_tokens_sum
  assert.equal(s.prefixCacheQueriesTotal, 0);
  assert.equal(s.preemptionsTotal, 0);
  assert.equal(s.ttft.count, 109);
  close(s.ttft.sum, 295.275961956 + 109 * (1.3892931830000002 / 16));
  assert.deepEqual(s.interTokenLatency, { sum: 8.643160945, count: 109 });
  assert.deepEqual(s.e2eLatency, { sum: 541.2140316159999, count: 109 });
  assert.deepEqual(s.modelNames, []);
});

test('gauges under load; KV-cache share = current batch max tokens / max batch total tokens', () => {
  const text = [
    '# TYPE tgi_queue_size gauge',
    'tgi_queue_size 7',
    '# TYPE tgi_batch_current_size gauge',
    'tgi_batch_current_size 12',
    'tgi_batch_current_max_tokens 24576',
    'tgi_batch_max_total_tokens 98304',
    'tgi_batch_inference_duration_sum{method="prefill"} 2',
    'tgi_batch_inference_duration_count{method="prefill"} 4',
    'tgi_batch_inference_duration_sum{method="decode"} 100',
    'tgi_batch_inference_duration_count{method="decode"} 1000',
    'tgi_request_queue_duration_sum 3',
    'tgi_request_queue_duration_count 10',
  ].join('\n');
  const s = parseTgiMetrics(text);
  assert.equal(s.waiting, 7);
  assert.equal(s.running, 12);
  assert.equal(s.kvCacheUsage, 0.25);
  // decode batches do not count toward TTFT: 3 s queue + 10 x 0.5 s mean prefill
  assert.deepEqual(s.ttft, { sum: 8, count: 10 });
  // a reservation above the budget (possible while TGI re-queues) is capped at 1
  assert.equal(parseTgiMetrics('tgi_batch_current_max_tokens 200\ntgi_batch_max_total_tokens 100').kvCacheUsage, 1);
});

test('garbage, empty input and a vLLM scrape read as zeros, never throw', () => {
  for (const t of ['', 'garbage{', 'vllm:num_requests_running{model_name="m"} 3', undefined as unknown as string]) {
    const s = parseTgiMetrics(t);
    assert.equal(s.running, 0);
    assert.equal(s.waiting, 0);
    assert.deepEqual(s.ttft, { sum: 0, count: 0 });
  }
});
