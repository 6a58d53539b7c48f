// Accounting for the router: budgets checked at admission (after the tenancy hook), and when a
// generation request ends, its cost (router/models/catalog.ts prices), spend added to every scope,
// and one usage record (never any prompt text) written to the usage sink.
import type { FastifyRequest, preHandlerAsyncHookHandler } from 'fastify';
import type { RouterProcessConfig } from '../config.ts';
import { errors } from '../../common/errors.ts';
import type { Logger } from '../../common/logger.ts';
import type { BudgetStore } from '../../common/store/budgets.ts';
import { boundUsageRecord } from '../../common/store/usage.ts';
import { MemoryBudgetStore } from '../../common/store/memory-budgets.ts';
import { RedisBudgetStore } from '../../common/store/redis-budgets.ts';
import type { RouterMetrics } from '../metrics.ts';
import { costOf } from '../models/catalog.ts';
import { requestedModel, requestOutcome, requestSettled, requestUsage, type Outcome } from '../request-context.ts';
import { prefetchedSpendOf, principalOf } from '../tenancy/enforcement.ts';
import { Budgets, describeScope, insufficientQuota, type Reading } from './budgets.ts';
import { createUsageSink, type UsageSink } from './usage-sink.ts';

export const BUDGET_WARNING_HEADER = 'x-budget-warning';
export const BUDGET_DOWNGRADE_HEADER = 'x-budget-downgraded';

export interface Accounting {
  hook: preHandlerAsyncHookHandler;
  budgetStore: BudgetStore;
  sink: UsageSink;
  close(): Promise<void>;
}

export async function startAccounting(config: RouterProcessConfig, logger: Logger, metrics: RouterMetrics): Promise<Accounting> {
  const cfg = config.router;
  // Budgets and usage records share the usage Redis (none unless router.auth.mode is required: cli/config.ts).
  const redisUrl = config.redis.usage;
  let budgetStore: BudgetStore;
  if (redisUrl) {
    const redis = new RedisBudgetStore(redisUrl, { commandTimeoutMs: cfg.auth.commandTimeoutMs });
    await redis.ready(3_000).catch(() => logger.warn('Redis not reachable at start; budgets follow router.auth.onStoreError until it is'));
    budgetStore = redis;
  } else {
    budgetStore = new MemoryBudgetStore();
  }
  const budgetsConfig = cfg.budgets;
  const budgets = new Budgets(budgetStore, budgetsConfig, logger, (level, r) => {
    metrics.budgetEvents.inc({ scope: describeScope(r.scope).split(' ')[0]!, period: r.period, level });
    const event = {
      type: `budget.${level}`,
      scope: r.scope,
      period: r.period,
      kind: r.kind,
      spent: r.spent,
      limit: r.limit,
      percent: Math.round(r.ratio * 100),
      at: new Date().toISOString(),
    };
    logger.warn(event, `budget ${level}: ${describeScope(r.scope)} ${r.period} ${r.kind} at ${event.percent}%`);
    void budgets.notify(event);
  });
  const sink = createUsageSink(config, redisUrl, logger, metrics);
  const started = new WeakMap<FastifyRequest, { at: number; requested: string }>();

  const hook: preHandlerAsyncHookHandler = async (req, reply) => {
    const body = (req.body ?? {}) as { model?: unknown };
    const requested = typeof body.model === 'string' ? body.model : 'unknown';
    started.set(req, { at: performance.now(), requested });
    const principal = principalOf(req);
    const scopes = principal ? budgets.scopesOf(principal) : [];

    let fullest: Reading | undefined;
    try {
      fullest = await budgets.check(scopes, Date.now(), prefetchedSpendOf(req));
    } catch (err) {
      logger.warn({ err: (err as Error).message, policy: cfg.auth.onStoreError }, 'budget store unavailable');
      metrics.limitStoreFailures.inc({ store: 'budgets', policy: cfg.auth.onStoreError });
      if (cfg.auth.onStoreError === 'closed') throw errors.overloaded('Budgets cannot be checked right now.', 1, 'budgets_unavailable');
    }
    if (fullest && fullest.ratio >= 1) {
      const action = principal?.policy.onBudgetExhausted ?? budgetsConfig.onExhausted;
      const cheaper = budgets.downgradeOf(requested);
      if (action === 'downgrade' && cheaper) {
        // Idempotency hashes what the client sent, not this rewrite (a retry after the budget resets replays).
        requestedModel.set(req, body.model);
        (body as { model: string }).model = cheaper;
        reply.header(BUDGET_DOWNGRADE_HEADER, `${requested} -> ${cheaper}`);
        metrics.budgetActions.inc({ action: 'downgraded' });
      } else {
        metrics.budgetActions.inc({ action: 'refused' });
        // OpenAI's SDKs retry 429s unless told not to: an exhausted quota does not come back in seconds.
        reply.header('x-should-retry', 'false');
        throw insufficientQuota(fullest);
      }
    } else if (fullest && fullest.ratio >= budgetsConfig.warnAt) {
      reply.header(
        BUDGET_WARNING_HEADER,
        `${describeScope(fullest.scope)} ${fullest.period === 'day' ? 'daily' : 'monthly'} ${fullest.kind} budget at ${Math.floor(fullest.ratio * 100)}%`,
      );
    }

    let settledOnce = false;
    const settle = (outcome: Outcome) => {
      if (settledOnce) return;
      settledOnce = true;
      const usage = requestUsage.get(req) ?? { promptTokens: 0, completionTokens: 0 };
      const costUsd = costOf(cfg.catalog, outcome.model, outcome.backend, usage.promptTokens, usage.completionTokens);
      const tokens = usage.promptTokens + usage.completionTokens;
      if (costUsd > 0) metrics.spend.inc({ model: outcome.model }, costUsd);
      if (scopes.length)
        void budgets
          .record(scopes, { costUsd, tokens })
          .catch((err: Error) => logger.warn({ err: err.message }, 'budget spend not recorded'));
      const s = started.get(req)!;
      // Client values (model names, request id) are capped and cleaned here: never stored whole.
      sink.write(
        boundUsageRecord({
          id: req.id,
          ts: Date.now(),
          tenantId: principal?.tenantId ?? null,
          keyId: principal?.keyId ?? null,
          requestedModel: s.requested,
          model: outcome.model,
          backend: outcome.backend,
          lane: outcome.lane,
          tags: principal?.tags ?? {},
          promptTokens: usage.promptTokens,
          completionTokens: usage.completionTokens,
          costUsd,
          ttftMs: outcome.ttftMs === null ? null : Math.round(outcome.ttftMs),
          latencyMs: Math.round(performance.now() - s.at),
          outcome: !reply.raw.writableFinished ? 'cancelled' : outcome.status >= 400 || !requestUsage.get(req) ? 'error' : 'ok',
          status: outcome.status,
        }),
      );
    };
    // Settle once both happened, in either order: the response closed and the route recorded its
    // outcome (an abandoned stream closes first; without idempotency nothing else waits for the end).
    reply.raw.once('close', () => {
      const pending = requestSettled.get(req);
      const whenKnown = () => requestOutcome.whenKnown(req, settle);
      if (pending) void pending.then(whenKnown);
      else whenKnown();
    });
  };

  return {
    hook,
    budgetStore,
    sink,
    async close() {
      await sink.close();
      await budgetStore.close();
    },
  };
}
