// Idempotency keys across router replicas: two router processes share one real redis-server. A
// repeat sent to the second router while the first one generates joins it (frames from the Redis
// Stream), and after it finished gets the stored answer: the engine generates once.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import OpenAI from 'openai';
import { startStack, simState, waitFor, DEFAULT_MODEL, type Stack } from '../../helpers/stack.ts';
import { startRedis, type RedisProcess } from '../../helpers/redis.ts';
import { spawnService, type ServiceProcess } from '../../../cli/spawn-service.ts';
import { sleep } from '../../../common/process.ts';

const LEASE_MS = 2_000;

describe('idempotency keys across two routers sharing Redis', () => {
  let redis: RedisProcess;
  let stack: Stack;
  let second: ServiceProcess;
  const client = (url: string) => new OpenAI({ baseURL: `${url}/v1`, apiKey: 'sk-shared', maxRetries: 0, timeout: 60_000 });
  const completed = async () => (await simState(stack.sims.get('a')!.url)).completed;
  const metric = async (url: string, outcome: string) => {
    const text = await (await fetch(`${url}/metrics`)).text();
    const m = text.match(new RegExp(`^router_idempotent_requests_total\\{outcome="${outcome}"\\} (\\d+)`, 'm'));
    return m ? Number(m[1]) : 0;
  };
  const served = async (url: string) => ((await (await fetch(`${url}/v1/models`)).json()) as { data: unknown[] }).data.length >= 1;

  before(async () => {
    redis = await startRedis();
    stack = await startStack({
      sims: [{ id: 'a', args: ['--max-num-seqs', '64', '--decode-step-ms', '30', '--decode-step-ms-per-seq', '0'] }],
      agents: [{ id: 'gpu-a', sim: 'a' }],
      router: { admission: { enabled: false }, auth: { redisUrl: redis.url }, idempotency: { leaseMs: LEASE_MS } },
    });
    second = await spawnService({
      name: 'router-2',
      entry: 'cli/main.ts',
      args: ['router', '--config', stack.configFile],
      env: { LOG_LEVEL: 'warn', ICP_ROUTER_TOKEN: stack.credentials.routerToken },
    });
    await waitFor(() => served(stack.routerUrl), 20_000);
    await waitFor(() => served(second.url), 20_000);
  });

  after(async () => {
    await second?.stop(5_000);
    await stack?.stop();
    await redis?.stop();
  });

  it('a repeat at the other router joins the running generation, then replays it', async () => {
    const before = await completed();
    const key = randomUUID();
    const body = {
      model: DEFAULT_MODEL,
      messages: [{ role: 'user' as const, content: `shared across replicas ${key}` }],
      max_tokens: 50,
      stream: true as const,
    };
    const opts = { headers: { 'Idempotency-Key': key } };
    const read = async (stream: AsyncIterable<OpenAI.Chat.Completions.ChatCompletionChunk>, onFirst?: () => void) => {
      const chunks: string[] = [];
      for await (const chunk of stream) {
        chunks.push(JSON.stringify(chunk));
        if (chunks.length === 1) onFirst?.();
      }
      return chunks;
    };
    let joined: Promise<string[]> | undefined;
    const first = await read(await client(stack.routerUrl).chat.completions.create(body, opts), () => {
      // The first router is generating: the same key now reaches the second one.
      joined = client(second.url)
        .chat.completions.create(body, opts)
        .then((s) => read(s));
    });
    const other = await joined!;
    assert.ok(first.length > 3);
    assert.deepEqual(other, first, 'the second router relayed the same chunks');
    assert.equal(await metric(second.url, 'joined'), 1, 'it joined (not replayed or executed)');
    assert.equal(await metric(second.url, 'executed'), 0);

    // Finished: a repeat at the second router gets the stored answer.
    const replayed = await read(await client(second.url).chat.completions.create(body, opts));
    assert.deepEqual(replayed, first);
    assert.equal(await metric(second.url, 'replayed'), 1);
    assert.equal((await completed()) - before, 1, 'the engine generated once');

    // Another body under the key is a conflict at either router.
    await assert.rejects(
      client(second.url).chat.completions.create({ ...body, max_tokens: 49 }, opts),
      (err: unknown) => (err as { status?: number }).status === 409,
    );
  });

  // Last: it kills the first router.
  it("a crashed owner's key is taken over by the next repeat once its lease expired", async () => {
    const key = randomUUID();
    const body = {
      model: DEFAULT_MODEL,
      messages: [{ role: 'user' as const, content: `owner crashes ${key}` }],
      max_tokens: 40,
      seed: 3,
      stream: true as const,
    };
    const reference: string[] = [];
    for await (const chunk of await client(second.url).chat.completions.create(body)) reference.push(chunk.choices[0]?.delta.content ?? '');
    const stream = await client(stack.routerUrl).chat.completions.create(body, { headers: { 'Idempotency-Key': key } });
    const it = stream[Symbol.asyncIterator]();
    await it.next();
    stack.router.kill('SIGKILL');
    await stack.router.exited;
    // A lower bound: the dead owner's lease has run out, so the second router takes the key over.
    await sleep(LEASE_MS + 500);
    const texts: string[] = [];
    for await (const chunk of await client(second.url).chat.completions.create(body, { headers: { 'Idempotency-Key': key } }))
      texts.push(chunk.choices[0]?.delta.content ?? '');
    assert.equal(texts.join(''), reference.join(''));
    assert.equal(await metric(second.url, 'taken_over'), 1);
  });
});
