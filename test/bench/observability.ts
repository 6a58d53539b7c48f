// Cost of tracing on the request path: the same closed loop of requests through router + agent
// + a fast simulated engine, with telemetry off and then on (spans of router and agent exported
// over OTLP/HTTP to a local receiver). Metrics (prom-client) and the request log line are on in
// both runs. Reports p50/p99 end-to-end latency (non-streaming) and TTFT (streaming).
import { startStack, waitFor, listModels, DEFAULT_MODEL } from '../helpers/stack.ts';
import { startReceiver } from '../helpers/otlp-receiver.ts';
import { percentile, printTable, writeResults } from './report.ts';

const REQUESTS = Number(process.env.OBS_REQUESTS ?? 600);
const CONCURRENCY = Number(process.env.OBS_CONCURRENCY ?? 8);
// A fast engine, so that the router and agent's own cost is a visible share of the latency.
const SIM_ARGS = ['--speed', '20', '--prefill-ms-per-token', '0'];

async function run(mode: 'off' | 'on') {
  const receiver = mode === 'on' ? await startReceiver() : undefined;
  const stack = await startStack({
    sims: [
      { id: 'sim-a', args: SIM_ARGS },
      { id: 'sim-b', args: SIM_ARGS },
    ],
    agents: [
      { id: 'gpu-a', sim: 'sim-a' },
      { id: 'gpu-b', sim: 'sim-b' },
    ],
    logLevel: 'info',
    maxLogLines: 100,
    config: receiver ? { telemetry: { otlpEndpoint: receiver.url } } : undefined,
  });
  try {
    await waitFor(async () => (await listModels(stack.routerUrl)).includes(DEFAULT_MODEL), 30_000);
    const one = async (stream: boolean): Promise<number> => {
      const started = performance.now();
      const r = await fetch(`${stack.routerUrl}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          model: DEFAULT_MODEL,
          messages: [{ role: 'user', content: 'Say something short.' }],
          max_tokens: 16,
          stream,
        }),
      });
      if (!stream) {
        await r.text();
        if (!r.ok) throw new Error(`status ${r.status}`);
        return performance.now() - started;
      }
      const reader = r.body!.getReader();
      const first = await reader.read();
      const ttft = performance.now() - started;
      if (first.done) throw new Error('empty stream');
      while (!(await reader.read()).done) {
        /* drain */
      }
      return ttft;
    };
    const loop = async (n: number, stream: boolean) => {
      const out: number[] = [];
      let next = 0;
      await Promise.all(
        Array.from({ length: CONCURRENCY }, async () => {
          while (next < n) {
            next++;
            out.push(await one(stream));
          }
        }),
      );
      return out;
    };
    await loop(100, false); // warm-up
    const e2e = await loop(REQUESTS, false);
    const ttft = await loop(REQUESTS, true);
    const spans = receiver ? (await waitFor(() => receiver.spans().length > 0, 10_000), receiver.spans().length) : 0;
    return { mode, e2e, ttft, spans };
  } finally {
    await stack.stop();
    await receiver?.close();
  }
}

const rows: Record<string, unknown>[] = [];
for (const mode of ['off', 'on'] as const) {
  const r = await run(mode);
  rows.push({
    tracing: mode,
    requests: REQUESTS,
    concurrency: CONCURRENCY,
    'e2e p50 ms': percentile(r.e2e, 50).toFixed(2),
    'e2e p99 ms': percentile(r.e2e, 99).toFixed(2),
    'ttft p50 ms': percentile(r.ttft, 50).toFixed(2),
    'ttft p99 ms': percentile(r.ttft, 99).toFixed(2),
    'spans exported': r.spans,
  });
}
printTable('Tracing cost on the request path (router + agent + fast sim, non-streaming e2e and streaming TTFT)', rows);
writeResults('observability', { rows });
