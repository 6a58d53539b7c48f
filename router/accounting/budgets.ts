// Budgets: spend per tenant, key and tag per UTC day and month, in USD and tokens. Checked at
// admission (one store read for all of a request's scopes that have a budget): at `warnAt` (80%)
// the answer carries `x-budget-warning`; at 100% the request is refused with OpenAI's 429
// `insufficient_quota`, or sent to a cheaper alias (`budgets.downgrade`), as configured. Spend
// is added when the request ends; the replica whose addition crosses 80% or 100% reports it once
// (log line, metric, optional webhook with retries).
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { ApiError } from '../../common/errors.ts';
import type { Logger } from '../../common/logger.ts';
import { periodsOf, type BudgetStore, type Spend } from '../../common/store/budgets.ts';
import type { Policy } from '../../common/contracts.ts';
import { outboundPolicyShape, postWebhook, webhookHeaders } from '../webhooks/delivery.ts';
import { own } from '../../common/own.ts';

const budgetSchema = z.strictObject({
  dailyCostUsd: z.number().positive().optional(),
  monthlyCostUsd: z.number().positive().optional(),
  dailyTokens: z.number().int().positive().optional(),
  monthlyTokens: z.number().int().positive().optional(),
});
export type Budget = z.infer<typeof budgetSchema>;

export const budgetsConfigSchema = z.strictObject({
  /** Fraction of a budget at which the warning event and header start. */
  warnAt: z.number().gt(0).max(1).default(0.8),
  /** At 100%: refuse (429 insufficient_quota) or downgrade; a tenant's or key's policy may override. */
  onExhausted: z.enum(['refuse', 'downgrade']).default('refuse'),
  /** requested model or alias -> the cheaper alias an exhausted budget sends it to. */
  downgrade: z.record(z.string().min(1), z.string().min(1)).default({}),
  /** Budgets per tag, keyed `name=value` (tags are the tenant's attribution tags). */
  tags: z.record(z.string().min(1), budgetSchema).default({}),
  /**
   * Events are also POSTed here as JSON, retried with backoff, signed as batch webhooks are
   * (Standard Webhooks: webhook-id, webhook-timestamp, webhook-signature) with `secret` (or the
   * contents of `secretFile`). No redirects followed; internal targets refused unless allowed.
   */
  webhook: z
    .strictObject({
      url: z.url(),
      retries: z.number().int().min(0).max(10).default(3),
      timeoutMs: z.number().int().positive().default(2_000),
      secret: z.string().min(1).optional(),
      secretFile: z.string().min(1).optional(),
      ...outboundPolicyShape,
    })
    .optional(),
});
export type BudgetsConfig = z.infer<typeof budgetsConfigSchema>;

/** A tenant or key policy's budget fields, as a Budget. */
export function budgetOfPolicy(p: Policy): Budget {
  return {
    dailyCostUsd: p.dailyCostBudgetUsd,
    monthlyCostUsd: p.monthlyCostBudgetUsd,
    dailyTokens: p.dailyTokenBudget,
    monthlyTokens: p.monthlyTokenBudget,
  };
}

export interface BudgetScope {
  /** `t:<tenant>`, `k:<key id>`, `g:<name>=<value>` */
  scope: string;
  budget: Budget;
}

export interface Reading {
  scope: string;
  period: 'day' | 'month';
  kind: 'cost' | 'tokens';
  spent: number;
  limit: number;
  ratio: number;
}

export const hasBudget = (b: Budget) =>
  b.dailyCostUsd !== undefined || b.monthlyCostUsd !== undefined || b.dailyTokens !== undefined || b.monthlyTokens !== undefined;

/** The store keys a request's spend is added to: every scope, day and month. */
export function spendKeys(scopes: readonly string[], at: number): string[] {
  const { day, month } = periodsOf(at);
  return scopes.flatMap((s) => [`${s}|${day}`, `${s}|${month}`]);
}

/** Each limit set on these scopes against the spend read for them (day, month per scope, in order). */
function readings(scopes: readonly BudgetScope[], spend: readonly Spend[]): Reading[] {
  const out: Reading[] = [];
  scopes.forEach((s, i) => {
    const [day, month] = [spend[2 * i]!, spend[2 * i + 1]!];
    const push = (period: 'day' | 'month', kind: 'cost' | 'tokens', spent: number, limit: number | undefined) => {
      if (limit !== undefined) out.push({ scope: s.scope, period, kind, spent, limit, ratio: spent / limit });
    };
    push('day', 'cost', day.costUsd, s.budget.dailyCostUsd);
    push('month', 'cost', month.costUsd, s.budget.monthlyCostUsd);
    push('day', 'tokens', day.tokens, s.budget.dailyTokens);
    push('month', 'tokens', month.tokens, s.budget.monthlyTokens);
  });
  return out;
}

type BudgetPrincipal = { tenantId: string; keyId: string; tenantPolicy: Policy; keyPolicy: Policy; tags: Record<string, string> };

/** The scopes of a principal: tenant, key, and each tag; with their budgets (maybe none). */
export function budgetScopesOf(p: BudgetPrincipal, config: Pick<BudgetsConfig, 'tags'>): BudgetScope[] {
  return [
    { scope: `t:${p.tenantId}`, budget: budgetOfPolicy(p.tenantPolicy) },
    { scope: `k:${p.keyId}`, budget: budgetOfPolicy(p.keyPolicy) },
    ...Object.entries(p.tags).map(([k, v]) => ({ scope: `g:${k}=${v}`, budget: ownValue(config.tags, `${k}=${v}`) ?? {} })),
  ];
}

