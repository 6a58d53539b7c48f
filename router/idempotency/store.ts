// Where idempotency records live: memory in one process, Redis across router replicas. A record
// is (body hash, attempt id, state, owner lease, the completed response); the frames of a running
// attempt are readable from any replica while they are written.
import type { RecordedResponse } from '../http/recorded-response.ts';
import type { Feed, LiveFrame } from './feed.ts';

export type Claim =
  /** Nobody holds the key (or its owner's lease expired): this request executes it. */
  | { kind: 'owner'; attempt: string; takenOver: boolean }
  /** Same key, different body. */
  | { kind: 'conflict' }
  /** Running elsewhere (or here): follow its frames. */
  | { kind: 'running'; attempt: string }
  | { kind: 'done'; record: RecordedResponse };

/** Why a stored answer left the memory store early (or was never kept). */
export type EvictionReason = 'lru' | 'tenant_cap' | 'too_large';

export interface IdempotencyStore {
  /** The largest answer `complete` keeps (bytes, as recordSize counts them). */
  readonly maxEntryBytes: number;
  /** `scope` (the tenant) is what the memory store's per-tenant byte cap counts against. */
  claim(id: string, hash: string, attempt: string, scope?: string): Promise<Claim>;
  /** Appends a frame of a running attempt (where other replicas can read it). */
  append(id: string, attempt: string, frame: LiveFrame): void;
  /** The owner is alive: extend its lease. False when the attempt is no longer the key's. */
  renew(id: string, attempt: string): Promise<boolean>;
  /**
   * Stores the completed response for the TTL; false when it was not kept (over the per-entry
   * cap: the key is released so a repeat runs again; or the attempt is no longer the key's).
   */
  complete(id: string, attempt: string, record: RecordedResponse): Promise<boolean>;
  /** Forgets the key (the attempt failed) so that a repeat runs again; followers get `last`. */
  release(id: string, attempt: string, last?: LiveFrame): Promise<void>;
  /** A client is following the attempt: keep the generation going at least until `until`. */
  watch(id: string, until: number): Promise<void>;
  watchedUntil(id: string): Promise<number>;
  /** Follows an attempt owned by another process (undefined where that cannot happen). */
  follow(id: string, attempt: string): Feed | undefined;
  close(): Promise<void>;
}
