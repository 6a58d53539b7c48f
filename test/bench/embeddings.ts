// Embedding/rerank engine benchmark: throughput and latency at concurrency 1/16/64 for short
// (~16 tokens) and medium (~128 tokens) inputs, plus event-loop lag, against two ceilings measured
// in this process on one core with the same onnxruntime thread count:
//  - raw onnxruntime: pre-tokenized, pre-padded inputs at the best batch size (inference only);
//  - tokenize + onnxruntime: the same, but tokenizing and padding inside the timed loop, which is
//    what one inference worker has to do per item (the engine tokenizes every input).
// Latency at concurrency 1 is compared with one raw inference (b=1) and with one tokenize + inference.
// Measured at the EmbeddingService (the engine the HTTP routes call), one input per request.
// Usage: npx tsx test/bench/embeddings.ts   (BENCH_SECONDS per cell, default 2; BENCH_THREADS, default 1;
//        BENCH_WORKERS: inference workers per model, default the config's; BENCH_WINDOW_MS likewise)
import { mkdirSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { availableParallelism } from 'node:os';
import ort from 'onnxruntime-node';
import { EmbeddingService, defaultEmbeddingsConfig } from '../../router/embed/index.ts';
import { buildBatchInput } from '../../router/embed/batch-input.ts';
import { TextTokenizer, type Encoded } from '../../router/embed/tokenizer.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SECONDS = Number(process.env.BENCH_SECONDS ?? 2);
const THREADS = Number(process.env.BENCH_THREADS ?? 1);
const WORKERS = process.env.BENCH_WORKERS ? Number(process.env.BENCH_WORKERS) : undefined;
const WINDOW_MS = process.env.BENCH_WINDOW_MS ? Number(process.env.BENCH_WINDOW_MS) : undefined;
const CONCURRENCY = (process.env.BENCH_CONCURRENCY ?? '1,16,64').split(',').map(Number);
const ONLY = process.env.BENCH_ONLY; // substring of a workload name

const WORDS =
  'the model serves embeddings for retrieval over scientific papers while a router sends each request to the gpu node that will answer it soonest and keeps interactive traffic fast when the cluster is busy with long batch jobs from many tenants'.split(
    ' ',
  );
/** Deterministic text of about `tokens` word tokens (+[CLS]/[SEP]), varied so nothing is cached. */
function text(tokens: number, seed: number): string {
  return Array.from({ length: tokens - 2 }, (_, i) => WORDS[(seed * 7 + i * 13) % WORDS.length]).join(' ');
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? 0;
};

interface Workload {
  name: string;
  kind: 'embedding' | 'rerank';
  tokens: number;
}
const WORKLOADS: Workload[] = [
  { name: 'embed short (16 tok)', kind: 'embedding', tokens: 16 },
  { name: 'embed medium (128 tok)', kind: 'embedding', tokens: 128 },
  { name: 'rerank short (16 tok pair)', kind: 'rerank', tokens: 16 },
  { name: 'rerank medium (128 tok pair)', kind: 'rerank', tokens: 128 },
];
const QUERY = 'when does the router send requests to a busy gpu node';

const cfg = defaultEmbeddingsConfig();
cfg.intraOpNumThreads = THREADS;
for (const m of cfg.models) {
  if (WORKERS !== undefined) m.workers = WORKERS;
  if (WINDOW_MS !== undefined) m.batchWindowMs = WINDOW_MS;
}
const workersPerModel = cfg.models[0]!.workers ?? 1;
const service = await EmbeddingService.load(cfg, { baseDir: ROOT });
const modelFor = (w: Workload) => (w.kind === 'embedding' ? 'glove-100d-embed' : 'glove-100d-rerank');
const tokenizer = await TextTokenizer.load(resolve(ROOT, 'models/glove-100d-embed/tokenizer.json'));

/** Rerank: `q` is the query's tokens, tokenized once per batch as the engine does. */
function encodeFor(w: Workload, seed: number, q = tokenizer.content(QUERY)): Encoded {
  if (w.kind === 'embedding') return tokenizer.encode(text(w.tokens, seed), 256, true);
  return tokenizer.encodePair(q, text(w.tokens - q.length - 1, seed), 256);
}

/** Raw onnxruntime in this thread, pre-tokenized: best throughput over batch sizes, and one b=1 run. */
async function raw(w: Workload) {
  const session = await ort.InferenceSession.create(resolve(ROOT, `models/${modelFor(w)}/model.onnx`), {
    intraOpNumThreads: THREADS,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
  });
  const output = w.kind === 'embedding' ? 'sentence_embedding' : 'logits';
  const runBatch = async (b: number, seed: number) => {
    const q = w.kind === 'rerank' ? tokenizer.content(QUERY) : [];
    const bi = buildBatchInput(Array.from({ length: b }, (_, i) => encodeFor(w, seed + i, q)));
    const dims = [bi.batch, bi.seq];
    const r = await session.run(
      {
        input_ids: new ort.Tensor('int64', new BigInt64Array(bi.inputIds), dims),
        attention_mask: new ort.Tensor('int64', new BigInt64Array(bi.attentionMask), dims),
        token_type_ids: new ort.Tensor('int64', new BigInt64Array(bi.tokenTypeIds), dims),
      },
      [output],
    );
    r[output]!.dispose();
  };
  // Inputs are prepared outside the timed region, so this is the pure inference ceiling.
  const timeBatch = async (b: number, iters: number) => {
    const feeds = Array.from({ length: iters }, (_, k) => {
      const bi = buildBatchInput(Array.from({ length: b }, (_, i) => encodeFor(w, k * b + i)));
      const dims = [bi.batch, bi.seq];
      return {
        input_ids: new ort.Tensor('int64', new BigInt64Array(bi.inputIds), dims),
        attention_mask: new ort.Tensor('int64', new BigInt64Array(bi.attentionMask), dims),
        token_type_ids: new ort.Tensor('int64', new BigInt64Array(bi.tokenTypeIds), dims),
      };
    });
    const times: number[] = [];
    for (const f of feeds) {
      const t = performance.now();
      (await session.run(f, [output]))[output]!.dispose();
      times.push(performance.now() - t);
    }
    return times;
  };
  // Tokenizing and padding inside the timed region: what one worker does per batch.
  const timePipeline = async (b: number, iters: number) => {
    const times: number[] = [];
    for (let k = 0; k < iters; k++) {
      const t = performance.now();
      await runBatch(b, 100_000 + k * b);
      times.push(performance.now() - t);
    }
    return times;
  };
  await runBatch(8, 0);
  const single = await timeBatch(1, 300);
  const singleWithTok = await timePipeline(1, 300);
  let best = { batch: 1, perSec: 0 };
  for (const b of [1, 8, 32, 64, 128]) {
    const iters = Math.max(5, Math.round(2000 / b));
    const times = await timeBatch(b, iters);
    const perSec = (b * iters) / (times.reduce((a, c) => a + c, 0) / 1000);
    if (perSec > best.perSec) best = { batch: b, perSec };
  }
  let bestPipe = { batch: 1, perSec: 0 };
  for (const b of [1, 8, 32, 64]) {
    const iters = Math.max(5, Math.round(1000 / b));
    const times = await timePipeline(b, iters);
    const perSec = (b * iters) / (times.reduce((a, c) => a + c, 0) / 1000);
    if (perSec > bestPipe.perSec) bestPipe = { batch: b, perSec };
  }
  await session.release();
  // The JS tokenizer on one core is the other ceiling: the engine tokenizes every input.
  const tt = performance.now();
  const q0 = tokenizer.content(QUERY);
  for (let i = 0; i < 2000; i++) encodeFor(w, 50_000 + i, q0);
  const tokenizerPerSec = 2000 / ((performance.now() - tt) / 1000);
  return {
    singleP50Ms: pct(single, 50),
    singleWithTokP50Ms: pct(singleWithTok, 50),
    bestBatch: best.batch,
    ceilingPerSec: best.perSec,
    pipelineBestBatch: bestPipe.batch,
    pipelinePerSec: bestPipe.perSec,
    tokenizerPerSec,
  };
}

/** `c` closed-loop clients, one input per request, for SECONDS. */
async function load(w: Workload, c: number) {
  const latencies: number[] = [];
  const lag = monitorEventLoopDelay({ resolution: 1 });
  // Warm-up so the first requests do not pay one-time costs.
  for (let i = 0; i < 20; i++) await request(w, i);
  lag.enable();
  const end = performance.now() + SECONDS * 1000;
  let seed = 1000;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: c }, async () => {
      while (performance.now() < end) {
        const s = seed++;
        const t = performance.now();
        await request(w, s);
        latencies.push(performance.now() - t);
      }
    }),
  );
  const elapsed = (performance.now() - t0) / 1000;
  lag.disable();
  return {
    perSec: latencies.length / elapsed,
    p50Ms: pct(latencies, 50),
    p99Ms: pct(latencies, 99),
    lagP99Ms: lag.percentile(99) / 1e6,
    lagMaxMs: lag.max / 1e6,
  };
}

