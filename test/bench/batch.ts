// Batch jobs (docs/batch.md): (1) throughput on an idle cluster, the same items as one batch job
// versus sent as interactive requests at the same concurrency; (2) interactive p50/p99 TTFT with
// and without a large batch running (target: p99 within 10%). One simulated engine with a fixed
// batch size; the agent knows it, so the router's saturation signal counts free slots and the
// sheddable lane (batch items) only takes slots that interactive traffic leaves free.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI, { toFile } from 'openai';
import { startStack, waitFor, listModels, DEFAULT_MODEL } from '../helpers/stack.ts';
import { percentile, printTable, writeResults } from './report.ts';

const ITEMS = Number(process.env.BATCH_BENCH_ITEMS ?? 600);
const SLOTS = Number(process.env.BATCH_BENCH_SLOTS ?? 16);
// The config default (router.batch.concurrencyPerJob 8): half the engine's slots, the rest is headroom.
const CONCURRENCY = Number(process.env.BATCH_BENCH_CONCURRENCY ?? 8);
const INTERACTIVE = Number(process.env.BATCH_BENCH_INTERACTIVE ?? 300);
const INTERACTIVE_CLIENTS = Number(process.env.BATCH_BENCH_CLIENTS ?? 4);
const MAX_TOKENS = 16;
const SIM_ARGS = [
  '--max-num-seqs',
  String(SLOTS),
  '--decode-step-ms',
  '4',
  '--decode-step-ms-per-seq',
  '0.1',
  '--prefill-ms-per-token',
  '0.05',
];

const body = (i: number) => ({
  model: DEFAULT_MODEL,
  messages: [{ role: 'user' as const, content: `Summarise item ${i} in a few words.` }],
  max_tokens: MAX_TOKENS,
});
const jsonl = (n: number, tag: string) =>
  Array.from({ length: n }, (_, i) =>
    JSON.stringify({ custom_id: `${tag}-${i}`, method: 'POST', url: '/v1/chat/completions', body: body(i) }),
  ).join('\n') + '\n';

async function main() {
  const dataDir = mkdtempSync(join(tmpdir(), 'icp-batch-bench-'));
  const stack = await startStack({
    sims: [{ id: 'a', args: SIM_ARGS }],
    agents: [{ id: 'gpu-a', sim: 'a', engine: { maxNumSeqs: SLOTS } }],
    router: {
      fallback: { breaker: { nodes: false } },
      batch: { dataDir, concurrencyPerJob: CONCURRENCY, maxConcurrent: CONCURRENCY, pollMs: 20, yieldMs: 20 },
    },
    logLevel: 'warn',
  });
  const client = new OpenAI({ baseURL: `${stack.routerUrl}/v1`, apiKey: 'bench', maxRetries: 0 });
  try {
    await waitFor(async () => (await listModels(stack.routerUrl)).includes(DEFAULT_MODEL), 30_000);
    const runBatch = async (n: number, tag: string) => {
      const file = await client.files.create({ file: await toFile(Buffer.from(jsonl(n, tag)), `${tag}.jsonl`), purpose: 'batch' });
      return client.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' });
    };
    const untilDone = async (id: string) => {
      let last: OpenAI.Batch | undefined;
      await waitFor(async () => (last = await client.batches.retrieve(id)).status === 'completed', 600_000, 50);
      return last!;
    };
    const closedLoop = async (n: number, clients: number, fn: (i: number) => Promise<number>) => {
      const out: number[] = [];
      let next = 0;
      await Promise.all(
        Array.from({ length: clients }, async () => {
          while (next < n) out.push(await fn(next++));
        }),
      );
      return out;
    };
    const interactive = async (i: number) => {
      const t = performance.now();
      await client.chat.completions.create(body(i));
      return performance.now() - t;
    };
    const ttft = async (i: number) => {
      const t = performance.now();
      const stream = await client.chat.completions.create({ ...body(i), stream: true });
      let first = 0;
      for await (const chunk of stream) if (!first && chunk.choices[0]?.delta?.content) first = performance.now() - t;
      return first;
    };

    await closedLoop(100, 8, interactive); // warm-up

    // (1) Throughput on an idle cluster.
    let t0 = performance.now();
    const done = await untilDone((await runBatch(ITEMS, 'throughput')).id);
    const batchSeconds = (performance.now() - t0) / 1000;
    t0 = performance.now();
    await closedLoop(ITEMS, CONCURRENCY, interactive);
    const interactiveSeconds = (performance.now() - t0) / 1000;

    // (2) Interactive TTFT without, then with, a large batch soaking up the idle slots.
    const quiet = await closedLoop(INTERACTIVE, INTERACTIVE_CLIENTS, ttft);
    const big = await runBatch(ITEMS * 20, 'soak');
    await waitFor(async () => ((await client.batches.retrieve(big.id)).request_counts?.completed ?? 0) > 50, 60_000, 50);
    const busy = await closedLoop(INTERACTIVE, INTERACTIVE_CLIENTS, ttft);
    const during = await client.batches.retrieve(big.id);
    await client.batches.cancel(big.id);

    const rows = [
      {
        run: `batch job (${CONCURRENCY} in flight)`,
        items: ITEMS,
        seconds: batchSeconds,
        items_per_s: ITEMS / batchSeconds,
        ok: done.request_counts?.completed ?? 0,
      },
      {
        run: `interactive (${CONCURRENCY} clients)`,
        items: ITEMS,
        seconds: interactiveSeconds,
        items_per_s: ITEMS / interactiveSeconds,
        ok: ITEMS,
      },
    ];
    printTable(`Batch throughput, idle cluster (one engine, ${SLOTS} slots, max_tokens ${MAX_TOKENS})`, rows);
    const ttftRows = [
      { run: 'interactive alone', requests: INTERACTIVE, p50_ms: percentile(quiet, 50), p99_ms: percentile(quiet, 99) },
      { run: 'interactive + batch', requests: INTERACTIVE, p50_ms: percentile(busy, 50), p99_ms: percentile(busy, 99) },
    ];
    printTable(`Interactive TTFT (${INTERACTIVE_CLIENTS} streaming clients) with and without a ${ITEMS * 20}-item batch`, ttftRows);
    const ratio = percentile(busy, 99) / percentile(quiet, 99);
    const batchItemsDuring = during.request_counts?.completed ?? 0;
    console.log(`p99 ratio (with batch / without): ${ratio.toFixed(3)} (target <= 1.10); batch items done meanwhile: ${batchItemsDuring}`);
    writeResults('batch', {
      slots: SLOTS,
      concurrency: CONCURRENCY,
      maxTokens: MAX_TOKENS,
      throughput: rows,
      ttft: ttftRows,
      p99Ratio: ratio,
      batchItemsDuringInteractive: batchItemsDuring,
    });
  } finally {
    await stack.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

await main();
