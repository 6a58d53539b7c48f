// The fallback chain: for a model with a chain in `router.fallback.chains`, try its backends in
// order (`local` = the GPU pool through NodeDispatcher, then hosted providers), moving on only
// for the configured triggers and only when policy allows the request to leave the cluster
// (lane, residency of the caller's key id or tenant). Per provider: breaker, shared Retry-After pause, retries
// with full-jitter backoff within the request's deadline. Everything happens before the first
// byte reached the client; after that, generation.ts ends a broken stream with an error event.
import { isAdmissionRefusal } from '../admission/refusal.ts';
import { ApiError, errors } from '../../common/errors.ts';
import type { Logger } from '../../common/logger.ts';
import type { NodeDispatcher, DispatchRequest } from './node-dispatch.ts';
import type { Provider, UpstreamDispatch } from './providers/types.ts';
import { ProviderError } from './providers/types.ts';
import { SpanKind, withSpan } from '../../common/telemetry.ts';
import type { BreakerSet, Permit } from './circuit-breaker.ts';
import { judgeAtEnd } from './judged-stream.ts';
import { own } from '../../common/own.ts';
import { backoffMs, sleepUnlessAborted, type ProviderPauses, type RetryOptions } from './retry.ts';
import type { FallbackConfig, Trigger } from './fallback-config.ts';

type Step = { local: true } | { local: false; provider: string; model: string };

export interface FallbackObserver {
  /** One request served by a provider (or refused fallback), by trigger. */
  onFallback?(provider: string, trigger: Trigger, outcome: 'served' | 'failed' | 'denied'): void;
}

export interface Upstream {
  dispatch(req: DispatchRequest): Promise<UpstreamDispatch>;
}

/** An /v1/embeddings request no local embedder serves, for the model's chain. */
export interface EmbeddingFallbackRequest extends Pick<
  DispatchRequest,
  'requestId' | 'model' | 'deadline' | 'signal' | 'caller' | 'dataMayLeave'
> {
  /** The client's OpenAI embeddings body (router-only fields removed). */
  body: Record<string, unknown>;
}

export interface EmbeddingFallbackResult {
  /** `<provider>:<model>`, the `x-backend` header. */
  backend: string;
  /** The provider's answer (OpenAI's embeddings shape). */
  body: { data: unknown[]; model?: string; usage?: { prompt_tokens?: number } };
  promptTokens: number;
}

export class FallbackDispatcher implements Upstream {
  private readonly chains = new Map<string, Step[]>();
  /** Chain names as configured, with the first hosted backend each would use. */
  private readonly listing: { id: string; ownedBy: string }[] = [];

  constructor(
    private readonly nodes: NodeDispatcher,
    private readonly cfg: FallbackConfig,
    private readonly providers: Map<string, Provider>,
    private readonly breakers: BreakerSet,
    private readonly pauses: ProviderPauses,
    private readonly retry: RetryOptions & { slowFirstTokenMs: number },
    private readonly logger: Logger,
    aliases: Record<string, string> = {},
    private readonly observer: FallbackObserver = {},
  ) {
    for (const [key, chain] of Object.entries(cfg.chains)) {
      const steps = chain.map((s): Step =>
        s === 'local' ? { local: true } : { local: false, provider: s.slice(0, s.indexOf(':')), model: s.slice(s.indexOf(':') + 1) },
      );
      // A chain may be keyed by alias or by served model; requests arrive resolved.
      this.chains.set(own(aliases, key) ?? key, steps);
      this.chains.set(key, steps);
      const hosted = steps.find((x) => !x.local);
      if (hosted && !hosted.local) this.listing.push({ id: key, ownedBy: `${hosted.provider}:${hosted.model}` });
    }
  }

  /** For GET /v1/models: chain names with a hosted backend, `ownedBy` naming the first one. */
  chainListing(): { id: string; ownedBy: string }[] {
    return [...this.listing];
  }

