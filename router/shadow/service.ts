// Shadow traffic: after a user's request completed, the same request goes to the rule's target (a
// model on the GPU pool or a hosted provider) in the background. The user never sees the shadow:
// it starts only after the user's answer was sent, its failures are caught here, and it runs in
// the sheddable lane (refused first, only on idle capacity) within its rule's daily token budget
// and concurrency cap. Each finished shadow becomes one record (latency, tokens, error, and the
// embedding similarity of the two answers) for the control plane.
import type { Caller } from '../admission/lanes.ts';
import { own } from '../../common/own.ts';
import { errors, ApiError } from '../../common/errors.ts';
import type { Logger } from '../../common/logger.ts';
import type { ShadowRecord, ShadowSide } from '../../common/shadow-record.ts';
import type { AdmissionController } from '../admission/controller.ts';
import { isAdmissionRefusal } from '../admission/fallback.ts';
import type { EmbeddingService } from '../embed/index.ts';
import { completionText } from '../http/request-log.ts';
import { analysePrompt } from '../scheduling/prompt-prefix.ts';
import type { Operation } from '../../common/contracts.ts';
import type { DispatchRequest } from '../upstream/node-dispatch.ts';
import type { Upstream } from '../upstream/fallback-dispatch.ts';
import type { Provider, UpstreamDispatch } from '../upstream/providers/types.ts';
import type { ShadowBudget } from './budget.ts';
import type { ShadowConfig, ShadowRule } from './config.ts';
import { isSampled } from './sampling.ts';
import type { ShadowSink } from './sink.ts';

export type ShadowOutcome = 'ok' | 'error' | 'shed' | 'budget_exhausted' | 'concurrency_limit' | 'denied';

/** What the user's request did: handed over by generation.ts once it completed. */
export interface PrimaryResult {
  requestId: string;
  operation: Operation;
  /** The client's (already validated) request body; `model` is the requested alias. */
  body: Record<string, unknown>;
  model: string;
  backend: string;
  status: number;
  latencyMs: number;
  ttftMs: number | null;
  usage: { promptTokens: number; completionTokens: number } | undefined;
  /** The response (non-streaming) or the stream's chunks, as JSON strings. */
  content: string[] | undefined;
  /** The verified caller and its tenant's hosted-fallback permission (residency of provider targets). */
  caller?: Caller;
  dataMayLeave?: boolean;
}

export interface ShadowDeps {
  /** The GPU pool (NodeDispatcher), never the fallback chain: a shadow does not spill to a provider. */
  nodes: Upstream;
  admission?: AdmissionController;
  providers: Map<string, Provider>;
  aliases: Record<string, string>;
  embeddings?: EmbeddingService;
  budget: ShadowBudget;
  sink: ShadowSink;
  logger: Logger;
  /** Residency (router.fallback.residency and the tenant's policy): may this caller's data go to a provider? */
  mayLeave(req: { caller?: Caller; dataMayLeave?: boolean }): boolean;
  onOutcome?(alias: string, target: string, outcome: ShadowOutcome): void;
}

type Target = { local: true; model: string } | { local: false; provider: Provider; model: string };

interface Rule extends ShadowRule {
  id: string;
  to: Target;
  inFlight: number;
}

export class ShadowService {
  private readonly byAlias = new Map<string, Rule[]>();
  private readonly running = new Set<Promise<void>>();
  private readonly closing = new AbortController();
  private readonly embeddingModel: string | undefined;

  constructor(
    private readonly cfg: ShadowConfig,
    private readonly deps: ShadowDeps,
  ) {
    for (const r of cfg.rules) {
      const sep = r.target.indexOf(':');
      const kind = r.target.slice(0, sep);
      const model = r.target.slice(sep + 1);
      let to: Target;
      if (kind === 'local') {
        to = { local: true, model: own(deps.aliases, model) ?? model };
      } else {
        const provider = deps.providers.get(kind);
        if (!provider) throw new Error(`router.shadow: rule ${r.alias} -> ${r.target}: no provider '${kind}' in router.fallback.providers`);
        to = { local: false, provider, model };
      }
      const rule: Rule = { ...r, id: `${r.alias}->${r.target}`, to, inFlight: 0 };
      this.byAlias.set(r.alias, [...(this.byAlias.get(r.alias) ?? []), rule]);
    }
    this.embeddingModel = cfg.embeddingModel ?? deps.embeddings?.defaultModel('embedding');
    if (cfg.embeddingModel && !deps.embeddings?.hasModel(cfg.embeddingModel)) {
      throw new Error(`router.shadow.embeddingModel: '${cfg.embeddingModel}' is not a model of router.embeddings`);
    }
  }

