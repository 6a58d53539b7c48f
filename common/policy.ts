// Policy narrowing (the policy's schema is a contract: common/contracts.ts). A key can narrow its
// tenant's policy, never widen it: the effective policy takes the stricter of each field.
import { LANES, type Lane, type Policy } from './contracts.ts';

const laneRank = (l: Lane) => LANES.indexOf(l);

const min = (a: number | undefined, b: number | undefined) => (a === undefined ? b : b === undefined ? a : Math.min(a, b));

/** The stricter of two policies, field by field. */
export function narrow(tenant: Policy, key: Policy): Policy {
  const allowedModels =
    tenant.allowedModels && key.allowedModels
      ? tenant.allowedModels.filter((m) => key.allowedModels!.includes(m))
      : (tenant.allowedModels ?? key.allowedModels);
  const maxLane =
    tenant.maxLane && key.maxLane
      ? laneRank(tenant.maxLane) >= laneRank(key.maxLane)
        ? tenant.maxLane
        : key.maxLane
      : (tenant.maxLane ?? key.maxLane);
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
    onBudgetExhausted:
      tenant.onBudgetExhausted === 'refuse' || key.onBudgetExhausted === 'refuse'
        ? 'refuse'
        : (tenant.onBudgetExhausted ?? key.onBudgetExhausted),
    allowHostedFallback:
      tenant.allowHostedFallback === false || key.allowHostedFallback === false
        ? false
        : (tenant.allowHostedFallback ?? key.allowHostedFallback),
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
