// The response cache in front of admission (docs/idempotency-and-cache.md): an exact cache keyed by
// tenant + served model + the normalised request, and an optional semantic cache over the last
// user message. A hit is answered here, before any queue slot or engine call; a miss hands the
// generation route a recorder whose complete, successful response is stored afterwards.
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Counter } from 'prom-client';
import type { Logger } from '../../common/logger.ts';
import type { Operation } from '../../common/contracts.ts';
import type { EmbeddingService } from '../embed/service.ts';
import { ResponseRecorder, canReplay, recordSize, replay, type RecordedResponse } from '../http/recorded-response.ts';
import { principalOf } from '../tenancy/enforcement.ts';
import type { CacheConfig } from './config.ts';
import { cacheControl, eligibility, exactKey, semanticParts, sha256, type Body, type Scope } from './key.ts';
import { SemanticIndex } from './semantic-index.ts';
import { MemoryResponseStore, RedisResponseStore, type ResponseStore } from './store.ts';
import { own } from '../../common/own.ts';

export { cacheConfigSchema, type CacheConfig } from './config.ts';

export const CACHE_HEADER = 'x-cache';
export type CacheStatus = 'hit' | 'semantic-hit' | 'miss';

export interface CacheMetrics {
  cacheLookups: Counter<'model' | 'result'>;
  cacheSavedTokens: Counter<'model' | 'type'>;
  cacheStores: Counter<'result'>;
}

export interface CacheRequest {
  operation: Operation;
  body: Body;
  /** The model name the client sent (per-alias switches). */
  requestedModel: string;
  /** The served model (after alias, split and budget downgrade). */
  model: string;
  stream: boolean;
  includeUsage: boolean;
}

/** One request's dealings with the cache. */
export interface CacheTurn {
  status: CacheStatus;
  /** The response was served from the cache: the route must not dispatch. */
  served: boolean;
  /** On a miss that may be stored: feed it what is sent (JSON body, or every SSE chunk, and usage). */
  recorder?: ResponseRecorder;
  /** The response completed successfully: store what the recorder holds (in the background). */
  commit(): void;
  /** On a hit: the answer served (idempotency records it for repeats of the request's key). */
  record?: RecordedResponse;
}

const NOOP = () => undefined;

export class ResponseCache {
  private readonly index: SemanticIndex | undefined;

  private constructor(
    private readonly cfg: CacheConfig,
    readonly store: ResponseStore,
    private readonly embeddings: EmbeddingService | undefined,
    private readonly metrics: CacheMetrics,
    private readonly logger: Logger,
  ) {
    this.index = embeddings ? new SemanticIndex(cfg.semantic.maxEntries, cfg.semantic.maxPerScope) : undefined;
  }

  static async create(
    cfg: CacheConfig,
    opts: { redisUrl?: string; embeddings?: EmbeddingService; metrics: CacheMetrics; logger: Logger },
  ): Promise<ResponseCache> {
    let embeddings: EmbeddingService | undefined;
    if (cfg.semantic.enabled) {
      if (!opts.embeddings?.hasModel(cfg.semantic.model) || opts.embeddings.modelInfo(cfg.semantic.model).kind !== 'embedding') {
        throw new Error(`router.cache.semantic.model '${cfg.semantic.model}' is not an embedding model in router.embeddings`);
      }
      embeddings = opts.embeddings;
    }
    let store: ResponseStore;
    const url = cfg.redisUrl ?? opts.redisUrl;
    if (url) {
      const redis = new RedisResponseStore(url, cfg.commandTimeoutMs);
      // Not reachable yet: every lookup is a miss until it is.
      await redis.ready(3_000).catch(() => opts.logger.warn('Redis not reachable at start; the response cache misses until it is'));
      store = redis;
    } else {
      store = new MemoryResponseStore(cfg.maxBytes);
    }
    return new ResponseCache(cfg, store, embeddings, opts.metrics, opts.logger);
  }

