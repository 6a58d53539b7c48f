// Idempotency keys (docs/idempotency-and-cache.md): the router section's `idempotency` options.
import { z } from 'zod';

export const idempotencyConfigSchema = z.strictObject({
  /** Off: the `Idempotency-Key` header is ignored. */
  enabled: z.boolean().default(true),
  /** How long a completed response answers repeats of its key. */
  ttlMs: z
    .number()
    .int()
    .positive()
    .default(24 * 3_600_000),
  /**
   * A client that goes away mid-generation does not cancel it at once: the generation goes on
   * this long (longer while a repeat of the key is attached) so a repeat can resume it.
   */
  disconnectGraceMs: z.number().int().min(0).default(30_000),
  /** Owner lease: a router that stops renewing it (crashed) loses the key to the next repeat. */
  leaseMs: z.number().int().min(500).default(10_000),
  /**
   * Memory store (no Redis): stored answers are kept within this many bytes (approximate: the
   * characters of bodies and frames plus a fixed overhead each), least recently used evicted first.
   */
  maxBytes: z
    .number()
    .int()
    .positive()
    .default(256 * 1024 * 1024),
  /** One tenant's answers may take at most this share of `maxBytes`: it evicts its own first, never everyone's. */
  maxTenantShare: z.number().gt(0).max(1).default(0.25),
  /** An answer bigger than this (either store) is served but not stored: a repeat runs again. */
  maxEntryBytes: z
    .number()
    .int()
    .positive()
    .default(8 * 1024 * 1024),
  /** Redis key prefix (Redis when one is configured: common/infrastructure.ts). */
  keyPrefix: z.string().min(1).default('icp:idem:'),
});

export type IdempotencyConfig = z.infer<typeof idempotencyConfigSchema>;