  /** True when the model's chain has a provider that serves embeddings (OpenAI, Azure). */
  servesEmbeddings(model: string): boolean {
    return (this.chains.get(model) ?? []).some((s) => !s.local && this.providers.get(s.provider)?.embed !== undefined);
  }

  /**
   * Embeddings for a model no local embedder serves: the chain's embeddings-capable providers in
   * order, with the same residency rule, breakers, pauses and retries as generations.
   */
  async embed(req: EmbeddingFallbackRequest): Promise<EmbeddingFallbackResult> {
    const steps = (this.chains.get(req.model) ?? []).filter(
      (s): s is Extract<Step, { local: false }> => !s.local && this.providers.get(s.provider)?.embed !== undefined,
    );
    if (steps.length === 0) throw errors.modelNotFound(req.model);
    const noLocal = errors.overloaded(`No local embedder serves model '${req.model}'.`, 1, 'no_ready_node');
    if (!this.cfg.triggers.includes('no_ready_node') || !dataMayLeave(this.cfg, req)) {
      this.observer.onFallback?.(steps[0]!.provider, 'no_ready_node', 'denied');
      throw honest(noLocal, 'fallback to hosted providers is not allowed for this request');
    }
    let lastError: ApiError = noLocal;
    for (const [i, step] of steps.entries()) {
      const p = this.providers.get(step.provider)!;
      try {
        const body = await this.attempts(
          p,
          req,
          i === steps.length - 1,
          async (attempt) => ({
            value: (await withSpan(
              `embeddings ${step.model}`,
              {
                'gen_ai.operation.name': 'embeddings',
                'gen_ai.provider.name': p.name,
                'gen_ai.request.model': step.model,
                'icp.attempt': attempt,
              },
              () => p.embed!({ requestId: req.requestId, model: step.model, body: req.body, deadline: req.deadline, signal: req.signal }),
              SpanKind.CLIENT,
            )) as EmbeddingFallbackResult['body'],
            slow: false,
          }),
          (value, permit) => {
            permit.success();
            return value;
          },
        );
        this.observer.onFallback?.(p.name, 'no_ready_node', 'served');
        return { backend: `${p.name}:${step.model}`, body, promptTokens: Number(body.usage?.prompt_tokens ?? 0) };
      } catch (err) {
        if (err instanceof ProviderError && err.failure === 'client') throw err.apiError;
        this.observer.onFallback?.(p.name, 'no_ready_node', 'failed');
        lastError =
          err instanceof ProviderError ? err.apiError : err instanceof ApiError ? err : errors.upstream(`provider ${p.name} failed`);
        this.logger.warn(
          { requestId: req.requestId, provider: p.name, err: lastError.message },
          'fallback provider failed embeddings; trying the next',
        );
      }
    }
    throw honest(lastError, 'no backend in the fallback chain could serve the request');
  }

  /** Models a chain can serve even when no GPU node reports them (all nodes gone). */
  chainModels(): Set<string> {
    return new Set([...this.chains].filter(([, steps]) => steps.some((s) => !s.local)).map(([m]) => m));
  }

  async dispatch(req: DispatchRequest): Promise<UpstreamDispatch> {
    const chain = this.chains.get(req.model);
    if (!chain) return this.nodes.dispatch(req);
    return this.walk(chain, req, undefined, undefined);
  }

  /** Admission refused the request (lane saturated past its deadline): offer the chain's providers. */
  afterRefusal(req: DispatchRequest, refusal: ApiError): Promise<UpstreamDispatch> | undefined {
    const chain = this.chains.get(req.model);
    if (!chain || !chain.some((s) => !s.local)) return undefined;
    if (!this.allowed(req, 'lane_saturated')) return undefined;
    return this.walk(
      chain.filter((s) => !s.local),
      req,
      'lane_saturated',
      refusal,
    );
  }

