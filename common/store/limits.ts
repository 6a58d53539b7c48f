// Per-key admission limits shared by every router replica: requests per minute and tokens per
// minute as token buckets, and concurrent requests as leases that expire (a crashed router's
// leases free themselves). One call admits or refuses all three at once, atomically.
// Implementations: memory (the embedded default) and Redis (a Lua script: one round trip).

export interface LimitPolicy {
  /** Requests per minute; undefined = unlimited. */
  rpm?: number;
  /** Tokens per minute (prompt estimate + max_tokens at admission, reconciled at settle). */
  tpm?: number;
  /** Concurrent requests. */
  maxConcurrent?: number;
}

export interface AdmitInput {
  key: string;
  policy: LimitPolicy;
  /** Tokens charged now against TPM. */
  tokens: number;
  leaseId: string;
  /** A lease not renewed or released within this is gone (router crash). */
  leaseTtlMs: number;
}

export interface BucketState {
  limit: number;
  remaining: number;
  /** Milliseconds until the bucket is full again. */
  resetMs: number;
}

export type LimitReason = 'requests' | 'tokens' | 'concurrency';

export interface AdmitResult {
  admitted: boolean;
  /** Which limit refused (the first that did). */
  reason?: LimitReason;
  /** When a retry can succeed, for Retry-After. */
  retryAfterMs: number;
  requests?: BucketState;
  tokens?: BucketState;
}

/** Several scopes (a key's own limits, its tenant's) admitted together, with budget spend read alongside. */
export interface AdmitAllInput {
  scopes: { key: string; policy: LimitPolicy }[];
  tokens: number;
  leaseId: string;
  leaseTtlMs: number;
  /** Budget store keys (`scope|period`) whose spend is read in the same round trip. */
  budgetKeys: string[];
}

export interface AdmitAllResult {
  /** All scopes admitted (and charged); on refusal nothing was taken from any scope. */
  admitted: boolean;
  /** One per scope examined, in order; the last one refused when `admitted` is false. */
  results: AdmitResult[];
  /** Spend of each budget key, in order (only when admitted). */
  spend: { costUsd: number; tokens: number }[];
}

export interface LimitStore {
  readonly kind: 'memory' | 'redis';
  admit(input: AdmitInput): Promise<AdmitResult>;
  /**
   * The request ended: release its lease and correct the TPM charge by `tokenDelta`
   * (real usage minus what admission charged; negative refunds).
   */
  settle(key: string, leaseId: string, policy: LimitPolicy, tokenDelta: number): Promise<void>;
  /** Keeps a long stream's lease alive. */
  renew(key: string, leaseId: string, leaseTtlMs: number): Promise<void>;
  /**
   * Every scope's limits and the budgets' spend in one atomic step and one round trip (Redis,
   * where limits and budgets share the server); absent where round trips cost nothing (memory).
   */
  admitAll?(input: AdmitAllInput): Promise<AdmitAllResult>;
  /** False while the backing store cannot be reached (Redis down); absent for in-process stores. */
  connected?(): boolean;
  close(): Promise<void>;
}

/** A full bucket refills `limit` per minute; `rate` is tokens per millisecond. */
export const ratePerMs = (perMinute: number) => perMinute / 60_000;
