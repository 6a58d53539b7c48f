// Idempotency records in this process (the embedded default, no Redis). Expired records are
// dropped when touched and by a slow sweep.
import type { RecordedResponse } from '../http/recorded-response.ts';
import type { Claim, IdempotencyStore } from './store.ts';

interface Entry {
  hash: string;
  attempt: string;
  record?: RecordedResponse;
  leaseUntil: number;
  expiresAt: number;
  watchedUntil: number;
}

export class MemoryIdempotencyStore implements IdempotencyStore {
  private readonly entries = new Map<string, Entry>();
  private readonly sweep: NodeJS.Timeout;

  constructor(
    private readonly opts: { ttlMs: number; leaseMs: number },
    private readonly now: () => number = Date.now,
  ) {
    this.sweep = setInterval(() => {
      const t = this.now();
      for (const [id, e] of this.entries) if (e.expiresAt <= t) this.entries.delete(id);
    }, 60_000);
    this.sweep.unref();
  }

  private live(id: string): Entry | undefined {
    const e = this.entries.get(id);
    if (e && e.expiresAt <= this.now()) {
      this.entries.delete(id);
      return undefined;
    }
    return e;
  }

  async claim(id: string, hash: string, attempt: string): Promise<Claim> {
    const now = this.now();
    const e = this.live(id);
    if (!e) {
      this.entries.set(id, { hash, attempt, leaseUntil: now + this.opts.leaseMs, expiresAt: now + this.opts.ttlMs, watchedUntil: 0 });
      return { kind: 'owner', attempt, takenOver: false };
    }
    if (e.hash !== hash) return { kind: 'conflict' };
    if (e.record) return { kind: 'done', record: e.record };
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

  async complete(id: string, attempt: string, record: RecordedResponse): Promise<void> {
    const e = this.live(id);
    if (e?.attempt !== attempt) return;
    e.record = record;
    e.expiresAt = this.now() + this.opts.ttlMs;
  }

  async release(id: string, attempt: string): Promise<void> {
    if (this.entries.get(id)?.attempt === attempt) this.entries.delete(id);
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
  }
}
