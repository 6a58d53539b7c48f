// Tenant enforcement in the router's admission stage, before any queue slot or upstream work:
// authenticate the key, check the model is allowed, then RPM / TPM / concurrency
// through the shared limit store. Refusals are OpenAI's 429 `rate_limit_exceeded` with OpenAI's
// `x-ratelimit-*` headers and Retry-After; the headers go out on success too. When the request
// ends its lease is released and the TPM charge corrected with the real usage.
import type { FastifyReply, FastifyRequest, preHandlerAsyncHookHandler } from 'fastify';
import { randomUUID } from 'node:crypto';
import { ApiError, errors } from '../../common/errors.ts';
import type { Logger } from '../../common/logger.ts';
import type { AdmitResult, BucketState, LimitPolicy, LimitStore } from '../../common/store/limits.ts';
import type { KeyDirectory, Principal } from './key-directory.ts';
import { embeddingTexts, estimateCompletionTokens, estimatePromptTokens, estimateTextTokens } from './token-estimate.ts';
import { requestUsage } from '../request-context.ts';
import type { PrefetchedSpend } from '../accounting/budgets.ts';
import { onBehalfKeyId } from './on-behalf.ts';

export interface TenancyOptions {
  directory: KeyDirectory;
  store: LimitStore;
  /** What to do when the limit store (Redis) cannot answer. */
  onStoreError: 'open' | 'closed';
  leaseTtlMs: number;
  /** Completion tokens charged at admission when the request sets no max_tokens. */
  defaultMaxTokens: number;
  logger: Logger;
  onStoreFailure?: () => void;
  /** The real token count of texts for a model served here (the router's embedders); undefined otherwise. */
  countTokens?: (model: string, texts: string[], inputType: 'query' | 'passage') => Promise<number | undefined>;
  /** The budget store keys the budget check will read for this principal: read with the limits, in one round trip. */
  budgetKeysOf?: (p: Principal, at: number) => string[];
}

const prefetched = new WeakMap<FastifyRequest, PrefetchedSpend>();
/** Budget spend admission already read with the limits (accounting's check then needs no round trip). */
export const prefetchedSpendOf = (req: FastifyRequest) => prefetched.get(req);

/**
 * Tokens charged against TPM at admission. Embeddings and rerank: their texts, counted by the
 * model's own tokenizer when the router serves it, else estimated; nothing generated. Generations:
 * the prompt estimate plus max_tokens (the simulated and hosted generation models have no
 * tokenizer here).
 */
async function admissionTokens(req: FastifyRequest, opts: TenancyOptions): Promise<number> {
  const emb = embeddingTexts(req.routeOptions.url, req.body);
  if (!emb) return estimatePromptTokens(req.body) + estimateCompletionTokens(req.body, opts.defaultMaxTokens);
  const real =
    emb.model && opts.countTokens ? await opts.countTokens(emb.model, emb.texts, emb.inputType).catch(() => undefined) : undefined;
  return real ?? estimateTextTokens(emb.texts);
}

const principals = new WeakMap<FastifyRequest, Principal>();
export const principalOf = (req: FastifyRequest) => principals.get(req);

const limitsOf = (p: { rpm?: number; tpm?: number; maxConcurrent?: number }): LimitPolicy | undefined =>
  p.rpm === undefined && p.tpm === undefined && p.maxConcurrent === undefined
    ? undefined
    : { rpm: p.rpm, tpm: p.tpm, maxConcurrent: p.maxConcurrent };

/** OpenAI's reset format: `120ms`, `8.5s`, `6m0s`. */
export function formatReset(ms: number): string {
  if (ms < 1_000) return `${Math.max(0, Math.ceil(ms))}ms`;
  const s = ms / 1_000;
  if (s < 60) return `${Number(s.toFixed(3))}s`;
  return `${Math.floor(s / 60)}m${Math.round(s % 60)}s`;
}

function setRateHeaders(reply: FastifyReply, requests: BucketState | undefined, tokens: BucketState | undefined): void {
  if (requests) {
    reply.header('x-ratelimit-limit-requests', String(requests.limit));
    reply.header('x-ratelimit-remaining-requests', String(requests.remaining));
    reply.header('x-ratelimit-reset-requests', formatReset(requests.resetMs));
  }
  if (tokens) {
    reply.header('x-ratelimit-limit-tokens', String(tokens.limit));
    reply.header('x-ratelimit-remaining-tokens', String(tokens.remaining));
    reply.header('x-ratelimit-reset-tokens', formatReset(tokens.resetMs));
  }
}

