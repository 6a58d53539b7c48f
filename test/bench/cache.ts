// Response cache latency: an exact hit, a semantic hit (GloVe embedder, a paraphrase at cosine
// 0.94) and a miss (a new question each time: the engine generates 16 tokens), through the whole
// router (HTTP, auth off, admission on) against one simulated vLLM. Sequential requests (the
// latency of one request, not throughput), then the hits at concurrency 16.
// Run: npx tsx test/bench/cache.ts
import { startStack, waitFor, DEFAULT_MODEL } from '../helpers/stack.ts';
import { percentile, printTable, writeResults } from './report.ts';
import { EmbeddingService } from '../../router/embed/index.ts';
import { exactKey, semanticParts } from '../../router/cache/key.ts';
import { MemoryResponseStore } from '../../router/cache/store.ts';
import { SemanticIndex } from '../../router/cache/semantic-index.ts';
import { ResponseRecorder } from '../../router/http/recorded-response.ts';
import { REPO_ROOT } from '../../cli/spawn-service.ts';

const N_HIT = Number(process.env.BENCH_CACHE_N ?? 300);
const N_MISS = Math.ceil(N_HIT / 3);
const CONCURRENCY = 16;

/** The cache's own work per lookup, in process: key hash + store read; embedding + index scan. */
async function inProcess() {
  const scope = { tenant: 't:a', model: DEFAULT_MODEL, operation: 'CHAT_COMPLETIONS' };
  const body = (q: string) => ({
    model: DEFAULT_MODEL,
    messages: [
      { role: 'system', content: 'Answer briefly.' },
      { role: 'user', content: q },
    ],
    max_tokens: 16,
    temperature: 0,
  });
  const store = new MemoryResponseStore(64 * 1024 * 1024);
  const rec = new ResponseRecorder('chat.completion')
    .json(
      JSON.stringify({
        id: 'x',
        object: 'chat.completion',
        choices: [{ index: 0, message: { role: 'assistant', content: 'Paris '.repeat(16) } }],
      }),
    )
    .finish();
  for (let i = 0; i < 10_000; i++) await store.set(exactKey(scope, body(`question ${i}`)), rec, 3_600_000);
  const exact: number[] = [];
  for (let i = 0; i < 5_000; i++) {
    const t = performance.now();
    await store.get(exactKey(scope, body(`question ${i}`)));
    exact.push(performance.now() - t);
  }
  const svc = await EmbeddingService.load(
    {
      models: [
        {
          id: 'g',
          kind: 'embedding',
          path: 'models/glove-100d-embed/model.onnx',
          tokenizer: 'models/glove-100d-embed/tokenizer.json',
          output: 'sentence_embedding',
          maxLength: 256,
          workers: 1,
        },
      ],
    },
    { baseDir: REPO_ROOT },
  );
  const index = new SemanticIndex(20_000, 2_000, Date.now);
  const parts = semanticParts(scope, body('What is the capital of France?'))!;
  for (let i = 0; i < 2_000; i++)
    index.add(
      parts.scopeKey,
      Array.from({ length: 100 }, () => Math.random() - 0.5),
      `k${i}`,
      3_600_000,
    );
  const embed: number[] = [];
  const search: number[] = [];
  for (let i = 0; i < 300; i++) {
    const t = performance.now();
    const v = (await svc.embed('g', [`What is the capital city of France, take ${i}?`], { inputType: 'query', truncate: true }))
      .embeddings[0]!;
    const t2 = performance.now();
    index.search(parts.scopeKey, v, 0.9);
    embed.push(t2 - t);
    search.push(performance.now() - t2);
  }
  await svc.close();
  const r = (kind: string, xs: number[]) => ({ kind, n: xs.length, p50_ms: percentile(xs, 50), p99_ms: percentile(xs, 99) });
  return [
    r('exact: key hash + memory read (10k entries)', exact),
    r('semantic: embed last user message (GloVe)', embed),
    r('semantic: scan one scope (2,000 x 100-d)', search),
  ];
}

const internals = await inProcess();
printTable('Response cache: its own work per lookup (in process)', internals);

