// Limits and budgets at admission in ONE Redis round trip: the limit store's admitAll script takes
// every scope (key and tenant) all or nothing and reads the budget spend in the same call.
// Measured at the router with Redis MONITOR: per admitted request exactly one admission command
// (the admitAll script), no separate per-scope limit script and no separate budget read.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Redis } from 'ioredis';
import OpenAI from 'openai';
import { startStack, waitFor, DEFAULT_MODEL, type Stack } from '../../helpers/stack.ts';
import { startRedis, type RedisProcess } from '../../helpers/redis.ts';
import { ADMIT, ADMIT_ALL, RedisLimitStore } from '../../../common/store/redis-limits.ts';
import { BUDGET_READ, RedisBudgetStore } from '../../../common/store/redis-budgets.ts';

const ADMIN_TOKEN = `admin-${Math.random().toString(36).slice(2)}-secret`;
const sha = (s: string) => createHash('sha1').update(s).digest('hex');

describe('admission: limits and budgets in one Redis round trip', () => {
  let redis: RedisProcess;

  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    await redis?.stop();
  });

  it('admitAll: all scopes or none, and the budget spend read in the same script', async () => {
    const limits = new RedisLimitStore(redis.url);
    const budgets = new RedisBudgetStore(redis.url);
    await Promise.all([limits.ready(), budgets.ready()]);
    try {
      await budgets.add(['t:x|m:2026-01'], { costUsd: 1.5, tokens: 42 });
      const scopes = [
        { key: 'k:a', policy: { rpm: 10 } },
        { key: 't:x', policy: { rpm: 1, maxConcurrent: 5 } },
      ];
      const ok = await limits.admitAll({
        scopes,
        tokens: 5,
        leaseId: 'l1',
        leaseTtlMs: 30_000,
        budgetKeys: ['t:x|m:2026-01', 't:x|d:2026-01-01'],
      });
      assert.equal(ok.admitted, true);
      assert.deepEqual(ok.spend, [
        { costUsd: 1.5, tokens: 42 },
        { costUsd: 0, tokens: 0 },
      ]);
      assert.deepEqual(
        ok.results.map((r) => r.requests?.remaining),
        [9, 0],
      );
      // The tenant's single RPM token is spent: refused, and the key's bucket was not charged.
      const no = await limits.admitAll({ scopes, tokens: 5, leaseId: 'l2', leaseTtlMs: 30_000, budgetKeys: [] });
      assert.equal(no.admitted, false);
      assert.equal(no.results.length, 2);
      assert.equal(no.results[1]!.reason, 'requests');
      assert.ok(no.results[1]!.retryAfterMs > 0);
      const key = await limits.admit({ key: 'k:a', policy: { rpm: 10 }, tokens: 0, leaseId: 'l3', leaseTtlMs: 30_000 });
      assert.equal(key.requests!.remaining, 8, 'only the first admission took a key token');
    } finally {
      await limits.close();
      await budgets.close();
    }
  });

  it('admitAll is atomic across replicas: 1000 concurrent admissions for a 100 RPM key admit the burst plus the refill', async () => {
    const replicas = [0, 1, 2].map(() => new RedisLimitStore(redis.url, { commandTimeoutMs: 10_000 }));
    await Promise.all(replicas.map((r) => r.ready()));
    try {
      const t0 = Date.now();
      const results = await Promise.all(
        Array.from({ length: 1000 }, (_, i) =>
          replicas[i % 3]!.admitAll({
            scopes: [
              { key: 'k:burst', policy: { rpm: 100 } },
              { key: 't:burst', policy: { maxConcurrent: 10_000 } },
            ],
            tokens: 0,
            leaseId: `l${i}`,
            leaseTtlMs: 60_000,
            budgetKeys: [],
          }),
        ),
      );
      const refill = Math.floor(((Date.now() - t0) / 1_000) * (100 / 60));
      const admitted = results.filter((r) => r.admitted).length;
      assert.ok(admitted >= 100 && admitted <= 100 + refill, `admitted ${admitted} (burst 100 + refill ${refill})`);
      assert.ok(results.filter((r) => !r.admitted).every((r) => r.results[0]!.reason === 'requests' && r.results.length === 1));
    } finally {
      await Promise.all(replicas.map((r) => r.close()));
    }
  });

  describe('at the router, counted with MONITOR', () => {
    let stack: Stack;
    let client: OpenAI;
    let conn: Redis;
    let monitor: Redis;
    const seen: string[] = [];

    before(async () => {
      process.env.ICP_ADMIN_TOKEN = ADMIN_TOKEN;
      stack = await startStack({
        sims: [{ id: 'a' }],
        agents: [{ id: 'gpu-a', sim: 'a' }],
        router: { auth: { mode: 'required', redisUrl: redis.url }, admission: { enabled: false } },
      });
      const adm = (path: string, body: object) =>
        fetch(`${stack.controlPlane!.url}${path}`, {
          method: 'POST',
          headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
          body: JSON.stringify(body),
        }).then((r) => r.json() as Promise<Record<string, string>>);
      // Two limit scopes (the key narrows RPM) and budgets on both tenant and key.
      const tenant = await adm('/v1/admin/tenants', {
        name: 'rt',
        policy: { rpm: 1_000, tpm: 1_000_000, maxConcurrent: 50, monthlyTokenBudget: 1_000_000_000 },
      });
      const key = (await adm(`/v1/admin/tenants/${tenant.id}/keys`, { name: 'k', policy: { rpm: 500, dailyCostBudgetUsd: 1_000 } })).key!;
      client = new OpenAI({ baseURL: `${stack.routerUrl}/v1`, apiKey: key, maxRetries: 0 });
      await waitFor(
        async () => {
          try {
            await client.chat.completions.create({ model: DEFAULT_MODEL, messages: [{ role: 'user', content: 'warm up' }], max_tokens: 1 });
            return true;
          } catch {
            return false;
          }
        },
        20_000,
        200,
      );
      conn = new Redis(redis.url);
      monitor = await conn.monitor();
      monitor.on('monitor', (_time: string, args: string[]) => {
        const [cmd, script] = [String(args[0]).toLowerCase(), String(args[1])];
        if (cmd === 'evalsha') seen.push(script);
        else if (cmd === 'eval') seen.push(sha(script));
        else seen.push(cmd);
      });
    });

    after(async () => {
      delete process.env.ICP_ADMIN_TOKEN;
      monitor?.disconnect();
      conn?.disconnect();
      await stack?.stop();
    });

    it('one admission command per request: the admitAll script; no per-scope admit, no budget read', async () => {
      const N = 10;
      for (let i = 0; i < N; i++) {
        const { response } = await client.chat.completions
          .create({ model: DEFAULT_MODEL, messages: [{ role: 'user', content: `hello ${i}` }], max_tokens: 2 })
          .withResponse();
        // Rate headers (the tenant's, the last scope checked): the admission did run its limits.
        assert.equal(response.headers.get('x-ratelimit-limit-requests'), '1000');
      }
      // MONITOR lines arrive on their own connection after the answers: wait until all N are in
      // (10 s on a loaded machine), then assert the exact counts.
      const countOf = (s: string) => seen.filter((x) => x === sha(s)).length;
      await waitFor(() => countOf(ADMIT_ALL) >= N, 10_000, 20).catch(() => undefined); // the equality below names the miss
      const count = (s: string) => seen.filter((x) => x === sha(s)).length;
      assert.equal(count(ADMIT_ALL), N, `admitAll per request (commands seen: ${[...new Set(seen)].join(', ')})`);
      assert.equal(count(ADMIT), 0, 'no per-scope admission script');
      assert.equal(count(BUDGET_READ), 0, 'no separate budget read');
    });
  });
});
