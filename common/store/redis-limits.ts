// Redis limits: one Lua script per admission (one round trip, atomic across router replicas);
// `admitAll` takes every scope and reads the budget spend in that same script.
// Time comes from Redis (TIME), so routers with skewed clocks share one notion of "now".
// Keys carry a hash tag ({icp:lim:<key>}) so the three keys of a key land in one Cluster slot.
import type { Redis } from 'ioredis';
import { connectRedis, redisReady } from './redis-connection.ts';
import type { AdmitAllInput, AdmitAllResult, AdmitInput, AdmitResult, LimitPolicy, LimitReason, LimitStore } from './limits.ts';
import { budgetRedisKey, toSpend } from './redis-budgets.ts';
import { bucketState } from './memory-limits.ts';

/** Redis's clock in ms, and a token bucket's level refilled to now; shared by both admission scripts. */
const CLOCK_AND_REFILL = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function refill(key, limit)
  local v = redis.call('HMGET', key, 'l', 't')
  local level = tonumber(v[1]); local at = tonumber(v[2])
  if level == nil then return limit end
  return math.min(limit, level + (now - at) * limit / 60000)
end
`;

export const ADMIT = `
${CLOCK_AND_REFILL}local rpm = tonumber(ARGV[1]); local tpm = tonumber(ARGV[2]); local maxc = tonumber(ARGV[3])
local tokens = tonumber(ARGV[4]); local lease = ARGV[5]; local ttl = tonumber(ARGV[6])
local rl, tl
if rpm >= 0 then rl = refill(KEYS[1], rpm) end
if tpm >= 0 then tl = refill(KEYS[2], tpm) end
local reason = 0
local retry = 0
if rl ~= nil and rl < 1 then
  reason = 1; retry = math.ceil((1 - rl) * 60000 / rpm)
else
  local need = 0
  if tl ~= nil then need = math.min(tokens, tpm) end
  if tl ~= nil and tl < need then
    reason = 2; retry = math.ceil((need - tl) * 60000 / tpm)
  elseif maxc >= 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
    if redis.call('ZCARD', KEYS[3]) >= maxc then
      reason = 3
      local first = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
      retry = math.max(1, math.min(1000, tonumber(first[2]) - now))
    end
  end
end
if reason == 0 then
  if rl ~= nil then rl = rl - 1 end
  if tl ~= nil then tl = tl - tokens end
  if maxc >= 0 then
    redis.call('ZADD', KEYS[3], now + ttl, lease)
    redis.call('PEXPIRE', KEYS[3], ttl + 60000)
  end
end
if rl ~= nil then redis.call('HSET', KEYS[1], 'l', tostring(rl), 't', now); redis.call('PEXPIRE', KEYS[1], 120000) end
if tl ~= nil then redis.call('HSET', KEYS[2], 'l', tostring(tl), 't', now); redis.call('PEXPIRE', KEYS[2], 120000) end
return {reason, retry, tostring(rl or -1), tostring(tl or -1)}
`;

// Admission in one round trip: every scope's limits (KEYS 3 per scope: rpm, tpm, leases) all or
// nothing, then the budget spend hashes (the remaining KEYS) read for the budget check.
// ARGV: scope count, tokens, lease id, lease ttl, then rpm, tpm, maxConcurrent per scope.
// Reply: {reason, retry ms, refusing scope (1-based, 0 = none), {rl, tl per scope examined}, {{c, t} per budget key}}.
export const ADMIT_ALL = `
${CLOCK_AND_REFILL}local n = tonumber(ARGV[1]); local tokens = tonumber(ARGV[2]); local lease = ARGV[3]; local ttl = tonumber(ARGV[4])
local function lim(i)
  local a = 4 + (i - 1) * 3
  return tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3]), (i - 1) * 3
end
local rls, tls = {}, {}
local reason, retry, refused, seen = 0, 0, 0, 0
for i = 1, n do
  local rpm, tpm, maxc, k = lim(i)
  seen = i
  rls[i] = 0; tls[i] = 0
  if rpm >= 0 then rls[i] = refill(KEYS[k + 1], rpm) end
  if tpm >= 0 then tls[i] = refill(KEYS[k + 2], tpm) end
  if rpm >= 0 and rls[i] < 1 then
    reason = 1; retry = math.ceil((1 - rls[i]) * 60000 / rpm)
  else
    local need = 0
    if tpm >= 0 then need = math.min(tokens, tpm) end
    if tpm >= 0 and tls[i] < need then
      reason = 2; retry = math.ceil((need - tls[i]) * 60000 / tpm)
    elseif maxc >= 0 then
      redis.call('ZREMRANGEBYSCORE', KEYS[k + 3], '-inf', now)
      if redis.call('ZCARD', KEYS[k + 3]) >= maxc then
        reason = 3
        local first = redis.call('ZRANGE', KEYS[k + 3], 0, 0, 'WITHSCORES')
        retry = math.max(1, math.min(1000, tonumber(first[2]) - now))
      end
    end
  end
  if reason > 0 then refused = i; break end
