// Tenant and key policy. A key can narrow its tenant's policy, never widen it: the effective
// policy takes the stricter of each field.
import { z } from 'zod';

export const laneName = z.enum(['critical', 'standard', 'sheddable']);
const LANE_RANK = { critical: 0, standard: 1, sheddable: 2 } as const;

export const policySchema = z.strictObject({
  /** Model names or aliases the holder may call; absent = all. */
  allowedModels: z.array(z.string().min(1).max(256)).max(1_000).optional(),
  maxLane: laneName.optional(),
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
  cache: z.strictObject({
    enabled: z.boolean().optional(),
    semantic: z.boolean().optional(),
    ttlSeconds: z.number().int().positive().optional(),
    allowTools: z.boolean().optional(),
    allowNonDeterministic: z.boolean().optional(),
  }).optional(),
});
export type Policy = z.infer<typeof policySchema>;

const min = (a: number | undefined, b: number | undefined) => (a === undefined ? b : b === undefined ? a : Math.min(a, b));

/** The stricter of two policies, field by field. */
export function narrow(tenant: Policy, key: Policy): Policy {
  const allowedModels = tenant.allowedModels && key.allowedModels
    ? tenant.allowedModels.filter((m) => key.allowedModels!.includes(m))
    : tenant.allowedModels ?? key.allowedModels;
  const maxLane = tenant.maxLane && key.maxLane
    ? (LANE_RANK[tenant.maxLane] >= LANE_RANK[key.maxLane] ? tenant.maxLane : key.maxLane)
    : tenant.maxLane ?? key.maxLane;
  return {
    allowedModels,
    maxLane,
    rpm: min(tenant.rpm, key.rpm),
    tpm: min(tenant.tpm, key.tpm),
    maxConcurrent: min(tenant.maxConcurrent, key.maxConcurrent),
    monthlyTokenBudget: min(tenant.monthlyTokenBudget, key.monthlyTokenBudget),
    monthlyCostBudgetUsd: min(tenant.monthlyCostBudgetUsd, key.monthlyCostBudgetUsd),
    dailyTokenBudget: min(tenant.dailyTokenBudget, key.dailyTokenBudget),
    dailyCostBudgetUsd: min(tenant.dailyCostBudgetUsd, key.dailyCostBudgetUsd),
    // Refusing is the stricter answer.
    onBudgetExhausted: tenant.onBudgetExhausted === 'refuse' || key.onBudgetExhausted === 'refuse' ? 'refuse' : (tenant.onBudgetExhausted ?? key.onBudgetExhausted),
    allowHostedFallback: tenant.allowHostedFallback === false || key.allowHostedFallback === false ? false : (tenant.allowHostedFallback ?? key.allowHostedFallback),
    cache: narrowCache(tenant.cache, key.cache),
  };
}

/** A key may switch caching off or shorten its TTL; only the tenant can opt in to caching tools or sampled answers. */
function narrowCache(tenant: Policy['cache'], key: Policy['cache']): Policy['cache'] {
  if (!tenant && !key) return undefined;
  const off = (f: 'enabled' | 'semantic') => (tenant?.[f] === false || key?.[f] === false ? false : undefined);
  return {
    enabled: off('enabled'),
    semantic: off('semantic'),
    ttlSeconds: min(tenant?.ttlSeconds, key?.ttlSeconds),
    allowTools: tenant?.allowTools === true && key?.allowTools !== false,
    allowNonDeterministic: tenant?.allowNonDeterministic === true && key?.allowNonDeterministic !== false,
  };
}
