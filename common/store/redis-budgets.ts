// Redis spend: one hash per scope and period ({icp:bud}:<scope|period>, fields c = USD, t = tokens),
// read and added to by Lua scripts (one round trip each, atomic across replicas). The shared hash
// tag keeps a request's keys in one Cluster slot.
import type { Redis } from 'ioredis';
import { connectRedis, redisReady } from './redis-connection.ts';
import { SPEND_TTL_MS, type BudgetStore, type Spend } from './budgets.ts';

export const BUDGET_READ = `
local out = {}
for i, k in ipairs(KEYS) do
  local v = redis.call('HMGET', k, 'c', 't')
  out[i] = {v[1] or '0', v[2] or '0'}
end
return out
`;

const ADD = `
local out = {}
for i, k in ipairs(KEYS) do
  local c = redis.call('HINCRBYFLOAT', k, 'c', ARGV[1])
  local t = redis.call('HINCRBY', k, 't', ARGV[2])
  redis.call('PEXPIRE', k, ARGV[3])
  out[i] = {c, tostring(t)}
end
return out
`;

type Scripts = {
  icpBudgetRead(n: number, ...keys: string[]): Promise<[string, string][]>;
  icpBudgetAdd(n: number, ...args: (string | number)[]): Promise<[string, string][]>;
};

/** The Redis key of a `scope|period` spend hash (also read by the limit store's admission script). */
export const budgetRedisKey = (k: string) => `{icp:bud}:${k}`;

export const toSpend = ([c, t]: [string, string]): Spend => ({ costUsd: Number(c), tokens: Number(t) });

export class RedisBudgetStore implements BudgetStore {
  readonly kind = 'redis' as const;
  private readonly redis: Redis & Scripts;

  constructor(url: string, opts: { commandTimeoutMs?: number } = {}) {
    const redis = connectRedis(url, opts.commandTimeoutMs ?? 500);
    redis.defineCommand('icpBudgetRead', { lua: BUDGET_READ });
    redis.defineCommand('icpBudgetAdd', { lua: ADD });
    this.redis = redis as Redis & Scripts;
  }

  private key = budgetRedisKey;

  ready(timeoutMs = 5_000): Promise<void> {
    return redisReady(this.redis, timeoutMs);
  }

  async read(keys: readonly string[]): Promise<Spend[]> {
    if (keys.length === 0) return [];
    return (await this.redis.icpBudgetRead(keys.length, ...keys.map(this.key))).map(toSpend);
  }

  async add(keys: readonly string[], s: Spend): Promise<Spend[]> {
    if (keys.length === 0) return [];
    return (await this.redis.icpBudgetAdd(keys.length, ...keys.map(this.key), String(s.costUsd), Math.round(s.tokens), SPEND_TTL_MS)).map(
      toSpend,
    );
  }

  async close(): Promise<void> {
    this.redis.disconnect();
  }
}
