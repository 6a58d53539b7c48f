// Idempotency keys for the generation routes (docs/idempotency-and-cache.md). A request with an
// `Idempotency-Key` is executed at most once per tenant and key: the first one owns the key and
// generates, writing every frame of its answer to a feed; a repeat while it runs follows that feed
// (here, or from another replica through the store); a repeat after it finished gets the stored
// answer; a repeat with another body gets 409. Only complete answers are stored: a failed attempt
// releases the key. A client that goes away does not cancel the generation until the disconnect
// grace has passed with nobody following it, so a repeat (with Last-Event-ID) can resume it.
import { randomUUID } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Counter } from 'prom-client';
import type { RouterProcessConfig } from '../config.ts';
import { ApiError, errors, isOpenAIErrorBody } from '../../common/errors.ts';
import { toApiError } from '../../common/http.ts';
import { requestedModel } from '../request-context.ts';
import type { Logger } from '../../common/logger.ts';
import {
  ResponseRecorder,
  isUsageOnlyChunk,
  recordSize,
  replay,
  toBody,
  toFrames,
  writeWithBackpressure,
  type RecordedResponse,
  type Usage,
} from '../http/recorded-response.ts';
import type { IdempotencyConfig } from './config.ts';
import { Feed, type LiveFrame } from './feed.ts';
import { NOT_STORED_HEADER, REPLAYED_HEADER, bodyHash, idempotencyKeyOf, recordId, scopeOf } from './key.ts';
import { MemoryIdempotencyStore } from './memory-store.ts';
import { RedisIdempotencyStore } from './redis-store.ts';
import type { EvictionReason, IdempotencyStore } from './store.ts';

export type IdempotentOutcome = 'executed' | 'taken_over' | 'joined' | 'replayed' | 'conflict';

export interface RequestShape {
  /** The route (operation), part of the body hash. */
  route: string;
  stream: boolean;
  includeUsage: boolean;
  object: RecordedResponse['object'];
}

export class Idempotency {
  /** Feeds of the attempts this process owns, for followers in this process. */
  private readonly local = new Map<string, Feed>();

  constructor(
    readonly store: IdempotencyStore,
    readonly cfg: IdempotencyConfig,
    private readonly logger: Logger,
    private readonly counter?: Counter<'outcome'>,
    private readonly evictions?: Counter<'reason'>,
  ) {}

  count(outcome: IdempotentOutcome): void {
    this.counter?.inc({ outcome });
  }

  /** An answer over `maxEntryBytes` is served but not stored: said in a header (JSON answers) and a log line. */
  tooLarge(bytes: number): boolean {
    return bytes > this.store.maxEntryBytes;
  }

  notStored(bytes: number): void {
    this.evictions?.inc({ reason: 'too_large' });
    this.logger.warn({ bytes, maxEntryBytes: this.store.maxEntryBytes }, 'idempotent answer too large to store; a repeat runs again');
  }

  warn(msg: string, err: Error): void {
    this.logger.warn({ err: err.message }, msg);
  }

  /**
   * The outermost step of a generation request. undefined: no key, serve as usual; 'served': the
   * answer was written from another attempt (joined or replayed, nothing generated or charged);
   * an Execution: this request owns the key and must report what it writes.
   */
  async begin(req: FastifyRequest, reply: FastifyReply, shape: RequestShape): Promise<Execution | 'served' | undefined> {
    const key = idempotencyKeyOf(req);
    if (key === undefined) return undefined;
    const scope = scopeOf(req);
    const id = recordId(scope, key);
    // What the client sent: a budget downgrade may have rewritten `model` since (docs/idempotency-and-cache.md).
    const sent =
      requestedModel.has(req) && req.body !== null && typeof req.body === 'object'
        ? { ...(req.body as Record<string, unknown>), model: requestedModel.get(req) }
        : req.body;
    const hash = bodyHash(shape.route, sent);
    const lastEventId = lastEventIdOf(req);
    for (let tries = 0; tries < 5; tries++) {
      const claim = await this.store.claim(id, hash, randomUUID(), scope).catch((err: Error) => {
        this.logger.warn({ err: err.message }, 'idempotency store unavailable');
        // The client asked for at-most-once: without the store that cannot be promised.
        throw errors.overloaded('Idempotency keys cannot be checked right now; retry shortly.', 1, 'idempotency_unavailable');
      });
      if (claim.kind === 'conflict') {
        this.count('conflict');
        throw new ApiError(
          409,
          'This Idempotency-Key was already used with a different request body. Use a new key for a new request.',
          'invalid_request_error',
          'idempotency_key_reused',
          'Idempotency-Key',
        );
      }
      if (claim.kind === 'done') {
        this.count('replayed');
        await replay(reply, claim.record, {
          stream: shape.stream,
          includeUsage: shape.includeUsage,
          headers: { [REPLAYED_HEADER]: 'true' },
          fromFrame: shape.stream ? (lastEventId ?? 0) : undefined,
        });
        return 'served';
      }
      if (claim.kind === 'owner') {
        this.count(claim.takenOver ? 'taken_over' : 'executed');
        const feed = new Feed();
        const localKey = `${id}:${claim.attempt}`;
        this.local.set(localKey, feed);
        return new Execution(this, id, claim.attempt, feed, shape, () => this.local.delete(localKey), reply);
      }
      const feed = this.local.get(`${id}:${claim.attempt}`) ?? this.store.follow(id, claim.attempt);
      if (feed && (await this.follow(reply, id, feed, shape, lastEventId)) === 'served') {
        this.count('joined');
        return 'served';
      }
      // The owner went away before answering: claim again (its lease expires, or it released the key).
      await new Promise((r) => setTimeout(r, Math.min(1_000, this.cfg.leaseMs / 4) * (tries + 1)));
    }
    throw errors.overloaded('The request holding this Idempotency-Key did not finish; retry shortly.', 1, 'idempotency_key_in_use');
  }

