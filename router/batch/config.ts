// Batch jobs (OpenAI's Batch API shape): the router section `router.batch` (docs/batch.md).
import { z } from 'zod';
import { outboundPolicyShape } from '../webhooks/delivery.ts';

export const batchConfigSchema = z.strictObject({
  /** Off: no /v1/files, /v1/batches and no batch worker. */
  enabled: z.boolean().default(true),
  /** Without Redis, files and job state live here (relative to the working directory). */
  dataDir: z.string().min(1).default('data/batch'),
  /** Redis for files and job state; else REDIS_URL, else router.auth.redisUrl (common/infrastructure.ts). */
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
  /** Overrides the length of the `24h` completion window (tests, or a stricter operator). */
  completionWindowMs: z.number().int().positive().optional(),
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
