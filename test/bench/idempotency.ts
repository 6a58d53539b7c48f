// Idempotency keys: what a key costs and what a repeat saves, through the whole router (HTTP, auth
// off, admission on) against one simulated vLLM, with the memory store and with Redis on loopback.
// Sequential non-streaming requests (the latency of one request): no key, a new key each time
// (claim + generate + store), and a repeat of a finished key (the stored answer, no engine call);
// then a streamed repeat that resumes after Last-Event-ID.
// Run: npx tsx test/bench/idempotency.ts
import { randomUUID } from 'node:crypto';
import { startStack, waitFor, DEFAULT_MODEL, type Stack } from '../helpers/stack.ts';
import { startRedis } from '../helpers/redis.ts';
import { percentile, printTable, writeResults } from './report.ts';

const N = Number(process.env.BENCH_IDEMPOTENCY_N ?? 200);

async function measure(stack: Stack, store: string) {
  const ask = async (key: string | undefined, stream = false, lastEventId?: number): Promise<number> => {
    const headers: Record<string, string> = { 'content-type': 'application/json', authorization: 'Bearer bench' };
    if (key) headers['idempotency-key'] = key;
    if (lastEventId !== undefined) headers['last-event-id'] = String(lastEventId);
    const t = performance.now();
    const res = await fetch(`${stack.routerUrl}/v1/chat/completions`, {
      method: 'POST',
      headers,
      body: JSON.stringify({
        model: DEFAULT_MODEL,
        messages: [{ role: 'user', content: key ? `question ${key}` : `question ${randomUUID()}` }],
        max_tokens: 16,
        stream,
      }),
    });
    await res.arrayBuffer();
    if (res.status !== 200) throw new Error(`status ${res.status}`);
    return performance.now() - t;
  };
  for (let i = 0; i < 20; i++) await ask(randomUUID());
  const sequential = async (f: (i: number) => Promise<number>) => {
    const xs: number[] = [];
    for (let i = 0; i < N; i++) xs.push(await f(i));
    return xs;
  };
  const keys = Array.from({ length: N }, () => randomUUID());
  const plain = await sequential(() => ask(undefined));
  const first = await sequential((i) => ask(keys[i]));
  const replay = await sequential((i) => ask(keys[i]));
  const streamKeys = Array.from({ length: N }, () => randomUUID());
  await sequential((i) => ask(streamKeys[i], true));
  const resume = await sequential((i) => ask(streamKeys[i], true, 8));
  const row = (kind: string, xs: number[]) => ({ store, kind, n: xs.length, p50_ms: percentile(xs, 50), p99_ms: percentile(xs, 99) });
  return [
    row('no key (engine, 16 tokens)', plain),
    row('new key (claim + engine + store)', first),
    row('repeat: stored answer', replay),
    row('stream repeat, Last-Event-ID 8', resume),
  ];
}

const redis = await startRedis();
const rows: Record<string, unknown>[] = [];
try {
  for (const store of ['memory', 'redis'] as const) {
    const stack = await startStack({
      sims: [{ id: 'a', args: ['--max-num-seqs', '64'] }],
      agents: [{ id: 'gpu-a', sim: 'a' }],
      withControlPlane: false,
      router: store === 'redis' ? { auth: { redisUrl: redis.url } } : {},
    });
    try {
      await waitFor(
        async () => ((await (await fetch(`${stack.routerUrl}/v1/models`)).json()) as { data: unknown[] }).data.length >= 1,
        30_000,
      );
      rows.push(...(await measure(stack, store)));
    } finally {
      await stack.stop();
    }
  }
} finally {
  await redis.stop();
}
printTable('Idempotency keys: request latency through the router (non-streaming unless noted, max_tokens 16)', rows);
writeResults('idempotency', {
  rows,
  note: 'sequential requests; "new key" pays one claim and one store write on top of the generation; a repeat never reaches the engine; Redis on loopback',
});