function request(w: Workload, seed: number): Promise<unknown> {
  if (w.kind === 'embedding') return service.embed('glove-100d-embed', [text(w.tokens, seed)], { truncate: true });
  return service.rerank('glove-100d-rerank', QUERY, [text(w.tokens - 11, seed)]);
}

const results: Record<string, unknown>[] = [];
try {
  for (const w of WORKLOADS.filter((x) => !ONLY || x.name.includes(ONLY))) {
    const r = await raw(w);
    const rows = [];
    for (const c of CONCURRENCY) rows.push({ concurrency: c, ...(await load(w, c)) });
    results.push({ workload: w.name, raw: r, rows });
  }
} finally {
  await service.close();
}

const f = (x: number, d = 1) => x.toFixed(d);
console.log(
  `\nEmbedding engine benchmark (${SECONDS}s per cell, intra-op threads ${THREADS}, ${workersPerModel} worker(s) per model, window ${cfg.models[0]!.batchWindowMs ?? 1} ms, ${availableParallelism()} cores, ${process.platform} ${process.arch})\n`,
);
console.log(
  '| workload | conc | items/s | % raw ort ceiling | % tok+ort ceiling (1 core) | p50 ms | p99 ms | p50 / raw single | p50 / tok+raw single | lag p99 ms | lag max ms |',
);
console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
for (const r of results as {
  workload: string;
  raw: Awaited<ReturnType<typeof raw>>;
  rows: ({ concurrency: number } & Awaited<ReturnType<typeof load>>)[];
}[]) {
  for (const row of r.rows) {
    console.log(
      `| ${r.workload} | ${row.concurrency} | ${f(row.perSec, 0)} | ${f((100 * row.perSec) / r.raw.ceilingPerSec)}% | ${f((100 * row.perSec) / r.raw.pipelinePerSec)}% | ${f(row.p50Ms, 3)} | ${f(row.p99Ms, 2)} | ${f(row.p50Ms / r.raw.singleP50Ms, 2)}x | ${f(row.p50Ms / r.raw.singleWithTokP50Ms, 2)}x | ${f(row.lagP99Ms, 1)} | ${f(row.lagMaxMs, 1)} |`,
    );
  }
  console.log(
    `| ${r.workload}: raw ort ceiling | batch ${r.raw.bestBatch} | ${f(r.raw.ceilingPerSec, 0)} | 100% | | raw single ${f(r.raw.singleP50Ms, 3)} ms | | | | | |`,
  );
  console.log(
    `| ${r.workload}: tokenize + ort ceiling (1 core) | batch ${r.raw.pipelineBestBatch} | ${f(r.raw.pipelinePerSec, 0)} | | 100% | tok+raw single ${f(r.raw.singleWithTokP50Ms, 3)} ms | | | | | |`,
  );
  console.log(`| ${r.workload}: tokenizer alone (1 core) | | ${f(r.raw.tokenizerPerSec, 0)} | | | | | | | | |`);
}
mkdirSync(resolve(ROOT, 'bench-results'), { recursive: true });
writeFileSync(
  resolve(ROOT, 'bench-results/embeddings.json'),
  JSON.stringify(
    {
      date: new Date().toISOString(),
      seconds: SECONDS,
      threads: THREADS,
      workersPerModel,
      windowMs: cfg.models[0]!.batchWindowMs ?? 1,
      cores: availableParallelism(),
      results,
    },
    null,
    2,
  ),
);
console.log('\nwrote bench-results/embeddings.json');