/** The store keys the budget check reads for a principal (none when no scope has a budget). */
export function budgetCheckKeys(p: BudgetPrincipal, config: Pick<BudgetsConfig, 'tags'>, at: number): string[] {
  return spendKeys(
    budgetScopesOf(p, config)
      .filter((s) => hasBudget(s.budget))
      .map((s) => s.scope),
    at,
  );
}

/** Spend already read for these keys (by the limit store's admission, in its round trip). */
export interface PrefetchedSpend {
  keys: string[];
  spend: Spend[];
}

/** `obj[key]` only when it is obj's own property: client input never reaches Object.prototype. */
const ownValue = <T>(obj: Record<string, T>, key: string): T | undefined => own(obj, key);

export class Budgets {
  /** requested model -> cheaper alias; a Map, so `"model":"constructor"` is just not in it. */
  private readonly downgrades: ReadonlyMap<string, string>;

  constructor(
    private readonly store: BudgetStore,
    readonly config: BudgetsConfig,
    private readonly logger: Logger,
    private readonly onEvent: (level: 'warning' | 'exhausted', r: Reading) => void = () => undefined,
  ) {
    this.downgrades = new Map(Object.entries(config.downgrade));
    const hook = config.webhook;
    this.secret = hook?.secret ?? (hook?.secretFile ? readFileSync(hook.secretFile, 'utf8').trim() : undefined);
    if (hook && !this.secret) logger.warn('router.budgets.webhook has no secret: budget events go out unsigned');
  }

  private readonly secret: string | undefined;

  /** The alias an exhausted budget sends `model` to, if one is configured. */
  downgradeOf(model: string): string | undefined {
    return this.downgrades.get(model);
  }

  /** The scopes of a principal: tenant, key, and each tag; with their budgets (maybe none). */
  scopesOf(p: BudgetPrincipal): BudgetScope[] {
    return budgetScopesOf(p, this.config);
  }

  /**
   * The fullest budget among these scopes (undefined when none has one): one store round trip,
   * or none when admission already read the same keys (`prefetched`).
   */
  async check(scopes: readonly BudgetScope[], at = Date.now(), prefetched?: PrefetchedSpend): Promise<Reading | undefined> {
    const limited = scopes.filter((s) => hasBudget(s.budget));
    if (limited.length === 0) return undefined;
    const keys = spendKeys(
      limited.map((s) => s.scope),
      at,
    );
    const same = prefetched !== undefined && prefetched.spend.length === keys.length && prefetched.keys.every((k, i) => k === keys[i]);
    const spend = same ? prefetched.spend : await this.store.read(keys);
    return readings(limited, spend).reduce<Reading | undefined>((a, r) => (!a || r.ratio > a.ratio ? r : a), undefined);
  }

  /** Adds a finished request's spend to all its scopes; reports each threshold this addition crossed. */
  async record(scopes: readonly BudgetScope[], spend: Spend, at = Date.now()): Promise<void> {
    if (spend.costUsd <= 0 && spend.tokens <= 0) return;
    const after = await this.store.add(
      spendKeys(
        scopes.map((s) => s.scope),
        at,
      ),
      spend,
    );
    for (const r of readings(scopes, after)) {
      const before = r.spent - (r.kind === 'cost' ? spend.costUsd : spend.tokens);
      if (before < r.limit && r.spent >= r.limit) this.onEvent('exhausted', r);
      else if (before < this.config.warnAt * r.limit && r.spent >= this.config.warnAt * r.limit) this.onEvent('warning', r);
    }
  }

  /** POSTs an event to the webhook, retrying with backoff (250 ms, 500 ms, 1 s, ...); never throws. */
  async notify(event: object): Promise<boolean> {
    const hook = this.config.webhook;
    if (!hook) return true;
    const body = JSON.stringify(event);
    // One id for every attempt: receivers deduplicate retries by webhook-id.
    const id = `evt_${randomUUID().replace(/-/g, '')}`;
    let last = '';
    for (let attempt = 0; attempt <= hook.retries; attempt++) {
      const res = await postWebhook(hook.url, body, {
        timeoutMs: hook.timeoutMs,
        policy: hook,
        headers: webhookHeaders(this.secret, id, body),
      });
      if (res.ok) return true;
      last = res.message;
      // A refused target stays refused: retrying would only repeat the refusal.
      if (res.reason === 'refused_target' || res.reason === 'bad_url') break;
      if (attempt < hook.retries) await new Promise((r) => setTimeout(r, 250 * 2 ** attempt));
    }
    // The origin only: a URL's path or query may carry a token.
    this.logger.warn({ target: new URL(hook.url).origin, reason: last }, 'budget webhook failed');
    return false;
  }
}

/** OpenAI's answer to an exhausted quota: 429, type and code `insufficient_quota`. */
export function insufficientQuota(r: Reading): ApiError {
  const what = r.kind === 'cost' ? `$${r.limit}` : `${r.limit} tokens`;
  return new ApiError(
    429,
    `You exceeded your current quota: the ${r.period === 'day' ? 'daily' : 'monthly'} budget of ${what} for ${describeScope(r.scope)} is spent.`,
    'insufficient_quota',
    'insufficient_quota',
  );
}

export function describeScope(scope: string): string {
  const kind = scope[0] === 't' ? 'tenant' : scope[0] === 'k' ? 'key' : 'tag';
  return `${kind} ${scope.slice(2)}`;
}
