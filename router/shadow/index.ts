// Wiring for router/main.ts: the shadow service from `router.shadow`, with its budget store
// (Redis when the router has one), its record sink (the control plane) and its metrics.
import type { RouterProcessConfig } from '../config.ts';
import type { Logger } from '../../common/logger.ts';
import type { RouterMetrics } from '../metrics.ts';
import { createProviders } from '../upstream/providers/index.ts';
import { dataMayLeave } from '../upstream/fallback-dispatch.ts';
import { MemoryShadowBudget, RedisShadowBudget } from './budget.ts';
import { createShadowSink } from './sink.ts';
import { ShadowService, type ShadowDeps } from './service.ts';

export { ShadowService, type PrimaryResult, type ShadowOutcome } from './service.ts';
export { shadowConfigSchema, type ShadowConfig, type ShadowRule } from './config.ts';

/** undefined when no rule is configured. */
export function createShadow(
  config: RouterProcessConfig,
  logger: Logger,
  metrics: RouterMetrics,
  deps: Pick<ShadowDeps, 'nodes' | 'admission' | 'embeddings'>,
): ShadowService | undefined {
  const cfg = config.router.shadow;
  if (!cfg?.rules.length) return undefined;
  const fallback = config.router.fallback;
  const redisUrl = config.redis.shadow;
  const budget = redisUrl ? new RedisShadowBudget(redisUrl, config.router.auth.commandTimeoutMs) : new MemoryShadowBudget();
  const sink = createShadowSink(config.controlPlaneUrl, config.credentials?.controlPlaneToken, logger, (result, n) =>
    metrics.shadowRecords.inc({ result }, n),
  );
  if (!sink.enabled)
    logger.warn('router.shadow: no control plane or router token (ICP_ROUTER_TOKEN); shadow records are counted, not kept');
  // Only the providers a rule names: a provider's credential must be there.
  const named = new Set(cfg.rules.map((r) => r.target.slice(0, r.target.indexOf(':'))).filter((k) => k !== 'local'));
  const providers = createProviders(Object.fromEntries(Object.entries(fallback.providers).filter(([name]) => named.has(name))));
  const service = new ShadowService(cfg, {
    ...deps,
    providers,
    aliases: config.router.aliases,
    budget,
    sink,
    logger: logger.child({ component: 'shadow' }),
    mayLeave: (req) => dataMayLeave(fallback, req),
    onOutcome: (alias, target, outcome) => metrics.shadowRequests.inc({ alias, target, outcome }),
  });
  logger.info(
    {
      rules: cfg.rules.map((r) => `${r.alias}->${r.target} ${r.percent}%`),
      budgetStore: redisUrl ? 'redis' : 'memory',
      records: sink.enabled ? 'control-plane' : 'none',
    },
    'shadow traffic configured',
  );
  return service;
}
