// Where files, jobs and item state live: Redis when configured (shared by router replicas, leases
// make an item run on one of them at a time), else memory mirrored to files under `dataDir`.
//
// Item state is one scheduling set per job: every unfinished item has a score, the time from which
// it may be claimed (now for a fresh item, the backoff's end for a retry, the lease's end for an
// item being run). Claiming moves the score to the lease's end and records a token; only the token
// holder can finish, retry or renew the item, and finishing removes it from the set in the same
// atomic step that writes its result line. So an item's line is written exactly once, even when a
// crashed replica's lease expired and another replica ran the item again.
//
// Bytes (files, parsed items) are on disk under dataDir in both cases (blobs.ts, item-file.ts);
// a store holds metadata and item state only.
import type { BlobStore } from './blobs.ts';
import type { ItemFiles } from './item-file.ts';
import type { BatchRecord, Claim, DeadLetter, ItemCounts, ItemSpec, StoredFile } from './types.ts';

export interface BatchStore {
  readonly kind: 'redis' | 'file';
  readonly blobs: BlobStore;
  readonly itemFiles: ItemFiles;
  /** The file's record; its bytes are already in `blobs` under its id. */
  putFile(file: StoredFile): Promise<void>;
  getFile(id: string): Promise<StoredFile | undefined>;
  listFiles(tenant: string): Promise<StoredFile[]>;
  /** The record and the bytes. */
  deleteFile(id: string): Promise<boolean>;
  /** Files whose expires_at (unix seconds) is at or before `nowSec`, at most `max`. */
  expiredFiles(nowSec: number, max: number): Promise<string[]>;

  putBatch(batch: BatchRecord): Promise<void>;
  getBatch(id: string): Promise<BatchRecord | undefined>;
  listBatches(tenant: string): Promise<BatchRecord[]>;
  /** Jobs the worker still has business with (running, finishing, or a webhook to deliver). */
  activeBatches(): Promise<string[]>;
  setActive(id: string, active: boolean): Promise<void>;
  /** Finished jobs whose completion window ended before `cutoffMs` (their retention is over), at most `max`. */
  expiredBatches(cutoffMs: number, max: number): Promise<string[]>;
  /** The job's record, item state and items file. */
  deleteBatch(id: string): Promise<void>;

  /** Makes `count` items (already in `itemFiles`) claimable now. */
  initItems(batchId: string, count: number, now: number): Promise<void>;
  getItem(batchId: string, index: number): Promise<ItemSpec | undefined>;
  /** A finished job leaves this process's memory (read back from disk or Redis if it is needed again). */
  release(batchId: string): void;
  claim(batchId: string, max: number, now: number, leaseMs: number, owner: string): Promise<Claim[]>;
  renew(batchId: string, claim: Claim, until: number): Promise<boolean>;
  /** Writes the item's line to the output (`output`) or error (`errors`) list; false when the lease was lost. */
  finish(batchId: string, claim: Claim, to: 'output' | 'errors', line: string): Promise<boolean>;
  /** Makes the item claimable again at `at`; `countAttempt` false for a yield (the lane was busy). */
  retry(batchId: string, claim: Claim, at: number, countAttempt: boolean): Promise<boolean>;
  /** Error line plus an entry in the dead-letter list. */
  deadLetter(batchId: string, claim: Claim, line: string, dead: DeadLetter): Promise<boolean>;
  /** Ends every unfinished item with the line `lineFor` gives it (expiry); returns how many. */
  closeRemaining(batchId: string, lineFor: (index: number) => Promise<string>): Promise<number>;
  /** Drops every unfinished item without a line (cancel). */
  dropRemaining(batchId: string): Promise<number>;
  counts(batchId: string): Promise<ItemCounts>;
  /** Result lines by item index. */
  results(batchId: string, which: 'output' | 'errors'): Promise<Map<number, string>>;
  deadLetters(batchId: string): Promise<DeadLetter[]>;
  /** Back to claimable with fresh attempts, their error lines removed; all when `indexes` is absent. */
  requeue(batchId: string, now: number, indexes?: number[]): Promise<number>;
  /** A short mutual-exclusion lock across replicas (finalizing, webhook delivery). */
  lock(name: string, ttlMs: number, owner: string): Promise<boolean>;
  unlock(name: string, owner: string): Promise<void>;
  close(): Promise<void>;
}
