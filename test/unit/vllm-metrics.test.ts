// The agent's vLLM /metrics parser against every real capture in test/fixtures/vllm.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseSamples } from '../../common/prometheus-text.ts';
import { parseVllmMetrics } from '../../node-agent/engines/vllm-metrics.ts';

const DIR = join(import.meta.dirname, '..', 'fixtures', 'vllm');
const read = (f: string) => readFileSync(join(DIR, f), 'utf8');
const close = (a: number, b: number) => assert.ok(Math.abs(a - b) < 1e-9, `${a} != ${b}`);

test('every file in test/fixtures/vllm parses without throwing; every metrics capture yields a model name', () => {
  const files = readdirSync(DIR);
  assert.ok(files.filter((f) => f.startsWith('metrics-')).length >= 6);
  for (const f of files) {
    const snap = parseVllmMetrics(read(f));
    for (const [k, v] of Object.entries(snap)) {
      if (typeof v === 'number') assert.ok(Number.isFinite(v), `${f}: ${k} is ${v}`);
    }
    if (f.startsWith('metrics-')) assert.equal(snap.modelNames.length, 1, `${f}: ${snap.modelNames.join(',')}`);
  }
});

test('V0 capture (vLLM 0.4/0.5): old names, _count before _sum, no trailing newline', () => {
  const s = parseVllmMetrics(read('metrics-vllm-0.4.x-0.5.0-v0-engine-opt-125m.txt'));
  assert.deepEqual(s.modelNames, ['facebook/opt-125m']);
  assert.equal(s.running, 0);
  assert.equal(s.waiting, 0);
  assert.equal(s.kvCacheUsage, 0); // from vllm:gpu_cache_usage_perc
  assert.equal(s.promptTokensTotal, 5);
  assert.equal(s.generationTokensTotal, 7);
  assert.deepEqual(s.ttft, { sum: 0.31326723098754883, count: 1 });
  // the old name vllm:time_per_output_token_seconds feeds interTokenLatency
  assert.deepEqual(s.interTokenLatency, { sum: 0.19016313552856445, count: 6 });
  assert.deepEqual(s.e2eLatency, { sum: 0.5034303665161133, count: 1 });
});

test('the last line counts even without a trailing newline', () => {
  const text = read('metrics-vllm-0.4.x-0.5.0-v0-engine-opt-125m.txt');
  assert.ok(!text.endsWith('\n'));
  const last = text.split('\n').at(-1)!;
  const samples = parseSamples(text);
  assert.ok(samples.length > 0);
  assert.equal(samples.at(-1)!.value, Number(last.split(' ').at(-1)));
});

test('V1 docs example: running, generation tokens, TTFT count; "..." lines skipped', () => {
  const s = parseVllmMetrics(read('metrics-v1-docs-example-llama-3.1-8b.excerpt.txt'));
  assert.equal(s.running, 8);
  assert.equal(s.generationTokensTotal, 27453);
  assert.equal(s.ttft.count, 140);
  assert.deepEqual(s.modelNames, ['meta-llama/Llama-3.1-8B-Instruct']);
});

test('0.10.0 capture: new kv_cache_usage_perc and prefix_cache_queries, old gpu_prefix_cache_hits, _created ignored', () => {
  const s = parseVllmMetrics(read('metrics-vllm-0.10.0-v1-engine-glm-4.5.excerpt.txt'));
  close(s.kvCacheUsage, 9.75010481363281e-6);
  assert.equal(s.prefixCacheQueriesTotal, 32);
  assert.equal(s.prefixCacheHitsTotal, 0);
  // the *_created gauges hold timestamps (~1.75e9); none must leak into a counter
  for (const v of Object.values(s)) if (typeof v === 'number') assert.ok(v < 1e6);
});

test('0.8-era V1 capture: old gpu_cache_usage_perc, no engine label', () => {
  const s = parseVllmMetrics(read('metrics-vllm-0.8-era-v1-engine-qwen2.5-coder-32b.excerpt.txt'));
  assert.deepEqual(s.modelNames, ['Qwen/Qwen2.5-Coder-32B-Instruct']);
  assert.equal(s.kvCacheUsage, 0);
});