  /** Serves a running attempt's frames as they come; 'lost' when its owner went away before answering. */
  private async follow(
    reply: FastifyReply,
    id: string,
    feed: Feed,
    shape: RequestShape,
    lastEventId: number | undefined,
  ): Promise<'served' | 'lost'> {
    const gone = new AbortController();
    reply.raw.on('close', () => {
      if (!reply.raw.writableFinished) gone.abort();
    });
    // While someone follows, the owner keeps generating even if its own client left.
    const touch = () => void this.store.watch(id, Date.now() + this.cfg.disconnectGraceMs).catch(() => undefined);
    touch();
    const toucher = setInterval(touch, 1_000);
    const res = reply.raw;
    let streaming = false;
    let headers: Record<string, string> = {};
    let body: string | undefined;
    let n = 0;
    try {
      for await (const f of feed.read(gone.signal)) {
        if (f.t === 'h') {
          headers = { ...f.headers, [REPLAYED_HEADER]: 'true' };
          if (!shape.stream) continue;
          reply.hijack();
          res.writeHead(f.status, {
            ...(reply.getHeaders() as Record<string, string>),
            ...headers,
            'content-type': 'text/event-stream; charset=utf-8',
            'cache-control': 'no-cache',
            connection: 'keep-alive',
          });
          streaming = true;
        } else if (f.t === 'd') {
          n++;
          if (!streaming || (lastEventId !== undefined && n <= lastEventId) || (!shape.includeUsage && isUsageOnlyChunk(f.d))) continue;
          await writeWithBackpressure(res, sseFrame(n, f.d));
        } else if (f.t === 'j') {
          body = f.body;
        } else if (f.t === 'x') {
          if (streaming) res.end('data: [DONE]\n\n');
          else await reply.code(200).headers(headers).header('content-type', 'application/json').send(body);
          return 'served';
        } else if (f.t === 'e') {
          if (!streaming) throw errorFromBody(f.status, f.body);
          res.end(`data: ${f.body}\n\n`);
          return 'served';
        } else {
          if (!streaming) return 'lost';
          res.end(
            `data: ${JSON.stringify(errors.upstream('The generation this request followed was interrupted.', 'stream_interrupted').toBody())}\n\n`,
          );
          return 'served';
        }
      }
      // Our own client left: nothing more to write.
      if (!streaming) reply.hijack();
      if (!res.writableEnded) res.end();
      return 'served';
    } finally {
      clearInterval(toucher);
    }
  }

  async close(): Promise<void> {
    await this.store.close();
  }
}

