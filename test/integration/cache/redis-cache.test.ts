// The response cache on Redis end to end (router.cache with a redisUrl, tenancy off): the answer
// lands in Redis under a hashed key (no prompt or API key in the key name), a repeat is served
// from there (flushing Redis turns the next repeat into a miss), and with tenancy off two API
// keys never share an entry.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { Redis } from 'ioredis';
import { startStack, waitFor, simState, DEFAULT_MODEL, type Stack } from '../../helpers/stack.ts';
import { startRedis, type RedisProcess } from '../../helpers/redis.ts';

describe('response cache on Redis (router + agent + simulated engine + redis-server)', () => {
  let redis: RedisProcess;
  let probe: Redis;
  let stack: Stack;
  const client = (key: string) => new OpenAI({ baseURL: `${stack.routerUrl}/v1`, apiKey: key, maxRetries: 0 });
  const ask = async (c: OpenAI, content: string) => {
    const { data, response } = await c.chat.completions
      .create({ model: DEFAULT_MODEL, messages: [{ role: 'user', content }], max_tokens: 8, seed: 42 })
      .withResponse();
    return { text: data.choices[0]!.message.content, cache: response.headers.get('x-cache') };
  };
  const keys = () => probe.keys('icp:cache:*');

  before(async () => {
    redis = await startRedis();
    probe = new Redis(redis.url);
    stack = await startStack({
      sims: [{ id: 'a', args: ['--decode-step-ms', '2', '--decode-step-ms-per-seq', '0'] }],
      agents: [{ id: 'gpu-a', sim: 'a' }],
      withControlPlane: false,
      router: { cache: { redisUrl: redis.url } },
    });
    await waitFor(
      async () =>
        ((await (await fetch(`${stack.routerUrl}/v1/models`)).json()) as { data: { id: string }[] }).data.some(
          (m) => m.id === DEFAULT_MODEL,
        ),
      20_000,
    );
  });

  after(async () => {
    probe?.disconnect();
    await stack?.stop();
    await redis?.stop();
  });

  it('stores in Redis, serves from Redis, and keeps API keys apart', async () => {
    const alice = client('sk-alice-secret-0001');
    const bob = client('sk-bob-secret-0002');
    const first = await ask(alice, 'Secret prompt about pelicans');
    assert.equal(first.cache, 'miss');
    const stored = await waitFor(async () => ((await keys()).length === 1 ? keys() : undefined), 10_000, 50);
    assert.match(stored![0]!, /^icp:cache:[0-9a-f]{64}$/, 'the key name is a hash');
    const value = (await probe.get(stored![0]!))!;
    assert.ok(!value.includes('sk-alice') && !value.includes('pelicans'), 'neither the API key nor the prompt is stored');
    assert.ok((await probe.pttl(stored![0]!)) > 0, 'stored with a TTL');

    const engine = (await simState(stack.sims.get('a')!.url)).completed;
    assert.deepEqual(await ask(alice, 'Secret prompt about pelicans'), { text: first.text, cache: 'hit' });
    assert.equal((await simState(stack.sims.get('a')!.url)).completed, engine);

    assert.equal((await ask(bob, 'Secret prompt about pelicans')).cache, 'miss', 'another API key: no hit');
    await waitFor(async () => (await keys()).length === 2, 10_000, 50);

    await probe.flushall();
    assert.equal((await ask(alice, 'Secret prompt about pelicans')).cache, 'miss', 'served from Redis: gone when Redis is flushed');
  });
});