  /**
   * Looks the request up (unless `Cache-Control: no-cache`) and serves a hit on `reply`; else
   * returns how to record the answer. Undefined when the cache is off for this request's alias
   * or tenant (no `x-cache` header then).
   */
  async begin(req: FastifyRequest, reply: FastifyReply, r: CacheRequest): Promise<CacheTurn | undefined> {
    const policy = principalOf(req)?.policy.cache;
    const alias = own(this.cfg.aliases, r.requestedModel) ?? own(this.cfg.aliases, r.model);
    if (!this.cfg.enabled || policy?.enabled === false) return undefined;
    const exactOn = this.cfg.exact.enabled && alias?.exact !== false;
    const semanticOn = this.index !== undefined && alias?.semantic !== false && policy?.semantic !== false;
    if (!exactOn && !semanticOn) return undefined;

    reply.header(CACHE_HEADER, 'miss');
    const miss: CacheTurn = { status: 'miss', served: false, commit: NOOP };
    const elig = eligibility(r.body, { tools: policy?.allowTools === true, nonDeterministic: policy?.allowNonDeterministic === true });
    if (!elig.ok) {
      this.metrics.cacheLookups.inc({ model: r.model, result: elig.reason! });
      return miss;
    }
    const cc = cacheControl(req.headers['cache-control']);
    const scope: Scope = { tenant: tenantOf(req), model: r.model, operation: r.operation };
    const key = exactKey(scope, r.body);
    const ttlMs =
      1_000 *
      Math.min(
        alias?.ttlSeconds ?? Infinity,
        policy?.ttlSeconds ?? Infinity,
        Math.max(exactOn ? this.cfg.exact.ttlSeconds : 0, semanticOn ? this.cfg.semantic.ttlSeconds : 0),
      );
    const parts = semanticOn ? semanticParts(scope, r.body) : undefined;
    const usable = parts !== undefined && parts.text.length <= this.cfg.semantic.maxChars;
    let vector: Float32Array | undefined;

    if (!cc.noCache) {
      if (exactOn) {
        const rec = await this.get(key);
        if (rec && canReplay(rec, r.stream)) return this.serve(reply, rec, 'hit', r);
      }
      if (semanticOn && usable) {
        vector = await this.embed(parts.text);
        for (const m of vector ? this.index!.search(parts.scopeKey, vector, this.cfg.semantic.threshold) : []) {
          const rec = await this.get(m.key);
          if (rec && canReplay(rec, r.stream)) return this.serve(reply, rec, 'semantic-hit', r);
        }
      }
    }
    this.metrics.cacheLookups.inc({ model: r.model, result: cc.noCache ? 'no_cache' : 'miss' });
    if (cc.noStore) return miss;

    const recorder = new ResponseRecorder(r.operation === 'CHAT_COMPLETIONS' ? 'chat.completion' : 'text_completion');
    let committed = false;
    return {
      status: 'miss',
      served: false,
      recorder,
      commit: () => {
        if (committed) return;
        committed = true;
        void this.put(
          key,
          recorder.finish(),
          ttlMs,
          semanticOn && usable ? { scope: parts.scopeKey, text: parts.text, vector } : undefined,
        );
      },
    };
  }

  async close(): Promise<void> {
    await this.store.close();
  }

  private serve(reply: FastifyReply, rec: RecordedResponse, status: 'hit' | 'semantic-hit', r: CacheRequest): CacheTurn {
    this.metrics.cacheLookups.inc({ model: r.model, result: status === 'hit' ? 'hit' : 'semantic_hit' });
    if (rec.usage) {
      this.metrics.cacheSavedTokens.inc({ model: r.model, type: 'input' }, rec.usage.promptTokens);
      this.metrics.cacheSavedTokens.inc({ model: r.model, type: 'output' }, rec.usage.completionTokens);
    }
    // x-backend names who answered: the cache (usage records and metrics then say backend=cache).
    const headers = { [CACHE_HEADER]: status, 'x-backend': 'cache' };
    reply.headers(headers);
    replay(reply, rec, { stream: r.stream, includeUsage: r.includeUsage, headers }).catch((err: Error) => {
      this.logger.warn({ err: err.message }, 'cached response replay failed');
      if (!reply.raw.writableEnded) reply.raw.destroy();
    });
    return { status, served: true, commit: NOOP, record: rec };
  }

  private async get(key: string): Promise<RecordedResponse | undefined> {
    try {
      return await this.store.get(key);
    } catch (err) {
      this.logger.warn({ err: (err as Error).message }, 'response cache lookup failed');
      return undefined;
    }
  }

  private async embed(text: string): Promise<Float32Array | undefined> {
    try {
      return (await this.embeddings!.embed(this.cfg.semantic.model, [text], { inputType: 'query', truncate: true })).embeddings[0];
    } catch (err) {
      // Embedder saturated or failing: no semantic lookup, never a failed request.
      this.logger.warn({ err: (err as Error).message }, 'semantic cache embedding failed');
      return undefined;
    }
  }

  private async put(
    key: string,
    rec: RecordedResponse,
    ttlMs: number,
    semantic: { scope: string; text: string; vector: Float32Array | undefined } | undefined,
  ): Promise<void> {
    if (recordSize(rec) > this.cfg.maxEntryBytes) {
      this.metrics.cacheStores.inc({ result: 'too_large' });
      return;
    }
    try {
      await this.store.set(key, rec, ttlMs);
      this.metrics.cacheStores.inc({ result: 'stored' });
    } catch (err) {
      this.metrics.cacheStores.inc({ result: 'failed' });
      this.logger.warn({ err: (err as Error).message }, 'response cache store failed');
      return;
    }
    if (semantic) {
      const vector = semantic.vector ?? (await this.embed(semantic.text));
      if (vector) this.index!.add(semantic.scope, vector, key, Math.min(ttlMs, this.cfg.semantic.ttlSeconds * 1_000));
    }
  }
}

/** Whose cache a request reads: its tenant, else (tenancy off) its API key's hash, else everyone's. */
function tenantOf(req: FastifyRequest): string {
  const p = principalOf(req);
  if (p) return `t:${p.tenantId}`;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
  return m ? `k:${sha256(m[1]!)}` : 'anonymous';
}
