// Contracts that cross a process boundary (router, node agent, control plane), as zod schemas:
// one definition each, parsed wherever a value arrives from another process.
import { z } from 'zod';

/** Priority lanes, highest first. */
export const laneSchema = z.enum(['critical', 'standard', 'sheddable']);
export type Lane = z.infer<typeof laneSchema>;
export const LANES: readonly Lane[] = laneSchema.options;

/** The generation operations of proto/inference/v1/node_agent.proto's `Operation` enum. */
export const operationSchema = z.enum(['CHAT_COMPLETIONS', 'COMPLETIONS']);
export type Operation = z.infer<typeof operationSchema>;

/** A tenant's or a key's policy: written through the admin API, enforced by routers (narrowing: common/policy.ts). */
export const policySchema = z.strictObject({
  /** Model names or aliases the holder may call; absent = all. */
  allowedModels: z.array(z.string().min(1).max(256)).max(1_000).optional(),
  maxLane: laneSchema.optional(),
  rpm: z.number().int().positive().optional(),
  tpm: z.number().int().positive().optional(),
  maxConcurrent: z.number().int().positive().optional(),
  monthlyTokenBudget: z.number().int().positive().optional(),
  monthlyCostBudgetUsd: z.number().positive().optional(),
  dailyTokenBudget: z.number().int().positive().optional(),
  dailyCostBudgetUsd: z.number().positive().optional(),
  /** At 100% of a budget: refuse (429 insufficient_quota) or downgrade to router.budgets.downgrade's alias. Absent = router.budgets.onExhausted. */
  onBudgetExhausted: z.enum(['refuse', 'downgrade']).optional(),
  /** May requests leave the cluster (hosted-provider fallback)? Absent = yes. */
  allowHostedFallback: z.boolean().optional(),
  /** Response cache (docs/idempotency-and-cache.md): switches, TTL, and the opt-ins to cache tool and non-deterministic requests. */
  cache: z
    .strictObject({
      enabled: z.boolean().optional(),
      semantic: z.boolean().optional(),
      ttlSeconds: z.number().int().positive().optional(),
      allowTools: z.boolean().optional(),
      allowNonDeterministic: z.boolean().optional(),
    })
    .optional(),
});
export type Policy = z.infer<typeof policySchema>;

// The watch streams' snapshots (control plane -> routers, SSE `snapshot` events). Objects are
// open (z.object) so a newer control plane may add fields; a policy is strict, so a limit an
// older router does not know makes it keep its last good snapshot rather than ignore the limit.

/** One node of `GET /v1/nodes/watch`. */
export const memberSchema = z.object({
  id: z.string().min(1),
  address: z.string().min(1),
  models: z.array(z.string()),
  labels: z.record(z.string(), z.string()),
  static: z.boolean(),
  cordoned: z.boolean(),
  registeredAt: z.number(),
  lastHeartbeatAt: z.number(),
  /** The token routers present to this node's gRPC server (common/credentials.ts); absent without node tokens. */
  callToken: z.string().min(1).max(512).optional(),
});
export type MemberRecord = z.infer<typeof memberSchema>;

export const membershipSnapshotSchema = z.object({
  version: z.number().int().nonnegative(),
  nodes: z.array(memberSchema),
});
export type MembershipSnapshot = z.infer<typeof membershipSnapshotSchema>;

export const tenantSchema = z.object({
  id: z.string().min(1),
  name: z.string(),
  policy: policySchema,
  tags: z.record(z.string(), z.string()),
  disabled: z.boolean(),
  createdAt: z.string(),
});
export type Tenant = z.infer<typeof tenantSchema>;

/** A key as published: its hash, never its secret. */
export const apiKeyRecordSchema = z.object({
  keyId: z.string().min(1),
  tenantId: z.string().min(1),
  name: z.string(),
  hash: z.string().regex(/^[0-9a-f]{64}$/, 'a SHA-256 hex digest'),
  policy: policySchema,
  createdAt: z.string(),
  revokedAt: z.string().nullable(),
});
export type ApiKeyRecord = z.infer<typeof apiKeyRecordSchema>;

/** `GET /v1/policy/watch`: every tenant and key. */
export const policySnapshotSchema = z.object({
  version: z.number().int().nonnegative(),
  tenants: z.array(tenantSchema),
  keys: z.array(apiKeyRecordSchema),
});
export type PolicySnapshot = z.infer<typeof policySnapshotSchema>;
