// Each shadow rule's token budget per UTC day. A shadow reserves its estimated tokens before it
// starts (refused when the reservation would pass the budget), then settles the difference with
// its real usage. Redis (one counter per rule and day, atomic script) when the router has one,
// so replicas share the budget; memory otherwise.
import type { Redis } from 'ioredis';
import { connectRedis } from '../../common/store/redis-connection.ts';

export interface ShadowBudget {
  /** Adds `tokens` to today's spend of `rule` unless that passes `limit`; false = refused. */
  reserve(rule: string, tokens: number, limit: number): Promise<boolean>;
  /** Corrects today's spend by `delta` (real usage minus the reservation; may be negative). */
  adjust(rule: string, delta: number): Promise<void>;
  spent(rule: string): Promise<number>;
  close(): Promise<void>;
}

const DAY_MS = 86_400_000;
export const utcDay = (now = Date.now()) => new Date(now).toISOString().slice(0, 10);

export class MemoryShadowBudget implements ShadowBudget {
  private readonly spend = new Map<string, number>();
  constructor(private readonly now: () => number = Date.now) {}

  private key(rule: string): string {
    return `${rule}|${utcDay(this.now())}`;
  }

  async reserve(rule: string, tokens: number, limit: number): Promise<boolean> {
    const k = this.key(rule);
    const v = (this.spend.get(k) ?? 0) + tokens;
    if (v > limit) return false;
    // Only today's counters matter: forget the others.
    for (const old of this.spend.keys()) if (old !== k && old.startsWith(`${rule}|`)) this.spend.delete(old);
    this.spend.set(k, v);
    return true;
  }

  async adjust(rule: string, delta: number): Promise<void> {
    const k = this.key(rule);
    this.spend.set(k, Math.max(0, (this.spend.get(k) ?? 0) + delta));
  }

  async spent(rule: string): Promise<number> {
    return this.spend.get(this.key(rule)) ?? 0;
  }

  async close(): Promise<void> {
    /* nothing */
  }
}

// KEYS[1] counter; ARGV: tokens, limit, ttl ms. Returns the new spend, or -1 when refused.
const RESERVE = `
local v = redis.call('INCRBY', KEYS[1], ARGV[1])
if v > tonumber(ARGV[2]) then redis.call('DECRBY', KEYS[1], ARGV[1]) return -1 end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return v`;

export class RedisShadowBudget implements ShadowBudget {
  private readonly redis: Redis;
  constructor(
    url: string,
    commandTimeoutMs = 1_000,
    private readonly now: () => number = Date.now,
  ) {
    this.redis = connectRedis(url, commandTimeoutMs);
  }

  private key(rule: string): string {
    return `icp:shadow:budget:${rule}:${utcDay(this.now())}`;
  }

  async reserve(rule: string, tokens: number, limit: number): Promise<boolean> {
    const v = (await this.redis.eval(RESERVE, 1, this.key(rule), tokens, limit, 2 * DAY_MS)) as number;
    return v >= 0;
  }

  async adjust(rule: string, delta: number): Promise<void> {
    if (delta !== 0) await this.redis.incrby(this.key(rule), delta);
  }

  async spent(rule: string): Promise<number> {
    return Number((await this.redis.get(this.key(rule))) ?? 0);
  }

  async close(): Promise<void> {
    this.redis.disconnect();
  }
}
