// Idempotency records in this process (the embedded default, no Redis). Expired records are
// dropped when touched and by a slow sweep. Stored answers are bounded by bytes: least recently
// used first, and per tenant (scope) so that one tenant's answers evict its own before anyone
// else's; an answer over the per-entry cap is not stored (the key is released).
import { recordSize, type RecordedResponse } from '../http/recorded-response.ts';
import type { Claim, EvictionReason, IdempotencyStore } from './store.ts';

interface Entry {
  hash: string;
  attempt: string;
  record?: RecordedResponse;
  /** Bytes counted for `record` (0 while running). */
  bytes: number;
  scope: string;
  leaseUntil: number;
  expiresAt: number;
  watchedUntil: number;
}

export interface MemoryStoreOptions {
  ttlMs: number;
  leaseMs: number;
  /** All stored answers together. */
  maxBytes?: number;
  /** One scope's (tenant's) stored answers, as a share of maxBytes. */
  maxTenantShare?: number;
  /** One stored answer. */
  maxEntryBytes?: number;
  /** A stored answer was evicted to make room (not called for one too large to keep: `complete` answers false). */
  onEvict?: (reason: EvictionReason) => void;
}

export class MemoryIdempotencyStore implements IdempotencyStore {
  /** Insertion order is recency order for stored answers (a replay moves its entry to the end). */
  private readonly entries = new Map<string, Entry>();
  /** Per scope: ids of its stored answers in recency order, and their bytes. */
  private readonly scopes = new Map<string, { ids: Set<string>; bytes: number }>();
  private totalBytes = 0;
  private readonly maxBytes: number;
  private readonly maxTenantBytes: number;
  readonly maxEntryBytes: number;
  private readonly sweep: NodeJS.Timeout;

  constructor(
    private readonly opts: MemoryStoreOptions,
    private readonly now: () => number = Date.now,
  ) {
    this.maxBytes = opts.maxBytes ?? 256 * 1024 * 1024;
    this.maxTenantBytes = Math.floor(this.maxBytes * (opts.maxTenantShare ?? 0.25));
    this.maxEntryBytes = Math.min(opts.maxEntryBytes ?? 8 * 1024 * 1024, this.maxTenantBytes);
    this.sweep = setInterval(() => {
      const t = this.now();
      for (const [id, e] of this.entries) if (e.expiresAt <= t) this.drop(id, e);
    }, 60_000);
    this.sweep.unref();
  }

  /** Bytes of stored answers now (all, or one scope's). */
  bytes(scope?: string): number {
    return scope === undefined ? this.totalBytes : (this.scopes.get(scope)?.bytes ?? 0);
  }

  get size(): number {
    return this.entries.size;
  }

  private drop(id: string, e: Entry): void {
    this.entries.delete(id);
    if (!e.record) return;
    this.totalBytes -= e.bytes;
    const s = this.scopes.get(e.scope);
    if (!s) return;
    s.ids.delete(id);
    s.bytes -= e.bytes;
    if (s.ids.size === 0) this.scopes.delete(e.scope);
  }

  private live(id: string): Entry | undefined {
    const e = this.entries.get(id);
    if (e && e.expiresAt <= this.now()) {
      this.drop(id, e);
      return undefined;
    }
    return e;
  }

  /** A stored answer was used: it becomes the most recent (globally and in its scope). */
  private touch(id: string, e: Entry): void {
    this.entries.delete(id);
    this.entries.set(id, e);
    const s = this.scopes.get(e.scope);
    if (s) {
      s.ids.delete(id);
      s.ids.add(id);
    }
  }

  async claim(id: string, hash: string, attempt: string, scope = ''): Promise<Claim> {
    const now = this.now();
    const e = this.live(id);
    if (!e) {
      this.entries.set(id, {
        hash,
        attempt,
        bytes: 0,
        scope,
        leaseUntil: now + this.opts.leaseMs,
        expiresAt: now + this.opts.ttlMs,
        watchedUntil: 0,
      });
      return { kind: 'owner', attempt, takenOver: false };
    }
    if (e.hash !== hash) return { kind: 'conflict' };
    if (e.record) {
      this.touch(id, e);
      return { kind: 'done', record: e.record };
    }
    if (e.leaseUntil < now) {
      Object.assign(e, { attempt, leaseUntil: now + this.opts.leaseMs, watchedUntil: 0 });
      return { kind: 'owner', attempt, takenOver: true };
    }
    return { kind: 'running', attempt: e.attempt };
  }

  append(): void {
    // Frames are followed in process (the caller's local feed); nothing to share.
  }

  async renew(id: string, attempt: string): Promise<boolean> {
    const e = this.live(id);
    if (e?.attempt !== attempt || e.record) return false;
    e.leaseUntil = this.now() + this.opts.leaseMs;
    return true;
  }

  async complete(id: string, attempt: string, record: RecordedResponse): Promise<boolean> {
    const e = this.live(id);
    if (e?.attempt !== attempt || e.record) return false;
    const bytes = recordSize(record);
    if (bytes > this.maxEntryBytes) {
      // Served, not kept: the key is released so a repeat runs again.
      this.entries.delete(id);
      return false;
    }
    // Make room: the scope's own oldest answers first, then the oldest of anyone's.
    const own = this.scopes.get(e.scope);
    if (own)
      for (const old of own.ids) {
        if (own.bytes + bytes <= this.maxTenantBytes) break;
        this.evict(old, this.maxTenantBytes < this.maxBytes ? 'tenant_cap' : 'lru');
      }
    for (const [old, o] of this.entries) {
      if (this.totalBytes + bytes <= this.maxBytes) break;
      if (o.record) this.evict(old, 'lru');
    }
    e.record = record;
    e.bytes = bytes;
    e.expiresAt = this.now() + this.opts.ttlMs;
    this.touch(id, e);
    this.totalBytes += bytes;
    const s = this.scopes.get(e.scope) ?? { ids: new Set<string>(), bytes: 0 };
    this.scopes.set(e.scope, s);
    s.ids.add(id);
    s.bytes += bytes;
    return true;
  }

  private evict(id: string, reason: EvictionReason): void {
    const e = this.entries.get(id);
    if (!e) return;
    this.drop(id, e);
    this.opts.onEvict?.(reason);
  }

  async release(id: string, attempt: string): Promise<void> {
    const e = this.entries.get(id);
    if (e?.attempt === attempt && !e.record) this.entries.delete(id);
  }

  async watch(id: string, until: number): Promise<void> {
    const e = this.live(id);
    if (e) e.watchedUntil = Math.max(e.watchedUntil, until);
  }

  async watchedUntil(id: string): Promise<number> {
    return this.live(id)?.watchedUntil ?? 0;
  }

  follow(): undefined {
    return undefined;
  }

  async close(): Promise<void> {
    clearInterval(this.sweep);
    this.entries.clear();
    this.scopes.clear();
    this.totalBytes = 0;
  }
}