/** What the owner of a key reports while it serves: every frame, so followers see the same. */
export class Execution {
  private readonly recorder: ResponseRecorder;
  private frames = 0;
  private completed = false;
  private settled = false;
  private headSent = false;
  private cancelled = false;
  private readonly renewer: NodeJS.Timeout;
  private lostTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly idem: Idempotency,
    private readonly id: string,
    private readonly attempt: string,
    private readonly feed: Feed,
    private readonly shape: RequestShape,
    private readonly forget: () => void,
    private readonly reply?: FastifyReply,
  ) {
    this.recorder = new ResponseRecorder(shape.object);
    this.renewer = setInterval(
      () => {
        this.idem.store.renew(id, attempt).catch(() => undefined);
      },
      Math.max(100, Math.floor(idem.cfg.leaseMs / 3)),
    );
  }

  private push(f: LiveFrame): void {
    this.feed.push(f);
    this.idem.store.append(this.id, this.attempt, f);
  }

  /** The answer starts; `headers` are the ones worth replaying (x-backend). */
  head(stream: boolean, headers: Record<string, string>): void {
    for (const [k, v] of Object.entries(headers)) this.recorder.header(k, v);
    this.headSent = true;
    this.push({ t: 'h', stream, status: 200, headers });
  }

  /** Records one chunk and returns its SSE frame, with an `id:` a repeat can resume after. */
  sse(data: string): string {
    this.frames++;
    this.recorder.frame(data);
    this.push({ t: 'd', d: data });
    return sseFrame(this.frames, data);
  }

  usage(u: Usage): void {
    this.recorder.usage(u);
  }

  /** The stream completed: stores it and returns the closing frame. */
  finishStream(): string {
    this.complete();
    return 'data: [DONE]\n\n';
  }

  /** A non-streaming answer, complete. */
  json(headers: Record<string, string>, body: string): void {
    this.head(false, headers);
    this.recorder.json(body);
    this.push({ t: 'j', body });
    const record = this.recorder.finish(200);
    // The headers are still unsent here (the handler sends the body next): say it was not stored.
    if (this.idem.tooLarge(recordSize(record)) && this.reply && !this.reply.raw.headersSent)
      this.reply.header(NOT_STORED_HEADER, 'too_large');
    this.complete(record);
  }

  /** This request was answered with an existing record (a cache hit): repeats get the same. */
  adopt(record: RecordedResponse): void {
    const headers = record.headers;
    const body = this.shape.stream ? undefined : toBody(record);
    const frames = this.shape.stream ? toFrames(record) : undefined;
    if (body === undefined && frames === undefined) return;
    this.head(this.shape.stream, headers);
    if (body !== undefined) this.push({ t: 'j', body });
    for (const f of frames ?? []) this.push({ t: 'd', d: f });
    this.complete(record);
  }

  private complete(record = this.recorder.finish(200)): void {
    if (this.completed) return;
    this.completed = true;
    this.stopTimers();
    this.feed.push({ t: 'x' });
    const bytes = recordSize(record);
    this.idem.store
      .complete(this.id, this.attempt, record)
      .then((kept) => {
        if (!kept && this.idem.tooLarge(bytes)) this.idem.notStored(bytes);
      })
      .catch((err: Error) => this.idem.warn('idempotent answer not stored', err))
      .finally(this.forget);
  }

  /**
   * The owner's client went away: keep generating for the grace period, and for as long as a
   * repeat follows; then `cancel` (the generation stops and the key is released).
   */
  clientLost(cancel: () => void): void {
    if (this.completed || this.settled) return;
    const grace = this.idem.cfg.disconnectGraceMs;
    const until = Date.now() + grace;
    const check = async () => {
      if (this.completed || this.settled) return this.stopTimers();
      const watched = await this.idem.store.watchedUntil(this.id).catch(() => 0);
      if (Date.now() < Math.max(until, watched) || this.completed) return;
      this.stopTimers();
      this.cancelled = true;
      cancel();
    };
    if (grace === 0) {
      this.cancelled = true;
      cancel();
      return;
    }
    this.lostTimer = setInterval(() => void check(), Math.min(1_000, grace));
  }

  /** The request ended (always called): an incomplete answer releases the key. */
  settle(err?: unknown): void {
    if (this.settled) return;
    this.settled = true;
    this.stopTimers();
    if (this.completed) return;
    let last: LiveFrame;
    if (this.cancelled) last = { t: 'lost' };
    else if (!this.headSent && err !== undefined) {
      const e = toApiError(err);
      last = { t: 'e', status: e.status, body: JSON.stringify(e.toBody()) };
    } else
      last = {
        t: 'e',
        status: 502,
        body: JSON.stringify(errors.upstream('The generation this request joined failed.', 'stream_interrupted').toBody()),
      };
    this.feed.push(last);
    this.idem.store
      .release(this.id, this.attempt, last)
      .catch(() => undefined)
      .finally(this.forget);
  }

  private stopTimers(): void {
    clearInterval(this.renewer);
    if (this.lostTimer) clearInterval(this.lostTimer);
  }
}

export function sseFrame(id: number, data: string): string {
  return `id: ${id}\ndata: ${data}\n\n`;
}

function lastEventIdOf(req: FastifyRequest): number | undefined {
  const raw = req.headers['last-event-id'];
  const n = typeof raw === 'string' ? Number(raw.trim()) : NaN;
  return Number.isInteger(n) && n >= 0 ? n : undefined;
}

function errorFromBody(status: number, body: string): ApiError {
  try {
    const b = JSON.parse(body) as unknown;
    if (isOpenAIErrorBody(b)) return new ApiError(status, b.error.message, b.error.type, b.error.code, b.error.param);
  } catch {
    // fall through
  }
  return errors.upstream('The request this one joined failed.');
}

/** The router's idempotency, from config: Redis when one is configured (common/infrastructure.ts). */
export async function createIdempotency(
  config: RouterProcessConfig,
  logger: Logger,
  counter?: Counter<'outcome'>,
  evictions?: Counter<'reason'>,
): Promise<Idempotency | undefined> {
  const cfg = config.router.idempotency;
  if (!cfg.enabled) return undefined;
  const redisUrl = config.redis.idempotency;
  let store: IdempotencyStore;
  if (redisUrl) {
    const redis = new RedisIdempotencyStore(redisUrl, {
      ...cfg,
      commandTimeoutMs: config.router.auth.commandTimeoutMs,
      onError: (err) => logger.warn({ err: err.message }, 'idempotency store error'),
    });
    await redis.ready().catch(() => logger.warn('Redis not reachable at start; idempotent requests get 503 until it is'));
    store = redis;
  } else {
    store = new MemoryIdempotencyStore({ ...cfg, onEvict: (reason: EvictionReason) => evictions?.inc({ reason }) });
  }
  return new Idempotency(store, cfg, logger, counter, evictions);
}