const stack = await startStack({
  sims: [{ id: 'a', args: ['--max-num-seqs', '64'] }],
  agents: [{ id: 'gpu-a', sim: 'a' }],
  withControlPlane: false,
  router: {
    embeddings: {
      models: [
        {
          id: 'glove-100d-embed',
          kind: 'embedding',
          path: 'models/glove-100d-embed/model.onnx',
          tokenizer: 'models/glove-100d-embed/tokenizer.json',
          output: 'sentence_embedding',
          maxLength: 256,
        },
      ],
    },
    cache: { semantic: { enabled: true, model: 'glove-100d-embed', threshold: 0.9 } },
  },
});

try {
  await waitFor(
    async () =>
      ((await (await fetch(`${stack.routerUrl}/v1/models`)).json()) as { data: { id: string }[] }).data.some((m) => m.id === DEFAULT_MODEL),
    30_000,
  );
  const ask = async (question: string, expect?: string, seed?: number): Promise<number> => {
    const t = performance.now();
    const res = await fetch(`${stack.routerUrl}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Bearer bench' },
      body: JSON.stringify({
        model: DEFAULT_MODEL,
        messages: [
          { role: 'system', content: 'Answer briefly.' },
          { role: 'user', content: question },
        ],
        max_tokens: 16,
        temperature: 0,
        seed,
      }),
    });
    await res.arrayBuffer();
    const ms = performance.now() - t;
    if (res.status !== 200) throw new Error(`status ${res.status}`);
    if (expect && res.headers.get('x-cache') !== expect) throw new Error(`expected x-cache ${expect}, got ${res.headers.get('x-cache')}`);
    return ms;
  };
  const stored = async (n: number) =>
    waitFor(
      async () => {
        const text = await (await fetch(`${stack.routerUrl}/metrics`)).text();
        return Number(/router_cache_stores_total\{result="stored"\} (\d+)/.exec(text)?.[1] ?? 0) >= n;
      },
      10_000,
      20,
    );

  // Warm up the path (gRPC channel, embedder worker, JIT).
  // Each miss carries its own seed, so it is a new exact key and a new semantic scope: with GloVe,
  // "question number 1" and "question number 2" are near-identical (see docs/idempotency-and-cache.md).
  for (let i = 0; i < 20; i++) await ask(`warm-up question number ${i}?`, 'miss', 1_000 + i);
  await ask('What is the capital of France?');
  await stored(21);

  const sequential = async (n: number, q: (i: number) => string, expect: string, seed?: (i: number) => number) => {
    const xs: number[] = [];
    for (let i = 0; i < n; i++) xs.push(await ask(q(i), expect, seed?.(i)));
    return xs;
  };
  const concurrent = async (n: number, q: string, expect: string) => {
    const xs: number[] = [];
    let next = 0;
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next++ < n) xs.push(await ask(q, expect));
      }),
    );
    return { xs, rps: n / ((performance.now() - t0) / 1000) };
  };

  const miss = await sequential(
    N_MISS,
    (i) => `Tell me fact number ${i} about the ocean?`,
    'miss',
    (i) => i,
  );
  const exact = await sequential(N_HIT, () => 'What is the capital of France?', 'hit');
  const semantic = await sequential(N_HIT, () => 'What is the capital city of France?', 'semantic-hit');
  const exactC = await concurrent(N_HIT, 'What is the capital of France?', 'hit');
  const semanticC = await concurrent(N_HIT, 'What is the capital city of France?', 'semantic-hit');

  const row = (kind: string, concurrency: number, xs: number[], rps?: number) => ({
    kind,
    concurrency,
    n: xs.length,
    p50_ms: percentile(xs, 50),
    p99_ms: percentile(xs, 99),
    ...(rps ? { req_per_s: Math.round(rps) } : { req_per_s: Math.round(1000 / (xs.reduce((a, b) => a + b, 0) / xs.length)) }),
  });
  const rows = [
    row('miss (engine, 16 tokens)', 1, miss),
    row('exact hit', 1, exact),
    row('semantic hit', 1, semantic),
    row('exact hit', CONCURRENCY, exactC.xs, exactC.rps),
    row('semantic hit', CONCURRENCY, semanticC.xs, semanticC.rps),
  ];
  printTable('Response cache: request latency through the router (non-streaming, max_tokens 16)', rows);
  writeResults('cache', {
    rows,
    internals,
    note: 'miss = new question and seed each time (exact lookup + embedding + index search + engine); semantic hit = exact miss + embedding + index search + store read; simulated vLLM at default speed',
  });
} finally {
  await stack.stop();
}
