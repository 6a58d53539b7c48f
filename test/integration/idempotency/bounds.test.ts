// The memory idempotency store's bounds end to end (issue 17: every full answer was kept for 24 h
// with no cap): with a small `maxBytes`, older answers are evicted (counted in
// router_idempotency_evictions_total) and their keys run again, the newest still replay; an answer
// over `maxEntryBytes` is served, marked `idempotency-not-stored: too_large`, and not kept.
// Real simulator, agent, control plane and router processes; the Redis store against a real Redis.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { startStack, simState, waitFor, DEFAULT_MODEL, type Stack } from '../../helpers/stack.ts';
import { startRedis, type RedisProcess } from '../../helpers/redis.ts';
import { RedisIdempotencyStore } from '../../../router/idempotency/redis-store.ts';
import { ResponseRecorder } from '../../../router/http/recorded-response.ts';

describe('idempotency store bounds (one router, memory store)', () => {
  const stacks: Stack[] = [];
  const start = async (idempotency: object) => {
    const stack = await startStack({
      sims: [{ id: 'a', args: ['--max-num-seqs', '64', '--decode-step-ms', '1', '--decode-step-ms-per-seq', '0'] }],
      agents: [{ id: 'gpu-a', sim: 'a' }],
      withControlPlane: false,
      router: { admission: { enabled: false }, idempotency },
    });
    stacks.push(stack);
    await waitFor(
      async () => ((await (await fetch(`${stack.routerUrl}/v1/models`)).json()) as { data: unknown[] }).data.length >= 1,
      20_000,
    );
    return stack;
  };
  const chat = (stack: Stack, key: string, maxTokens = 4) =>
    fetch(`${stack.routerUrl}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'idempotency-key': key },
      body: JSON.stringify({ model: DEFAULT_MODEL, messages: [{ role: 'user', content: `answer for ${key}` }], max_tokens: maxTokens }),
    });
  const evictions = async (stack: Stack, reason: string) => {
    const text = await (await fetch(`${stack.routerUrl}/metrics`)).text();
    const m = text.match(new RegExp(`^router_idempotency_evictions_total\\{reason="${reason}"\\} (\\d+)`, 'm'));
    return m ? Number(m[1]) : 0;
  };

  after(async () => {
    for (const s of stacks) await s.stop();
  });

  it('evicts the least recently used answers beyond maxBytes; evicted keys run again, recent ones replay', async () => {
    // About 1 KB per stored answer: 8 KiB hold a handful.
    const stack = await start({ maxBytes: 8 * 1024, maxTenantShare: 1 });
    const keys = Array.from({ length: 40 }, () => randomUUID());
    for (const k of keys) {
      const res = await chat(stack, k);
      assert.equal(res.status, 200);
      await res.text();
    }
    await waitFor(async () => (await evictions(stack, 'lru')) >= 20, 5_000);
    const completed = (await simState(stack.sims.get('a')!.url)).completed;
    const last = await chat(stack, keys.at(-1)!);
    assert.equal(last.headers.get('idempotent-replayed'), 'true', 'the newest answer is still stored');
    await last.text();
    const first = await chat(stack, keys[0]!);
    assert.equal(first.status, 200);
    assert.equal(first.headers.get('idempotent-replayed'), null, 'the oldest was evicted: generated again');
    await first.text();
    assert.equal((await simState(stack.sims.get('a')!.url)).completed - completed, 1);
  });

  it('an answer over maxEntryBytes is served, marked, and not stored', async () => {
    const stack = await start({ maxEntryBytes: 300 });
    const key = randomUUID();
    const res = await chat(stack, key, 40);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('idempotency-not-stored'), 'too_large');
    const body = (await res.json()) as { choices: { message: { content: string } }[] };
    assert.ok(body.choices[0]!.message.content.length > 0);
    await waitFor(async () => (await evictions(stack, 'too_large')) === 1, 5_000);
    const again = await chat(stack, key, 40);
    assert.equal(again.headers.get('idempotent-replayed'), null, 'a repeat runs again');
    await again.text();
  });
});

describe('idempotency store bounds (Redis store)', () => {
  let redis: RedisProcess;
  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    await redis?.stop();
  });

  it('an answer over maxEntryBytes is not stored and its key is released; one within it is kept for the TTL', async () => {
    const store = new RedisIdempotencyStore(redis.url, {
      ttlMs: 60_000,
      leaseMs: 5_000,
      keyPrefix: `t:${randomUUID()}:`,
      commandTimeoutMs: 2_000,
      maxEntryBytes: 2_000,
    });
    try {
      await store.ready();
      const big = new ResponseRecorder('chat.completion').json(`{"x":"${'a'.repeat(5_000)}"}`).finish();
      assert.equal((await store.claim('big', 'h', 'a1')).kind, 'owner');
      assert.equal(await store.complete('big', 'a1', big), false);
      assert.equal((await store.claim('big', 'h', 'a2')).kind, 'owner', 'released: a repeat runs again');
      const small = new ResponseRecorder('chat.completion').json('{"x":"ok"}').finish();
      assert.equal((await store.claim('small', 'h', 'b1')).kind, 'owner');
      assert.equal(await store.complete('small', 'b1', small), true);
      assert.deepEqual(await store.claim('small', 'h', 'b2'), { kind: 'done', record: small });
    } finally {
      await store.close();
    }
  });
});