  /** Will this request be mirrored (so generation.ts keeps its answer)? A map lookup and a hash. */
  sampled(alias: unknown, requestId: string): boolean {
    const rules = typeof alias === 'string' ? this.byAlias.get(alias) : undefined;
    return rules?.some((r) => isSampled(r.id, requestId, r.percent)) ?? false;
  }

  /**
   * Called once the user's request completed (its answer is sent). Starts the shadows of the
   * sampled rules on a later turn of the event loop and returns at once; never throws.
   */
  mirror(p: PrimaryResult): void {
    if (p.status !== 200 || this.closing.signal.aborted) return;
    const alias = p.body.model;
    const rules = (typeof alias === 'string' ? this.byAlias.get(alias) : undefined)?.filter((r) => isSampled(r.id, p.requestId, r.percent));
    if (!rules?.length) return;
    setImmediate(() => {
      for (const rule of rules) {
        const run = this.run(rule, p).catch((err: Error) =>
          this.deps.logger.warn({ requestId: p.requestId, rule: rule.id, err: err.message }, 'shadow failed unexpectedly'),
        );
        this.running.add(run);
        void run.finally(() => this.running.delete(run));
      }
    });
  }

  /** Shadows in flight (tests and shutdown). */
  get inFlight(): number {
    return this.running.size;
  }

  /** Cancels running shadows and waits for their records to be written. */
  async close(): Promise<void> {
    this.closing.abort();
    await Promise.allSettled([...this.running]);
    await this.deps.sink.close();
    await this.deps.budget.close();
  }

  private count(rule: Rule, outcome: ShadowOutcome): void {
    this.deps.onOutcome?.(rule.alias, rule.target, outcome);
  }

  private async run(rule: Rule, p: PrimaryResult): Promise<void> {
    if (!rule.to.local && !this.deps.mayLeave(p)) return this.count(rule, 'denied');
    if (rule.inFlight >= rule.maxConcurrent) return this.count(rule, 'concurrency_limit');
    const body: Record<string, unknown> = { ...p.body, model: rule.to.model, stream: true, stream_options: { include_usage: true } };
    const prompt = analysePrompt(body);
    const maxTokens = numberOr(body.max_completion_tokens, numberOr(body.max_tokens, this.cfg.defaultMaxTokens));
    const reserved = prompt.promptTokens + maxTokens * numberOr(body.n, 1);
    rule.inFlight++;
    try {
      let ok: boolean;
      try {
        ok = await this.deps.budget.reserve(rule.id, reserved, rule.dailyTokenBudget);
      } catch (err) {
        // No budget store: no shadow (it is optional traffic; never unbounded).
        this.deps.logger.warn({ rule: rule.id, err: (err as Error).message }, 'shadow budget store unavailable; shadow skipped');
        ok = false;
      }
      if (!ok) return this.count(rule, 'budget_exhausted');
      const result = await this.call(rule, p, body, prompt);
      if (result === 'shed') {
        await this.deps.budget.adjust(rule.id, -reserved).catch(() => undefined);
        return this.count(rule, 'shed');
      }
      const used = (result.side.promptTokens ?? 0) + (result.side.completionTokens ?? 0);
      await this.deps.budget.adjust(rule.id, (result.error ? used : used || reserved) - reserved).catch(() => undefined);
      const similarity = result.error ? null : await this.similarity(p, result.text);
      const record: ShadowRecord = {
        id: `${p.requestId}:${rule.target}`,
        ts: Date.now(),
        alias: rule.alias,
        target: rule.target,
        outcome: result.error ? 'error' : 'ok',
        error: result.error ?? null,
        primary: {
          model: p.model,
          backend: p.backend,
          ttftMs: p.ttftMs === null ? null : round(p.ttftMs),
          latencyMs: round(p.latencyMs),
          promptTokens: p.usage?.promptTokens ?? null,
          completionTokens: p.usage?.completionTokens ?? null,
        },
        shadow: result.side,
        similarity,
      };
      this.deps.sink.write(record);
      this.count(rule, record.outcome);
    } finally {
      rule.inFlight--;
    }
  }