test('two-engine capture: series of engine 0 and engine 1 are both read', () => {
  const samples = parseSamples(read('metrics-vllm-v1-api-server-count-2-engines-qwen3-8b.excerpts.txt'));
  const engines = new Set(samples.map((x) => x.labels.engine));
  assert.deepEqual([...engines].sort(), ['0', '1']);
  assert.ok(samples.some((x) => x.labels.le === '+Inf'));
});

test('several engine cores: counters and gauges summed, KV use averaged, histograms summed', () => {
  const text = [
    'vllm:num_requests_running{engine="0",model_name="m"} 3.0',
    'vllm:num_requests_running{engine="1",model_name="m"} 5.0',
    'vllm:num_requests_waiting{engine="0",model_name="m"} 1.0',
    'vllm:num_requests_waiting{engine="1",model_name="m"} 2.0',
    'vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.2',
    'vllm:kv_cache_usage_perc{engine="1",model_name="m"} 0.6',
    'vllm:prompt_tokens_total{engine="0",model_name="m"} 10.0',
    'vllm:prompt_tokens_total{engine="1",model_name="m"} 20.0',
    'vllm:time_to_first_token_seconds_sum{engine="0",model_name="m"} 1.5',
    'vllm:time_to_first_token_seconds_bucket{engine="0",le="+Inf",model_name="m"} 3.0',
    'vllm:time_to_first_token_seconds_count{engine="0",model_name="m"} 3.0',
    'vllm:time_to_first_token_seconds_count{engine="1",model_name="m"} 1.0',
    'vllm:time_to_first_token_seconds_sum{engine="1",model_name="m"} 0.5',
  ].join('\n');
  const s = parseVllmMetrics(text);
  assert.equal(s.running, 8);
  assert.equal(s.waiting, 3);
  close(s.kvCacheUsage, 0.4);
  assert.equal(s.promptTokensTotal, 30);
  assert.deepEqual(s.ttft, { sum: 2, count: 4 });
});

test('when both the new and the deprecated name are exposed, the new one is used (not added)', () => {
  const text = [
    'vllm:gpu_cache_usage_perc{engine="0",model_name="m"} 0.5',
    'vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.5',
    'vllm:gpu_prefix_cache_hits_total{engine="0",model_name="m"} 7.0',
    'vllm:prefix_cache_hits_total{engine="0",model_name="m"} 7.0',
    'vllm:time_per_output_token_seconds_count{engine="0",model_name="m"} 4.0',
    'vllm:inter_token_latency_seconds_count{engine="0",model_name="m"} 4.0',
  ].join('\n');
  const s = parseVllmMetrics(text);
  assert.equal(s.kvCacheUsage, 0.5);
  assert.equal(s.prefixCacheHitsTotal, 7);
  assert.equal(s.interTokenLatency.count, 4);
});

test('label values with escapes, commas, braces and spaces; timestamps; NaN and Inf', () => {
  const s = parseSamples(
    [
      'vllm:num_requests_running{model_name="a \\"quoted\\", {odd} name\\\\x",engine="0"} 2 1700000000000',
      'vllm:num_requests_waiting{model_name="m"} NaN',
      'x_bucket{le="+Inf"} +Inf',
    ].join('\n'),
  );
  assert.equal(s.length, 3);
  assert.equal(s[0]!.labels.model_name, 'a "quoted", {odd} name\\x');
  assert.equal(s[0]!.value, 2);
  assert.ok(Number.isNaN(s[1]!.value));
  assert.equal(s[2]!.value, Infinity);
  // NaN gauges do not poison the snapshot
  assert.equal(parseVllmMetrics('vllm:num_requests_waiting{model_name="m"} NaN').waiting, 0);
});

test('garbage yields zeros and never throws', () => {
  const zero = parseVllmMetrics('');
  assert.equal(zero.running, 0);
  assert.deepEqual(zero.modelNames, []);
  const inputs = [
    '<html>502 Bad Gateway</html>',
    '{{{',
    'vllm:num_requests_running{model_name="m} 3',
    'a b c d',
    '\u0000\uffff',
    'vllm:x{=""} 1',
    '# TYPE\n#\n',
    'vllm:num_requests_running 1e400x',
  ];
  for (const g of inputs) {
    const s = parseVllmMetrics(g);
    assert.equal(s.running, 0, g);
  }
  assert.doesNotThrow(() => parseVllmMetrics(undefined as unknown as string));
});
