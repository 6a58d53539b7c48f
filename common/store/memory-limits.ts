// The embedded default: the same algorithm as the Redis Lua script, in process memory.
import type { AdmitInput, AdmitResult, BucketState, LimitPolicy, LimitStore } from './limits.ts';
import { ratePerMs } from './limits.ts';

interface Bucket {
  level: number;
  at: number;
}

export class MemoryLimitStore implements LimitStore {
  readonly kind = 'memory' as const;
  private readonly buckets = new Map<string, Bucket>();
  private readonly leases = new Map<string, Map<string, number>>();

  constructor(private readonly now: () => number = Date.now) {}

  async admit(input: AdmitInput): Promise<AdmitResult> {
    const t = this.now();
    const { policy } = input;
    const req = policy.rpm !== undefined ? this.refill(`${input.key}:rpm`, policy.rpm, t) : undefined;
    const tok = policy.tpm !== undefined ? this.refill(`${input.key}:tpm`, policy.tpm, t) : undefined;
    const leases = this.liveLeases(input.key, t);
    const state = () => ({ requests: req && bucketState(req.level, policy.rpm!), tokens: tok && bucketState(tok.level, policy.tpm!) });
    if (req && req.level < 1)
      return { admitted: false, reason: 'requests', retryAfterMs: Math.ceil((1 - req.level) / ratePerMs(policy.rpm!)), ...state() };
    // A request bigger than the whole bucket can never pass: charge what exists (documented).
    const need = tok ? Math.min(input.tokens, policy.tpm!) : 0;
    if (tok && tok.level < need)
      return { admitted: false, reason: 'tokens', retryAfterMs: Math.ceil((need - tok.level) / ratePerMs(policy.tpm!)), ...state() };
    if (policy.maxConcurrent !== undefined && leases.size >= policy.maxConcurrent) {
      const soonest = Math.min(...leases.values());
      return { admitted: false, reason: 'concurrency', retryAfterMs: Math.max(1, Math.min(1_000, soonest - t)), ...state() };
    }
    if (req) req.level -= 1;
    if (tok) tok.level -= input.tokens;
    if (policy.maxConcurrent !== undefined) leases.set(input.leaseId, t + input.leaseTtlMs);
    return { admitted: true, retryAfterMs: 0, ...state() };
  }

  async settle(key: string, leaseId: string, policy: LimitPolicy, tokenDelta: number): Promise<void> {
    this.leases.get(key)?.delete(leaseId);
    if (policy.tpm !== undefined && tokenDelta !== 0) {
      const b = this.refill(`${key}:tpm`, policy.tpm, this.now());
      b.level = Math.min(policy.tpm, b.level - tokenDelta);
    }
  }

  async renew(key: string, leaseId: string, leaseTtlMs: number): Promise<void> {
    const l = this.leases.get(key);
    if (l?.has(leaseId)) l.set(leaseId, this.now() + leaseTtlMs);
  }

  async close(): Promise<void> {
    this.buckets.clear();
    this.leases.clear();
  }

  private refill(id: string, perMinute: number, t: number): Bucket {
    let b = this.buckets.get(id);
    if (!b) {
      b = { level: perMinute, at: t };
      this.buckets.set(id, b);
    }
    b.level = Math.min(perMinute, b.level + (t - b.at) * ratePerMs(perMinute));
    b.at = t;
    return b;
  }

  private liveLeases(key: string, t: number): Map<string, number> {
    let l = this.leases.get(key);
    if (!l) {
      l = new Map();
      this.leases.set(key, l);
    }
    for (const [id, exp] of l) if (exp <= t) l.delete(id);
    return l;
  }
}

export function bucketState(level: number, limit: number): BucketState {
  return { limit, remaining: Math.max(0, Math.floor(level)), resetMs: Math.ceil((limit - Math.max(0, level)) / ratePerMs(limit)) };
}