  /** Sends the shadow and consumes its stream; 'shed' when admission refused it. */
  private async call(
    rule: Rule,
    p: PrimaryResult,
    body: Record<string, unknown>,
    prompt: ReturnType<typeof analysePrompt>,
  ): Promise<'shed' | { side: ShadowSide; text: string; error?: string }> {
    const signal = AbortSignal.any([AbortSignal.timeout(rule.timeoutMs), this.closing.signal]);
    const deadline = new Date(Date.now() + rule.timeoutMs);
    const started = performance.now();
    const side: ShadowSide = {
      model: rule.to.model,
      backend: null,
      ttftMs: null,
      latencyMs: 0,
      promptTokens: null,
      completionTokens: null,
    };
    const chunks: string[] = [];
    let dispatch: UpstreamDispatch | undefined;
    const finish = (error?: string) => {
      side.latencyMs = round(performance.now() - started);
      return { side, text: completionText(chunks), error };
    };
    try {
      const req: DispatchRequest = {
        requestId: `${p.requestId}-shadow`,
        operation: p.operation,
        model: rule.to.model,
        body,
        deadline,
        lane: 'sheddable',
        promptTokens: prompt.promptTokens,
        prefixHashes: prompt.prefixHashes,
        signal,
      };
      const start = () => this.deps.nodes.dispatch(req);
      if (rule.to.local) {
        const admission = this.deps.admission;
        dispatch = await (admission
          ? admission.run(
              { lane: 'sheddable', tenant: `shadow:${rule.id}`, model: rule.to.model, deadline: deadline.getTime(), signal },
              start,
            )
          : start());
      } else {
        dispatch = await rule.to.provider.generate({
          requestId: req.requestId,
          operation: p.operation,
          model: rule.to.model,
          body,
          deadline,
          signal,
        });
      }
      side.backend = dispatch.backend;
      const d = dispatch;
      // A hung backend ends with the timeout, whatever the iterator does.
      const aborted = new Promise<never>((_, reject) => {
        const fail = () => reject(errors.timeout(`shadow timed out after ${rule.timeoutMs} ms`));
        if (signal.aborted) fail();
        else signal.addEventListener('abort', fail, { once: true });
      });
      aborted.catch(() => undefined);
      let ev: UpstreamDispatch['first'] | undefined = d.first;
      while (ev) {
        if (ev.event === 'chunkJson' && ev.chunkJson) {
          if (side.ttftMs === null && hasContent(ev.chunkJson)) side.ttftMs = round(performance.now() - started);
          chunks.push(ev.chunkJson);
        } else if (ev.event === 'responseJson' && ev.responseJson) {
          chunks.push(ev.responseJson);
        } else if (ev.event === 'error') {
          return finish(ev.error?.kind ?? 'upstream_error');
        } else if (ev.event === 'usage') {
          if (ev.usage) {
            side.promptTokens = ev.usage.promptTokens;
            side.completionTokens = ev.usage.completionTokens;
          }
          break;
        }
        const next: IteratorResult<UpstreamDispatch['first']> = await Promise.race([d.rest.next(), aborted]);
        ev = next.done ? undefined : next.value;
      }
      if (!ev) return finish('stream_ended_early');
      // The final event is in: let the call's status arrive rather than reset the stream.
      await Promise.race([drain(d.rest), aborted]).catch(() => undefined);
      return finish();
    } catch (err) {
      if (isAdmissionRefusal(err)) return 'shed';
      if (signal.aborted) return finish(this.closing.signal.aborted ? 'cancelled' : 'timeout');
      return finish(err instanceof ApiError ? (err.code ?? err.type) : 'upstream_error');
    } finally {
      dispatch?.cancel();
      // The shadow held a batch slot: let queued work in.
      if (rule.to.local) this.deps.admission?.pump();
    }
  }

  /** Cosine similarity of the two answers (router embedder); null without one or without text. */
  private async similarity(p: PrimaryResult, shadowText: string): Promise<number | null> {
    const model = this.embeddingModel;
    const primaryText = completionText(p.content ?? []);
    if (!model || !this.deps.embeddings || !primaryText || !shadowText) return null;
    try {
      const {
        embeddings: [a, b],
      } = await this.deps.embeddings.embed(model, [primaryText, shadowText], { truncate: true });
      return Math.round(cosine(a!, b!) * 1e4) / 1e4;
    } catch (err) {
      this.deps.logger.warn({ requestId: p.requestId, err: (err as Error).message }, 'shadow similarity not computed');
      return null;
    }
  }
}

function cosine(a: Float32Array, b: Float32Array): number {
  let dot = 0,
    na = 0,
    nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i]! * b[i]!;
    na += a[i]! * a[i]!;
    nb += b[i]! * b[i]!;
  }
  return na && nb ? dot / Math.sqrt(na * nb) : 0;
}

async function drain(it: AsyncIterator<unknown>): Promise<void> {
  for (let r = await it.next(); !r.done; r = await it.next()) {
    // nothing after the final event matters
  }
}

function hasContent(chunk: string): boolean {
  return completionText([chunk]).length > 0;
}

function numberOr(v: unknown, d: number): number {
  return typeof v === 'number' && Number.isFinite(v) && v > 0 ? v : d;
}

const round = (ms: number) => Math.round(ms * 10) / 10;
