// Batch jobs (OpenAI's Batch API shape): the router section `router.batch` (docs/batch.md).
import { z } from 'zod';
import { outboundPolicyShape } from '../webhooks/delivery.ts';

export const batchConfigSchema = z.strictObject({
  /** Off: no /v1/files, /v1/batches and no batch worker. */
  enabled: z.boolean().default(true),
  /**
   * File bytes (uploads, output and error files, each job's parsed items) always live here, also
   * with Redis (several replicas then share it as one volume); without Redis, job state too.
   */
  dataDir: z.string().min(1).default('data/batch'),
  /** Redis for file metadata and job state (never file bytes); else REDIS_URL, else router.auth.redisUrl. */
  redisUrl: z.string().optional(),
  /** Items of one job in flight at once, per router replica. */
  concurrencyPerJob: z.number().int().positive().default(8),
  /** Items of all jobs in flight at once, per router replica. */
  maxConcurrent: z.number().int().positive().default(64),
  /** How often the worker looks for claimable items, expiries and finished jobs. */
  pollMs: z.number().int().positive().default(100),
  /** A claimed item is another replica's to take when its lease is not renewed for this long. */
  leaseMs: z.number().int().positive().default(30_000),
  /** Attempts on retryable errors (5xx, rate limits) before an item goes to the dead-letter list. */
  maxAttempts: z.number().int().positive().default(5),
  retryBaseMs: z.number().int().positive().default(1_000),
  retryMaxMs: z.number().int().positive().default(60_000),
  /** After the sheddable lane refused an item (the pool is busy), the job waits this long. */
  yieldMs: z.number().int().positive().default(250),
  maxFileBytes: z
    .number()
    .int()
    .positive()
    .default(100 * 1024 * 1024),
  maxItemsPerBatch: z.number().int().positive().default(50_000),
  /** A longer input line is an error line of the batch (never buffered whole). */
  maxLineBytes: z
    .number()
    .int()
    .positive()
    .default(4 * 1024 * 1024),
  /** Uploads in progress at once, per router replica: over either cap a 429 with Retry-After. */
  uploads: z
    .strictObject({
      maxConcurrent: z.number().int().positive().default(16),
      maxConcurrentPerTenant: z.number().int().positive().default(4),
    })
    .prefault({}),
  /** Per-tenant storage (uploads and output files together, expired ones not counted); over it an upload is a 400. */
  quota: z
    .strictObject({
      maxFilesPerTenant: z.number().int().positive().default(1_000),
      maxBytesPerTenant: z
        .number()
        .int()
        .positive()
        .default(10 * 1024 * 1024 * 1024),
    })
    .prefault({}),
  /** `expires_at` of an upload without `expires_after` (OpenAI: batch files expire after 30 days). */
  fileExpiresAfterSeconds: z.number().int().min(3_600).max(2_592_000).default(2_592_000),
  /** `expires_at` of output and error files without the batch's `output_expires_after`. */
  outputExpiresAfterSeconds: z.number().int().min(3_600).max(2_592_000).default(2_592_000),
  /** A finished job's record (and its item state) is kept this long after its completion window ends. */
  batchRetentionSeconds: z.number().int().positive().default(2_592_000),
  /** How often expired files and jobs are deleted. */
  sweepMs: z.number().int().positive().default(60_000),
  /** Overrides the length of the `24h` completion window (tests, or a stricter operator). */
  completionWindowMs: z.number().int().positive().optional(),
  /** More windows clients may name besides `24h` (name -> ms), e.g. `{"1h": 3600000}`. */
  completionWindows: z.record(z.string().regex(/^\d{1,6}[mhd]$/), z.number().int().positive()).default({}),
  /** Completion announcements (Standard Webhooks signing; the secret from ICP_BATCH_WEBHOOK_SECRET or secretFile). */
  webhook: z
    .strictObject({
      url: z.url().optional(),
      secretFile: z.string().optional(),
      maxAttempts: z.number().int().positive().default(8),
      baseDelayMs: z.number().int().positive().default(1_000),
      timeoutMs: z.number().int().positive().default(10_000),
      /** allowPrivateTargets / allowTargets: internal receivers are refused unless allowed (router/webhooks/delivery.ts). */
      ...outboundPolicyShape,
    })
    .prefault({}),
});

export type BatchConfig = z.infer<typeof batchConfigSchema>;