function refusal(result: AdmitResult, scope: string): ApiError {
  const what =
    result.reason === 'requests' ? 'requests per min (RPM)' : result.reason === 'tokens' ? 'tokens per min (TPM)' : 'concurrent requests';
  const secs = result.retryAfterMs / 1_000;
  return errors.rateLimited(
    `Rate limit reached for ${scope} on ${what}. Please try again in ${formatReset(result.retryAfterMs)}.`,
    Math.max(1, Math.ceil(secs)),
  );
}

export function createTenancyHook(opts: TenancyOptions): preHandlerAsyncHookHandler {
  return async function tenancy(req, reply) {
    const onBehalf = onBehalfKeyId(req);
    const principal = onBehalf ? opts.directory.principalFor(onBehalf) : opts.directory.authenticate(req.headers.authorization);
    principals.set(req, principal);
    const body = (req.body ?? {}) as { model?: unknown };
    const allowed = principal.policy.allowedModels;
    if (allowed && typeof body.model === 'string' && !allowed.includes(body.model)) throw errors.modelNotFound(body.model);

    const charged = await admissionTokens(req, opts);
    const scopes = [
      { key: `k:${principal.keyId}`, policy: limitsOf(principal.keyPolicy), name: `key ${principal.keyId}` },
      { key: `t:${principal.tenantId}`, policy: limitsOf(principal.tenantPolicy), name: `tenant ${principal.tenantId}` },
    ].filter((s): s is { key: string; policy: LimitPolicy; name: string } => s.policy !== undefined);
    if (scopes.length === 0) return;

    const leaseId = randomUUID();
    const held: typeof scopes = [];
    let last: AdmitResult | undefined;
    try {
      if (opts.store.admitAll) {
        // Redis: every scope and the budget spend in one script, one round trip, all or nothing.
        const at = Date.now();
        const budgetKeys = opts.budgetKeysOf?.(principal, at) ?? [];
        const r = await opts.store.admitAll({ scopes, tokens: charged, leaseId, leaseTtlMs: opts.leaseTtlMs, budgetKeys });
        last = r.results.at(-1);
        if (!r.admitted && last) {
          setRateHeaders(reply, last.requests, last.tokens);
          throw refusal(last, scopes[r.results.length - 1]!.name);
        }
        if (budgetKeys.length) prefetched.set(req, { keys: budgetKeys, spend: r.spend });
        held.push(...scopes);
      } else
        for (const scope of scopes) {
          const result = await opts.store.admit({
            key: scope.key,
            policy: scope.policy,
            tokens: charged,
            leaseId,
            leaseTtlMs: opts.leaseTtlMs,
          });
          last = result;
          if (!result.admitted) {
            // Undo what the narrower scope already took: an all-or-nothing admission.
            for (const h of held) void opts.store.settle(h.key, leaseId, h.policy, -charged).catch(() => undefined);
            setRateHeaders(reply, result.requests, result.tokens);
            throw refusal(result, scope.name);
          }
          held.push(scope);
        }
    } catch (err) {
      if (err instanceof ApiError) throw err;
      opts.onStoreFailure?.();
      opts.logger.warn({ err: (err as Error).message, policy: opts.onStoreError }, 'limit store unavailable');
      if (opts.onStoreError === 'closed') throw errors.overloaded('Rate limits cannot be checked right now.', 1, 'limits_unavailable');
      return; // fail open: serve without limits rather than fail every request
    }
    setRateHeaders(reply, last?.requests, last?.tokens);

    // Long streams keep their lease; the end of the request releases it and corrects TPM.
    const renew = setInterval(
      () => {
        for (const h of held) void opts.store.renew(h.key, leaseId, opts.leaseTtlMs).catch(() => undefined);
      },
      Math.max(1_000, opts.leaseTtlMs / 2),
    );
    renew.unref();
    reply.raw.once('close', () => {
      clearInterval(renew);
      const usage = requestUsage.get(req);
      // Failed before any generation: refund all. Succeeded: charge the real count. A client gone
      // mid-stream without a usage record keeps the admission charge (it may have generated).
      const real = usage ? usage.promptTokens + usage.completionTokens : reply.raw.statusCode >= 400 ? 0 : charged;
      for (const h of held) void opts.store.settle(h.key, leaseId, h.policy, real - charged).catch(() => undefined);
    });
  };
}