  private async walk(
    chain: Step[],
    req: DispatchRequest,
    trigger: Trigger | undefined,
    lastError: ApiError | undefined,
  ): Promise<UpstreamDispatch> {
    for (let i = 0; i < chain.length; i++) {
      const step = chain[i]!;
      if (step.local) {
        try {
          return await this.nodes.dispatch(req);
        } catch (err) {
          const t = triggerOf(err);
          if (!t || !this.cfg.triggers.includes(t)) throw err;
          trigger = t;
          lastError = err as ApiError;
          continue;
        }
      }
      // A chain that starts with a provider needs no trigger.
      const why = trigger ?? 'no_ready_node';
      if (!this.allowed(req, why)) {
        this.observer.onFallback?.(step.provider, why, 'denied');
        throw honest(lastError, `fallback to hosted providers is not allowed for this request`);
      }
      const provider = this.providers.get(step.provider);
      if (!provider?.supports(req.operation)) continue;
      const isLast = !chain.slice(i + 1).some((s) => !s.local && this.providers.get(s.provider)?.supports(req.operation));
      try {
        const d = await this.callProvider(provider, step.model, req, isLast);
        this.observer.onFallback?.(provider.name, why, 'served');
        this.logger.info({ requestId: req.requestId, backend: d.backend, trigger: why }, 'served by fallback provider');
        return d;
      } catch (err) {
        if (err instanceof ProviderError && err.failure === 'client') throw err.apiError;
        this.observer.onFallback?.(provider.name, why, 'failed');
        lastError =
          err instanceof ProviderError ? err.apiError : err instanceof ApiError ? err : errors.upstream(`provider ${provider.name} failed`);
        this.logger.warn(
          { requestId: req.requestId, provider: provider.name, err: lastError.message },
          'fallback provider failed; trying the next',
        );
        trigger ??= why;
      }
    }
    throw honest(lastError, 'no backend in the fallback chain could serve the request');
  }

  /** Lane and residency: may this request's data leave the cluster? */
  private allowed(req: DispatchRequest, trigger: Trigger): boolean {
    if (!this.cfg.triggers.includes(trigger)) return false;
    if (!this.cfg.lanes.includes(req.lane as never)) return false;
    return dataMayLeave(this.cfg, req);
  }

  private callProvider(p: Provider, model: string, req: DispatchRequest, isLast: boolean): Promise<UpstreamDispatch> {
    const op = req.operation === 'CHAT_COMPLETIONS' ? 'chat' : 'text_completion';
    return this.attempts(
      p,
      req,
      isLast,
      async (attempt) => {
        const started = performance.now();
        const d = await withSpan(
          `${op} ${model}`,
          { 'gen_ai.operation.name': op, 'gen_ai.provider.name': p.name, 'gen_ai.request.model': model, 'icp.attempt': attempt },
          () =>
            p.generate({
              requestId: req.requestId,
              operation: req.operation,
              model,
              body: req.body,
              deadline: req.deadline,
              signal: req.signal,
            }),
          SpanKind.CLIENT,
        );
        return { value: { ...d, attempts: attempt }, slow: performance.now() - started > this.retry.slowFirstTokenMs };
      },
      (d, permit, slow) => judgeAtEnd(d, permit, { slow: () => slow }),
    );
  }

