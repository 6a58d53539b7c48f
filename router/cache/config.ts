// Configuration of the response cache (docs/idempotency-and-cache.md). Off unless `router.cache`
// is present: a cached answer is a behaviour change an operator should choose.
import { z } from 'zod';

const switches = z.strictObject({
  /** Exact-match lookups for this alias. */
  exact: z.boolean().optional(),
  /** Semantic lookups for this alias. */
  semantic: z.boolean().optional(),
  ttlSeconds: z.number().int().positive().optional(),
});

export const cacheConfigSchema = z.strictObject({
  enabled: z.boolean().default(true),
  exact: z
    .strictObject({
      enabled: z.boolean().default(true),
      ttlSeconds: z.number().int().positive().default(3_600),
    })
    .prefault({}),
  /**
   * Serve a stored answer to a request whose last user message is similar enough to a stored one
   * (same tenant, model, parameters and everything before that message). Off by default.
   */
  semantic: z
    .strictObject({
      enabled: z.boolean().default(false),
      /** An embedding model of `router.embeddings` (the router's own embedder). */
      model: z.string().min(1).default('glove-100d-embed'),
      /** Cosine similarity at or above which a stored answer is served. */
      threshold: z.number().min(0).max(1).default(0.95),
      ttlSeconds: z.number().int().positive().default(3_600),
      /** Entries in the in-memory index across all scopes (oldest dropped first). */
      maxEntries: z.number().int().positive().default(20_000),
      /** Entries per scope (tenant + model + parameters + conversation before the last user message). */
      maxPerScope: z.number().int().positive().default(2_000),
      /** Last user messages longer than this (characters) are not embedded. */
      maxChars: z.number().int().positive().default(8_000),
    })
    .prefault({}),
  /** Memory store (no Redis): total bytes of stored responses, least recently used dropped first. */
  maxBytes: z
    .number()
    .int()
    .positive()
    .default(64 * 1024 * 1024),
  /** A response larger than this is not stored. */
  maxEntryBytes: z
    .number()
    .int()
    .positive()
    .default(1024 * 1024),
  /** Redis for stored responses; else REDIS_URL, else router.auth.redisUrl (common/infrastructure.ts); none = memory. */
  redisUrl: z.string().optional(),
  commandTimeoutMs: z.number().int().positive().default(250),
  /** Per requested model name (alias) switches and TTL; the stricter of alias, tenant and global wins. */
  aliases: z.record(z.string(), switches).default({}),
});

export type CacheConfig = z.infer<typeof cacheConfigSchema>;
