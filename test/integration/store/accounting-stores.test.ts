// The budget and usage store contracts, run against both implementations: memory (the embedded
// default) and real Redis (several clients standing in for router replicas and the control plane).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { BudgetStore } from '../../../common/store/budgets.ts';
import { periodsOf } from '../../../common/store/budgets.ts';
import { MemoryBudgetStore } from '../../../common/store/memory-budgets.ts';
import { RedisBudgetStore } from '../../../common/store/redis-budgets.ts';
import type { UsageRecord, UsageStore } from '../../../common/store/usage.ts';
import { toCsv, usageQuerySchema } from '../../../common/store/usage.ts';
import { MemoryUsageStore } from '../../../common/store/memory-usage.ts';
import { RedisUsageStore } from '../../../common/store/redis-usage.ts';
import { Budgets } from '../../../router/accounting/budgets.ts';
import { createLogger } from '../../../common/logger.ts';
import { startRedis, type RedisProcess } from '../../helpers/redis.ts';

let redis: RedisProcess;
const open: { close(): Promise<void> }[] = [];
before(async () => {
  redis = await startRedis();
});
after(async () => {
  for (const s of open) await s.close();
  await redis?.stop();
});

const budgetImpls: { name: string; make: () => Promise<BudgetStore[]> }[] = [
  {
    name: 'memory',
    make: async () => {
      const s = new MemoryBudgetStore();
      return [s, s, s];
    },
  },
  {
    name: 'redis',
    make: async () => {
      const s = [0, 1, 2].map(() => new RedisBudgetStore(redis.url));
      open.push(...s);
      await Promise.all(s.map((x) => x.ready()));
      return s;
    },
  },
];

for (const impl of budgetImpls) {
  describe(`budget store: ${impl.name}`, () => {
    it('adds spend atomically across replicas and reads it back per key', async () => {
      const stores = await impl.make();
      const k = [`t:${randomUUID()}|d:2025-01-01`, `t:${randomUUID()}|m:2025-01`];
      assert.deepEqual(await stores[0]!.read(k), [
        { costUsd: 0, tokens: 0 },
        { costUsd: 0, tokens: 0 },
      ]);
      await Promise.all(Array.from({ length: 300 }, (_, i) => stores[i % 3]!.add(k, { costUsd: 0.001, tokens: 10 })));
      const [a, b] = await stores[1]!.read(k);
      assert.equal(a!.tokens, 3_000);
      assert.equal(b!.tokens, 3_000);
      assert.ok(Math.abs(a!.costUsd - 0.3) < 1e-9, String(a!.costUsd));
    });

    it('reports 80% and 100% exactly once, by the replica whose addition crossed them', async () => {
      const stores = await impl.make();
      const events: string[] = [];
      const budgets = stores.map(
        (s) =>
          new Budgets(s, { warnAt: 0.8, onExhausted: 'refuse', downgrade: {}, tags: {} }, createLogger('test', 'silent'), (level, r) =>
            events.push(`${level}:${r.period}:${r.kind}`),
          ),
      );
      const scope = [{ scope: `t:${randomUUID()}`, budget: { dailyCostUsd: 1 } }];
      for (let i = 0; i < 12; i++) await budgets[i % 3]!.record(scope, { costUsd: 0.1, tokens: 5 });
      assert.deepEqual(events, ['warning:day:cost', 'exhausted:day:cost']);
      const fullest = await budgets[0]!.check(scope);
      assert.ok(fullest && fullest.ratio >= 1.19 && fullest.period === 'day');
    });
  });
}

const record = (over: Partial<UsageRecord>): UsageRecord => ({
  id: randomUUID(),
  ts: Date.parse('2025-03-04T12:00:00Z'),
  tenantId: 'ten_a',
  keyId: 'k1',
  requestedModel: 'chat-default',
  model: 'sim-model',
  backend: 'node:gpu',
  lane: 'standard',
  tags: { team: 'search' },
  promptTokens: 10,
  completionTokens: 5,
  costUsd: 0.00002,
  ttftMs: 12,
  latencyMs: 40,
  outcome: 'ok',
  status: 200,
  ...over,
});

const usageImpls: { name: string; make: () => UsageStore }[] = [
  { name: 'memory', make: () => new MemoryUsageStore() },
  {
    name: 'redis',
    make: () => {
      const s = new RedisUsageStore(redis.url);
      open.push(s);
      return s;
    },
  },
];

for (const impl of usageImpls) {
  describe(`usage store: ${impl.name}`, () => {
    it('filters by tenant, key, tag, model and day; CSV with a header row', async () => {
      const store = impl.make();
      if (store instanceof RedisUsageStore) await new Promise((r) => setTimeout(r, 200));
      const tenant = `ten_${randomUUID().slice(0, 8)}`;
      const now = Date.now();
      await store.append([
        record({ tenantId: tenant, keyId: 'k1', ts: now }),
        record({ tenantId: tenant, keyId: 'k2', model: 'sim-b', tags: { team: 'ads' }, ts: now }),
        record({ tenantId: tenant, keyId: 'k1', ts: now - 3 * 86_400_000 }),
        record({ tenantId: 'other' }),
      ]);
      const q = (o: object) => store.query(usageQuerySchema.parse({ tenant, ...o }));
      assert.equal((await q({})).length, 3);
      assert.equal((await q({ key: 'k1' })).length, 2);
      assert.equal((await q({ tag: 'team=ads' })).length, 1);
      assert.equal((await q({ tag: 'team' })).length, 3);
      assert.equal((await q({ model: 'sim-b' })).length, 1);
      assert.equal((await q({ day: periodsOf(now).day.slice(2) })).length, 2);
      const csv = toCsv(await q({ key: 'k2' }))
        .trim()
        .split('\r\n');
      assert.equal(csv.length, 2);
      assert.match(csv[0]!, /^id,ts,tenantId,keyId,requestedModel,model,backend,lane,tags,promptTokens,completionTokens,costUsd/);
      assert.match(csv[1]!, /,sim-b,node:gpu,standard,team=ads,10,5,/);
    });
  });
}
