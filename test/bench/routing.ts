// Routing overhead: the same requests sent straight to a simulated vLLM engine and through
// router + agent (gRPC), at concurrency 1 and 64, streaming and not. The engine is set to a tiny
// fixed latency so the difference is the router's and agent's own cost.
// Usage: npx tsx test/bench/routing.ts   (BENCH_SECONDS per cell, default 4)
import { Pool } from 'undici';
import { startStack, waitFor, listModels, DEFAULT_MODEL } from '../helpers/stack.ts';
import { percentile, printTable, writeResults } from './report.ts';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 4);
const MAX_TOKENS = 8;

async function runCell(
  base: string,
  concurrency: number,
  stream: boolean,
): Promise<{ rps: number; p50: number; p99: number; errors: number; n: number }> {
  const url = new URL(base);
  const pool = new Pool(url.origin, { connections: concurrency, pipelining: 1 });
  const body = JSON.stringify({
    model: DEFAULT_MODEL,
    messages: [{ role: 'user', content: 'benchmark prompt of a few words' }],
    max_tokens: MAX_TOKENS,
    stream,
    ...(stream ? { stream_options: { include_usage: true } } : {}),
  });
  const latencies: number[] = [];
  let errors = 0;
  const samples: string[] = [];
  const until = performance.now() + SECONDS * 1000;
  const warmUntil = performance.now() + 500;
  const worker = async () => {
    while (performance.now() < until) {
      const t0 = performance.now();
      try {
        const res = await pool.request({
          path: '/v1/chat/completions',
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body,
        });
        const text = await res.body.text();
        if (res.statusCode !== 200 || (stream && !text.includes('[DONE]'))) {
          errors += 1;
          if (samples.length < 3) samples.push(`${res.statusCode} ${text.slice(-160).replace(/\s+/g, ' ')}`);
        }
      } catch (err) {
        errors += 1;
        if (samples.length < 3) samples.push(String(err));
      }
      if (t0 >= warmUntil) latencies.push(performance.now() - t0);
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: concurrency }, worker));
  const elapsed = (performance.now() - Math.max(started, warmUntil)) / 1000;
  await pool.close();
  if (samples.length) console.error(`errors at ${base} c=${concurrency} stream=${stream}:\n  ${samples.join('\n  ')}`);
  return { rps: latencies.length / elapsed, p50: percentile(latencies, 50), p99: percentile(latencies, 99), errors, n: latencies.length };
}

export async function benchRouting(): Promise<Record<string, unknown>[]> {
  const simArgs = [
    '--decode-step-ms',
    '0.2',
    '--decode-step-ms-per-seq',
    '0',
    '--prefill-ms-per-token',
    '0',
    '--max-num-seqs',
    '256',
    '--kv-cache-tokens',
    '1000000',
  ];
  const stack = await startStack({
    sims: [{ id: 'sim', args: simArgs }],
    agents: [{ id: 'gpu', sim: 'sim' }],
    withControlPlane: false,
    logLevel: 'error',
  });
  const rows: Record<string, unknown>[] = [];
  try {
    await waitFor(async () => (await listModels(stack.routerUrl)).includes(DEFAULT_MODEL), 20_000);
    for (const stream of [false, true]) {
      for (const concurrency of [1, 64]) {
        const direct = await runCell(stack.sims.get('sim')!.url, concurrency, stream);
        const routed = await runCell(stack.routerUrl, concurrency, stream);
        rows.push({
          mode: stream ? 'stream' : 'json',
          concurrency,
          direct_rps: direct.rps,
          routed_rps: routed.rps,
          direct_p50_ms: direct.p50,
          routed_p50_ms: routed.p50,
          added_p50_ms: routed.p50 - direct.p50,
          direct_p99_ms: direct.p99,
          routed_p99_ms: routed.p99,
          added_p99_ms: routed.p99 - direct.p99,
          errors: direct.errors + routed.errors,
        });
      }
    }
  } finally {
    await stack.stop();
  }
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const rows = await benchRouting();
  printTable('routing overhead: direct to engine vs router + agent (tiny fixed engine latency)', rows);
  writeResults('routing', { seconds: SECONDS, maxTokens: MAX_TOKENS, rows });
}