end
local levels = {}
for i = 1, seen do
  local rpm, tpm, maxc, k = lim(i)
  if reason == 0 then
    if rpm >= 0 then rls[i] = rls[i] - 1 end
    if tpm >= 0 then tls[i] = tls[i] - tokens end
    if maxc >= 0 then
      redis.call('ZADD', KEYS[k + 3], now + ttl, lease)
      redis.call('PEXPIRE', KEYS[k + 3], ttl + 60000)
    end
  end
  if rpm >= 0 then redis.call('HSET', KEYS[k + 1], 'l', tostring(rls[i]), 't', now); redis.call('PEXPIRE', KEYS[k + 1], 120000) end
  if tpm >= 0 then redis.call('HSET', KEYS[k + 2], 'l', tostring(tls[i]), 't', now); redis.call('PEXPIRE', KEYS[k + 2], 120000) end
  levels[#levels + 1] = tostring(rls[i]); levels[#levels + 1] = tostring(tls[i])
end
local spend = {}
if reason == 0 then
  for j = 3 * n + 1, #KEYS do
    local v = redis.call('HMGET', KEYS[j], 'c', 't')
    spend[#spend + 1] = {v[1] or '0', v[2] or '0'}
  end
end
return {reason, retry, refused, levels, spend}
`;

const SETTLE = `
redis.call('ZREM', KEYS[3], ARGV[1])
local tpm = tonumber(ARGV[2]); local delta = tonumber(ARGV[3])
if tpm >= 0 and delta ~= 0 then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local v = redis.call('HMGET', KEYS[2], 'l', 't')
  local level = tonumber(v[1]); local at = tonumber(v[2])
  if level == nil then level = tpm; at = now end
  level = math.min(tpm, math.min(tpm, level + (now - at) * tpm / 60000) - delta)
  redis.call('HSET', KEYS[2], 'l', tostring(level), 't', now)
  redis.call('PEXPIRE', KEYS[2], 120000)
end
return 1
`;

const RENEW = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[2]), ARGV[1])
`;

const REASONS: (LimitReason | undefined)[] = [undefined, 'requests', 'tokens', 'concurrency'];

type Scripts = {
  icpAdmit(k1: string, k2: string, k3: string, ...args: (string | number)[]): Promise<[number, number, string, string]>;
  icpSettle(k1: string, k2: string, k3: string, ...args: (string | number)[]): Promise<number>;
  icpRenew(k1: string, ...args: (string | number)[]): Promise<number>;
  icpAdmitAll(numKeys: number, ...args: (string | number)[]): Promise<[number, number, number, string[], [string, string][]]>;
};

export class RedisLimitStore implements LimitStore {
  readonly kind = 'redis' as const;
  private readonly redis: Redis & Scripts;

  constructor(url: string, opts: { commandTimeoutMs?: number } = {}) {
    const redis = connectRedis(url, opts.commandTimeoutMs ?? 500);
    redis.defineCommand('icpAdmit', { numberOfKeys: 3, lua: ADMIT });
    redis.defineCommand('icpSettle', { numberOfKeys: 3, lua: SETTLE });
    redis.defineCommand('icpRenew', { numberOfKeys: 1, lua: RENEW });
    redis.defineCommand('icpAdmitAll', { lua: ADMIT_ALL });
    this.redis = redis as Redis & Scripts;
  }

  private keys(key: string): [string, string, string] {
    const tag = `{icp:lim:${key}}`;
    return [`${tag}:rpm`, `${tag}:tpm`, `${tag}:leases`];
  }

  /** Resolves once connected (or rejects after `timeoutMs`); calls before that fail fast. */
  ready(timeoutMs = 5_000): Promise<void> {
    return redisReady(this.redis, timeoutMs);
  }

  async admit(input: AdmitInput): Promise<AdmitResult> {
    const { policy } = input;
    const [reason, retry, rl, tl] = await this.redis.icpAdmit(
      ...this.keys(input.key),
      policy.rpm ?? -1,
      policy.tpm ?? -1,
      policy.maxConcurrent ?? -1,
      input.tokens,
      input.leaseId,
      input.leaseTtlMs,
    );
    const r = REASONS[reason];
    return {
      admitted: r === undefined,
      reason: r,
      retryAfterMs: retry,
      requests: policy.rpm !== undefined ? bucketState(Number(rl), policy.rpm) : undefined,
      tokens: policy.tpm !== undefined ? bucketState(Number(tl), policy.tpm) : undefined,
    };
  }

  async admitAll(input: AdmitAllInput): Promise<AdmitAllResult> {
    const keys = [...input.scopes.flatMap((s) => this.keys(s.key)), ...input.budgetKeys.map(budgetRedisKey)];
    const limits = input.scopes.flatMap(({ policy: p }) => [p.rpm ?? -1, p.tpm ?? -1, p.maxConcurrent ?? -1]);
    const [reason, retry, refused, levels, spend] = await this.redis.icpAdmitAll(
      keys.length,
      ...keys,
      input.scopes.length,
      input.tokens,
      input.leaseId,
      input.leaseTtlMs,
      ...limits,
    );
    const results = input.scopes.slice(0, levels.length / 2).map(({ policy }, i): AdmitResult => {
      const r = i + 1 === refused ? REASONS[reason] : undefined;
      return {
        admitted: r === undefined,
        reason: r,
        retryAfterMs: r === undefined ? 0 : retry,
        requests: policy.rpm !== undefined ? bucketState(Number(levels[2 * i]), policy.rpm) : undefined,
        tokens: policy.tpm !== undefined ? bucketState(Number(levels[2 * i + 1]), policy.tpm) : undefined,
      };
    });
    return { admitted: reason === 0, results, spend: spend.map(toSpend) };
  }

  async settle(key: string, leaseId: string, policy: LimitPolicy, tokenDelta: number): Promise<void> {
    await this.redis.icpSettle(...this.keys(key), leaseId, policy.tpm ?? -1, tokenDelta);
  }

  async renew(key: string, leaseId: string, leaseTtlMs: number): Promise<void> {
    await this.redis.icpRenew(this.keys(key)[2], leaseId, leaseTtlMs);
  }

  connected(): boolean {
    return this.redis.status === 'ready';
  }

  async close(): Promise<void> {
    this.redis.disconnect();
  }
}
