// Wiring for router/main.ts: builds breakers (logged + counted), provider pauses, providers and
// the fallback chain from `router.fallback`, so main only connects the parts.
import type { Logger } from '../../common/logger.ts';
import type { RouterConfig } from '../config.ts';
import type { RouterMetrics } from '../metrics.ts';
import { BreakerSet, type BreakerState } from './circuit-breaker.ts';
import { ProviderPauses } from './retry.ts';
import { FallbackDispatcher, type Upstream } from './fallback-dispatch.ts';
import { ProviderFallbackHook } from './fallback-hook.ts';
import { createProviders } from './providers/index.ts';
import type { NodeDispatcher } from './node-dispatch.ts';

const STATE_VALUE: Record<BreakerState, number> = { closed: 0, half_open: 1, open: 2 };

export function createFallback(cfg: RouterConfig, logger: Logger, metrics: RouterMetrics) {
  const f = cfg.fallback;
  const breakers = new BreakerSet(f.breaker, (name, from, to) => {
    logger.warn({ breaker: name, from, to }, 'circuit breaker transition');
    metrics.breakerTransitions.inc({ breaker: name, to });
    metrics.breakerState.set({ breaker: name }, STATE_VALUE[to]);
  });
  const nodeBreakers = f.breaker.nodes ? { set: breakers, slowFirstTokenMs: f.breaker.slowFirstTokenMs } : undefined;
  // Node retries (before the first byte) back off like provider retries: same settings.
  const nodeRetry = { baseDelayMs: f.retry.baseDelayMs, maxDelayMs: f.retry.maxDelayMs };
  const wrap = (
    nodes: NodeDispatcher,
  ): { dispatcher: Upstream; hook?: ProviderFallbackHook; chainModels?: () => Set<string>; chains?: FallbackDispatcher } => {
    if (Object.keys(f.chains).length === 0) return { dispatcher: nodes };
    const providers = createProviders(f.providers);
    const fb = new FallbackDispatcher(
      nodes,
      f,
      providers,
      breakers,
      new ProviderPauses(),
      { ...f.retry, slowFirstTokenMs: f.breaker.slowFirstTokenMs },
      logger,
      cfg.aliases,
      {
        onFallback: (provider, trigger, outcome) => metrics.fallbacks.inc({ provider, trigger, outcome }),
      },
    );
    logger.info({ providers: [...providers.keys()], chains: Object.keys(f.chains) }, 'hosted-provider fallback configured');
    return { dispatcher: fb, hook: new ProviderFallbackHook(fb), chainModels: () => fb.chainModels(), chains: fb };
  };
  return { breakers, nodeBreakers, nodeRetry, wrap };
}
