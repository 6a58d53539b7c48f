// Admission cost: what the router's admission stage adds per request at concurrency 64, for the
// limit store (RPM + TPM + concurrency lease) plus the budget check (tenant + key + one tag),
// on Redis over loopback (two scripts as before, and the router's one-round-trip admitAll) and in
// memory. Redis round trips per request from INFO's command count.
// Run: npx tsx test/bench/admission.ts
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import type { LimitStore } from '../../common/store/limits.ts';
import type { BudgetStore } from '../../common/store/budgets.ts';
import { MemoryLimitStore } from '../../common/store/memory-limits.ts';
import { RedisLimitStore } from '../../common/store/redis-limits.ts';
import { MemoryBudgetStore } from '../../common/store/memory-budgets.ts';
import { RedisBudgetStore } from '../../common/store/redis-budgets.ts';
import { Budgets, budgetCheckKeys } from '../../router/accounting/budgets.ts';
import { createLogger } from '../../common/logger.ts';
import { startRedis } from '../helpers/redis.ts';

const CONCURRENCY = 64;
const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 20_000);

async function run(name: string, limits: LimitStore, budgetStore: BudgetStore, commands?: () => Promise<number>, oneTrip = false) {
  const budgets = new Budgets(
    budgetStore,
    { warnAt: 0.8, onExhausted: 'refuse', downgrade: {}, tags: { 'team=a': { monthlyCostUsd: 1e9 } } },
    createLogger('bench', 'silent'),
  );
  const principal = { tenantId: 't1', keyId: 'k1', tenantPolicy: { monthlyCostBudgetUsd: 1e9 }, keyPolicy: {}, tags: { team: 'a' } };
  const scopes = budgets.scopesOf(principal);
  const policy = { rpm: 1e9, tpm: 1e12, maxConcurrent: 1e6 };
  const lat: number[] = [];
  let next = 0;
  const before = await commands?.();
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next++ < REQUESTS) {
        const leaseId = randomUUID();
        const s = performance.now();
        if (oneTrip && limits.admitAll) {
          // What the router does with Redis: limits and the budget spend in one script, then the check with no call.
          const at = Date.now();
          const keys = budgetCheckKeys(principal, budgets.config, at);
          const r = await limits.admitAll({
            scopes: [{ key: 't:t1', policy }],
            tokens: 100,
            leaseId,
            leaseTtlMs: 30_000,
            budgetKeys: keys,
          });
          await budgets.check(scopes, at, { keys, spend: r.spend });
        } else {
          await limits.admit({ key: 't:t1', policy, tokens: 100, leaseId, leaseTtlMs: 30_000 });
          await budgets.check(scopes);
        }
        lat.push(performance.now() - s);
        await limits.settle('t:t1', leaseId, policy, 0); // settle and spend are after the answer, not admission
      }
    }),
  );
  const wall = performance.now() - t0;
  const after = await commands?.();
  lat.sort((a, b) => a - b);
  const q = (p: number) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))]!.toFixed(3);
  // Commands: admit (EVALSHA) + budget read (EVALSHA) at admission, settle after; INFO itself counts 1.
  const perReq = before !== undefined && after !== undefined ? ((after - before) / REQUESTS).toFixed(2) : 'n/a';
  console.log(
    `${name.padEnd(9)} admission p50 ${q(0.5)} ms  p99 ${q(0.99)} ms  ${((REQUESTS / wall) * 1000).toFixed(0)} admissions/s  Redis round trips/request ${perReq} (${oneTrip ? 'admission: limits + budgets 1' : 'admission: limits 1 + budgets 1'}; settle 1 after the answer)`,
  );
}

const redis = await startRedis();
const probe = new Redis(redis.url);
// Round trips = script calls (commands run inside a script are not round trips).
const commands = async () =>
  [...(await probe.info('commandstats')).matchAll(/cmdstat_eval(?:sha)?:calls=(\d+)/g)].reduce((s, m) => s + Number(m[1]), 0);
await run('memory', new MemoryLimitStore(), new MemoryBudgetStore());
const rl = new RedisLimitStore(redis.url);
const rb = new RedisBudgetStore(redis.url);
await rl.ready();
await rb.ready();
await run('warmup', rl, rb);
await run('redis-2rt', rl, rb, commands);
await run('redis-1rt', rl, rb, commands, true);
await rl.close();
await rb.close();
probe.disconnect();
await redis.stop();