  /**
   * One provider for one request: pause, breaker, retries with backoff within the deadline.
   * `call` makes one attempt; `settle` takes the permit of the attempt that answered.
   */
  private async attempts<T>(
    p: Provider,
    req: Pick<DispatchRequest, 'signal' | 'deadline'>,
    isLast: boolean,
    call: (attempt: number) => Promise<{ value: T; slow: boolean }>,
    settle: (value: T, permit: Permit, slow: boolean) => T,
  ): Promise<T> {
    const breaker = this.breakers.get(`provider:${p.name}`);
    let last: ProviderError | undefined;
    for (let attempt = 1; attempt <= this.retry.maxAttempts; attempt++) {
      if (req.signal.aborted) throw new ProviderError(p.name, errors.clientCancelled(), 'client');
      const paused = this.pauses.remainingMs(p.name);
      if (paused > 0) {
        // Another option exists: don't wait for this one. Last option: wait if it fits.
        const fits = Date.now() + paused < req.deadline.getTime() && paused <= this.retry.maxPauseWaitMs;
        if (!isLast || !fits)
          throw (
            last ??
            new ProviderError(
              p.name,
              errors.rateLimited(`provider ${p.name} is paused by its rate limit`, Math.ceil(paused / 1000), 'provider_rate_limited'),
              'next',
            )
          );
        await wait(paused, req.signal, p.name);
      }
      const permit = breaker.tryAcquire();
      if (!permit)
        throw (
          last ?? new ProviderError(p.name, errors.overloaded(`provider ${p.name} has an open circuit breaker`, 1, 'breaker_open'), 'next')
        );
      try {
        const { value, slow } = await call(attempt);
        // Judged when the answer is over: a stream that breaks after its first byte is a failure too.
        return settle(value, permit, slow);
      } catch (err) {
        const e =
          err instanceof ProviderError
            ? err
            : new ProviderError(p.name, errors.upstream(`provider ${p.name} failed: ${(err as Error).message}`), 'retryable');
        if (e.failure === 'client') {
          permit.release();
          throw e;
        }
        permit.failure();
        if (e.retryAfterMs !== undefined) this.pauses.pause(p.name, e.retryAfterMs);
        last = e;
        if (e.failure !== 'retryable' || attempt === this.retry.maxAttempts) throw e;
        if (e.retryAfterMs === undefined) {
          const delay = backoffMs(attempt, this.retry);
          if (Date.now() + delay >= req.deadline.getTime()) throw e;
          await wait(delay, req.signal, p.name);
        }
      }
    }
    throw last ?? new ProviderError(p.name, errors.upstream(`provider ${p.name} failed`), 'retryable');
  }
}

async function wait(ms: number, signal: AbortSignal, provider: string): Promise<void> {
  try {
    await sleepUnlessAborted(ms, signal);
  } catch {
    throw new ProviderError(provider, errors.clientCancelled(), 'client');
  }
}

/** Which trigger (if any) a GPU-pool failure is. */
export function triggerOf(err: unknown): Trigger | undefined {
  if (!(err instanceof ApiError)) return undefined;
  switch (err.code) {
    case 'no_ready_node':
    case 'model_not_found':
      return 'no_ready_node';
    case 'breaker_open':
      return 'breaker_open';
    case 'node_unavailable':
    case 'node_error':
    case 'engine_error':
      return 'node_failed';
    default:
      return isAdmissionRefusal(err) ? 'lane_saturated' : undefined;
  }
}

/** The honest refusal: 503 with Retry-After (the pool's own, when it gave one). */
function honest(last: ApiError | undefined, why: string): ApiError {
  if (last && (last.status === 503 || last.status === 429) && last.retryAfterSeconds !== undefined) return last;
  return errors.overloaded(`${last ? `${last.message} ` : ''}(${why})`.trim(), last?.retryAfterSeconds ?? 1, last?.code ?? 'no_capacity');
}

/**
 * Residency: a tenant whose policy forbids hosted fallback (`allowHostedFallback: false`, from
 * the control plane) never leaves the cluster, whatever the config says; otherwise the caller's
 * key id in `residency.keys`, else its tenant id in `residency.tenants`, else `residency.default`.
 * No caller (auth off: nobody is verified) means `residency.default`.
 */
export function dataMayLeave(cfg: Pick<FallbackConfig, 'residency'>, req: Pick<DispatchRequest, 'caller' | 'dataMayLeave'>): boolean {
  if (req.dataMayLeave === false) return false;
  const c = req.caller;
  const residency = (c ? (own(cfg.residency.keys, c.keyId) ?? own(cfg.residency.tenants, c.tenantId)) : undefined) ?? cfg.residency.default;
  return residency === 'any';
}
