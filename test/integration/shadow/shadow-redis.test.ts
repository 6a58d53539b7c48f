// The shadow stores on a real Redis: the daily token budget shared by several clients (router
// replicas) under concurrent reservations, and the control plane's capped record stream.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { RedisShadowBudget } from '../../../router/shadow/budget.ts';
import { RedisShadowStore } from '../../../control-plane/shadow/store.ts';
import type { ShadowRecord } from '../../../common/shadow-record.ts';
import { startRedis, type RedisProcess } from '../../helpers/redis.ts';
import { waitFor } from '../../helpers/stack.ts';

let redis: RedisProcess;
before(async () => {
  redis = await startRedis();
});
after(async () => {
  await redis?.stop();
});

describe('shadow budget on Redis', () => {
  it('three replicas reserving at once never pass the budget together', async () => {
    const replicas = [0, 1, 2].map(() => new RedisShadowBudget(redis.url));
    try {
      const rule = `rule-${randomUUID()}`;
      await waitFor(async () => (await replicas[0]!.spent(rule)) === 0, 5_000, 50);
      // 60 reservations of 10 tokens against a budget of 250: exactly 25 fit.
      const results = await Promise.all(Array.from({ length: 60 }, (_, i) => replicas[i % 3]!.reserve(rule, 10, 250)));
      assert.equal(results.filter(Boolean).length, 25);
      assert.equal(await replicas[1]!.spent(rule), 250);
      await replicas[2]!.adjust(rule, -40);
      assert.equal(await replicas[0]!.spent(rule), 210);
      assert.equal(await replicas[0]!.reserve(rule, 40, 250), true);
      assert.equal(await replicas[0]!.reserve(rule, 1, 250), false);
    } finally {
      for (const r of replicas) await r.close();
    }
  });
});

describe('shadow record store on Redis', () => {
  it('keeps the newest records (capped stream) and reads a time window oldest first', async () => {
    const store = new RedisShadowStore(redis.url, 100);
    try {
      const now = Date.now();
      const rec = (i: number): ShadowRecord => ({
        id: `id${i}`,
        ts: now - (300 - i) * 1_000,
        alias: 'chat',
        target: 'local:b',
        outcome: 'ok',
        error: null,
        primary: { model: 'a', backend: 'node:1', ttftMs: null, latencyMs: 10, promptTokens: 1, completionTokens: 1 },
        shadow: { model: 'b', backend: 'node:2', ttftMs: 5, latencyMs: 20, promptTokens: 1, completionTokens: 1 },
        similarity: 0.5,
      });
      await waitFor(
        async () => {
          await store.list(0, 1);
          return true;
        },
        5_000,
        50,
      );
      for (let i = 0; i < 300; i += 50) await store.append(Array.from({ length: 50 }, (_, k) => rec(i + k)));
      const all = await store.list(0, 10_000);
      // MAXLEN ~ trims whole macro nodes: about the bound, never everything.
      assert.ok(all.length >= 100 && all.length < 300, `kept ${all.length}`);
      assert.equal(all[all.length - 1]!.id, 'id299');
      const recent = await store.list(now - 10_500, 10_000);
      assert.deepEqual(
        recent.map((r) => r.id),
        ['id290', 'id291', 'id292', 'id293', 'id294', 'id295', 'id296', 'id297', 'id298', 'id299'],
      );
      assert.deepEqual(
        (await store.list(0, 3)).map((r) => r.id),
        ['id297', 'id298', 'id299'],
      );
    } finally {
      await store.close();
    }
  });
});
