// POST /v1/chat/completions and /v1/completions: validate, resolve the model, dispatch to the
// GPU pool, and answer as JSON or SSE. A client that goes away cancels the gRPC call (and with it
// the engine request); a stream that breaks after its first token ends with an error event.
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { ServerResponse } from 'node:http';
import type { z } from 'zod';
import { errors, ApiError, ClientCancelledError } from '../../common/errors.ts';
import type { GenerateEvent__Output } from '../../common/grpc.ts';
import type { Lane } from '../../common/contracts.ts';
import type { AdmissionController } from '../admission/controller.ts';
import { isAdmissionRefusal, type FallbackHook } from '../admission/fallback.ts';
import { LANE_HEADER, apiKeyOf, resolveLane, type LanePolicy } from '../admission/lanes.ts';
import { analysePrompt } from '../scheduling/prompt-prefix.ts';
import { chatCompletionBody, completionBody, parseBody } from './openai-schemas.ts';
import { RequestFields, requestFieldsConfigSchema } from './request-fields.ts';
import type { Operation } from '../../common/contracts.ts';
import type { DispatchRequest } from '../upstream/node-dispatch.ts';
import type { Upstream } from '../upstream/fallback-dispatch.ts';
import type { UpstreamDispatch } from '../upstream/providers/types.ts';
import type { ModelResolver } from '../models/model-resolver.ts';
import type { RouterMetrics } from '../metrics.ts';
import type { ResponseCache } from '../cache/index.ts';
import type { ShadowService } from '../shadow/index.ts';
import { requestOutcome, requestSettled, requestUsage } from '../request-context.ts';
import type { Execution, Idempotency } from '../idempotency/index.ts';
import { principalOf } from '../tenancy/enforcement.ts';
import { toApiError } from '../../common/http.ts';
import { isUsageOnlyChunk, omitDisallowedNulls, withNullUsage, writeWithBackpressure } from './recorded-response.ts';
import { logRequest, startServerSpan, finishServerSpan } from './request-log.ts';
import { context, failSpan, responseModel, setAttrs, trace, tracer, type Span } from '../../common/telemetry.ts';

export interface GenerationRoutesOptions {
  /** The GPU pool (NodeDispatcher), or the fallback chain in front of it. */
  dispatcher: Upstream;
  resolver: ModelResolver;
  requestTimeoutMs: number;
  defaultLane: Lane;
  lanePolicy: LanePolicy;
  /** Lane queues and shedding; without it every request goes straight to scheduling. */
  admission?: AdmissionController;
  fallback?: FallbackHook<UpstreamDispatch>;
  metrics?: RouterMetrics;
  /** `logging.logContent`: the request log line carries the prompt and completion. */
  logContent?: boolean;
  /** Response cache (router/cache/): looked up before admission, fed on success. */
  cache?: ResponseCache;
  /** Idempotency-Key (docs/idempotency-and-cache.md): the outermost check. */
  idempotency?: Idempotency;
  /** Shadow traffic (docs/shadow.md): sampled requests are mirrored once they completed. */
  shadow?: ShadowService;
  /** Allowed fields, engine extras, media URLs, context (docs/request-fields.md); absent = the defaults, context unknown. */
  fields?: RequestFields;
}

/**
 * How a request ended, for metrics and the log line: a client that left is `cancelled` (not a 4xx
 * of its own making), a lane that could not take it is `refused` (and no fallback served it).
 */
export type RequestOutcome = 'ok' | 'error' | 'refused' | 'cancelled';

/** What one request did, for metrics; filled in as the request goes. */
interface RequestRecord {
  outcome?: RequestOutcome;
  /** The client closed the connection before its answer was complete. */
  clientLeft?: boolean;
  model: string;
  lane: Lane;
  backend: string;
  status: number;
  firstTokenAt: number;
  usage: { promptTokens: number; completionTokens: number } | undefined;
  /** The model the backend says answered (first event), for traces. */
  responseModel?: string;
  /** Raw chunks/response, kept only when `logContent` is on. */
  content?: string[];
  /** The Idempotency-Key this request owns: it generates and records for repeats. */
  idem?: Execution;
  /** Answered from another request's generation (joined or replayed): nothing generated or charged here. */
  replayed?: boolean;
}

export const generationRoutes: FastifyPluginAsync<GenerationRoutesOptions> = async (app, opts) => {
  const fields =
    opts.fields ?? new RequestFields(requestFieldsConfigSchema.parse({}), () => ({ engineKinds: new Set(), maxContext: undefined }));
  const handle = (operation: Operation, schema: z.ZodType) => async (req: FastifyRequest, reply: FastifyReply) => {
    const started = performance.now();
    const rec: RequestRecord = {
      model: 'unknown',
      lane: opts.defaultLane,
      backend: 'none',
      status: 200,
      firstTokenAt: 0,
      usage: undefined,
      content: opts.logContent || opts.shadow?.sampled((req.body as { model?: unknown } | undefined)?.model, req.id) ? [] : undefined,
    };
    const span = startServerSpan(req, operation === 'CHAT_COMPLETIONS' ? 'chat' : 'text_completion');
    // Accounting charges once the generation ended, which can be after its client left (idempotency).
    let settled = () => undefined as void;
    if (opts.idempotency) requestSettled.set(req, new Promise<void>((resolve) => (settled = resolve)));
    let failure: unknown;
    try {
      return await context.with(trace.setSpan(context.active(), span), () => serve(operation, schema, req, reply, rec));
    } catch (err) {
      rec.status = toApiError(err).status;
      failure = err;
      throw err;
    } finally {
      rec.outcome = outcomeOf(failure, rec);
      rec.idem?.settle(failure);
      if (rec.usage) requestUsage.set(req, rec.usage);
      if (!rec.replayed)
        requestOutcome.set(req, {
          model: rec.model,
          backend: String(reply.getHeader('x-backend') ?? rec.backend),
          lane: rec.lane,
          status: rec.status,
          ttftMs: rec.firstTokenAt ? rec.firstTokenAt - started : null,
        });
      if (opts.metrics) record(opts.metrics, operation, rec, started);
      finishServerSpan(span, rec);
      logRequest(req, span, rec, started, opts.logContent === true);
      settled();
      // The user's answer is out: the shadow (if sampled) starts later, never touching this request. Replays and cache hits generated nothing to compare.
      if (!rec.replayed && rec.backend !== 'cache')
        opts.shadow?.mirror({
          requestId: req.id,
          operation,
          body: req.body as Record<string, unknown>,
          model: rec.model,
          backend: String(reply.getHeader('x-backend') ?? rec.backend),
          status: rec.status,
          latencyMs: performance.now() - started,
          ttftMs: rec.firstTokenAt ? rec.firstTokenAt - started : null,
          usage: rec.usage,
          content: rec.content,
          caller: principalOf(req),
          dataMayLeave: principalOf(req)?.policy.allowHostedFallback,
        });
    }
  };

  const serve = async (operation: Operation, schema: z.ZodType, req: FastifyRequest, reply: FastifyReply, rec: RequestRecord) => {
    const body = parseBody(schema, req.body) as Record<string, unknown> & {
      model: string;
      stream?: boolean | null;
      stream_options?: { include_usage?: boolean } | null;
    };
    // Outermost: a repeat of an Idempotency-Key is answered from the first request's generation.
    const idem = await opts.idempotency?.begin(req, reply, {
      route: operation,
      stream: body.stream === true,
      includeUsage: body.stream === true && body.stream_options?.include_usage === true,
      object: operation === 'CHAT_COMPLETIONS' ? 'chat.completion' : 'text_completion',
    });
    if (idem === 'served') {
      rec.replayed = true;
      // Zero usage: the limits hook refunds its TPM estimate; no usage record is written (no outcome).
      rec.usage = { promptTokens: 0, completionTokens: 0 };
      return reply;
    }
    rec.idem = idem;
    const model = opts.resolver.resolve(body.model, principalOf(req)?.keyId ?? apiKeyOf(req.headers.authorization));
    rec.model = model;
    // Before any cache, queue or engine: unknown fields, extras, media URLs, the model's context.
    const prompt = analysePrompt(body);
    fields.check(operation, body, model, prompt.promptTokens);
    const stream = body.stream === true;
    const wantsUsage = stream && body.stream_options?.include_usage === true;
    const laneHeader = req.headers[LANE_HEADER];
    const apiKey = apiKeyOf(req.headers.authorization);
    const { lane } = resolveLane(
      typeof laneHeader === 'string' ? laneHeader.trim().toLowerCase() : undefined,
      principalOf(req),
      opts.lanePolicy,
      opts.defaultLane,
      principalOf(req)?.policy.maxLane,
    );
    reply.header(LANE_HEADER, lane);
    rec.lane = lane;
    // A cache hit is answered here: no queue slot, no engine call, zero usage charged (docs/idempotency-and-cache.md).
    const cached = await opts.cache?.begin(req, reply, {
      operation,
      body,
      requestedModel: body.model,
      model,
      stream,
      includeUsage: wantsUsage,
    });
    if (cached?.served) {
      rec.backend = 'cache';
      rec.usage = { promptTokens: 0, completionTokens: 0 };
      // Repeats of this request's Idempotency-Key get the same cached answer.
      if (cached.record) rec.idem?.adopt(cached.record);
      return reply;
    }

    const clientGone = new AbortController();
    // 'close' on the raw response fires on completion too; only an unfinished response is an abort.
    reply.raw.on('close', () => {
      if (reply.raw.writableFinished) return;
      rec.clientLeft = true;
      // An idempotent generation outlives its client for the disconnect grace: a repeat resumes it.
      if (rec.idem) rec.idem.clientLost(() => clientGone.abort());
      else clientGone.abort();
    });

    const deadline = Date.now() + opts.requestTimeoutMs;
    const dispatchReq: DispatchRequest = {
      requestId: req.id,
      operation,
      model,
      body: { ...body, model },
      deadline: new Date(deadline),
      lane,
      promptTokens: prompt.promptTokens,
      prefixHashes: prompt.prefixHashes,
      traceparent: typeof req.headers.traceparent === 'string' ? req.headers.traceparent : undefined,
      signal: clientGone.signal,
      caller: principalOf(req),
      dataMayLeave: principalOf(req)?.policy.allowHostedFallback,
    };
    // Queued requests start from the admission pump: keep them in this request's trace.
    const reqCtx = context.active();
    let admissionSpan: Span | undefined;
    const endAdmission = (outcome: string, err?: unknown) => {
      if (!admissionSpan) return;
      setAttrs(admissionSpan, {
        'icp.admission.outcome': outcome,
        'icp.admission.reason': (err as ApiError | undefined)?.code ?? undefined,
      });
      if (outcome === 'refused') failSpan(admissionSpan, err);
      admissionSpan.end();
      admissionSpan = undefined;
    };
    const start = () => {
      endAdmission('admitted');
      return context.with(reqCtx, () => opts.dispatcher.dispatch(dispatchReq));
    };
    let dispatch: UpstreamDispatch;
    if (!opts.admission) {
      dispatch = await start();
    } else {
      // `dispatch` rides along so the fallback hook can send the same request to a provider.
      // Fairness is per tenant when tenants exist (all of a tenant's keys share its turn), else per key.
      const admissionReq = {
        lane,
        tenant: principalOf(req)?.tenantId ?? apiKey ?? 'anonymous',
        model,
        deadline,
        signal: clientGone.signal,
        dispatch: dispatchReq,
      };
      admissionSpan = tracer.startSpan('admission', { attributes: { 'icp.lane': lane, 'gen_ai.request.model': model } });
      try {
        dispatch = await opts.admission.run(admissionReq, start);
      } catch (err) {
        endAdmission(isAdmissionRefusal(err) ? 'refused' : 'failed', err);
        const fallback = isAdmissionRefusal(err) ? opts.fallback?.take(admissionReq, err) : undefined;
        if (!fallback) throw err;
        dispatch = await fallback;
      }
    }
    // Whatever this request held on the node is freed when it ends: let queued work in.
    if (opts.admission) reply.raw.once('close', () => setImmediate(() => opts.admission!.pump()));
    reply.header('x-backend', dispatch.backend);
    rec.backend = dispatch.backend.slice(0, dispatch.backend.indexOf(':'));
    rec.responseModel = responseModel(dispatch.first.chunkJson || dispatch.first.responseJson);
    const active = trace.getActiveSpan();
    if (active) setAttrs(active, { 'icp.backend': dispatch.backend, 'icp.attempts': (dispatch as { attempts?: number }).attempts });

    if (!stream) {
      try {
        const ev = dispatch.first;
        if (ev.event !== 'responseJson') throw errors.upstream(`${dispatch.backend} answered a non-streaming request with a stream`);
        // What the client, the cache and idempotency repeats get: the body without nulls the spec does not allow.
        const body = ev.responseJson ? omitDisallowedNulls(ev.responseJson) : ev.responseJson;
        // Read to the final event: it carries the usage that settlement charges, and the call ends cleanly.
        for (let r = await dispatch.rest.next(); !r.done; r = await dispatch.rest.next()) {
          if (r.value.event === 'error') throw errors.upstream(`${dispatch.backend} failed: ${r.value.error?.message ?? 'unknown error'}`);
          if (r.value.event === 'usage' && r.value.usage) rec.usage = r.value.usage;
        }
        if (body) rec.content?.push(body);
        if (body && cached?.recorder) {
          cached.recorder.json(body);
          if (rec.usage) cached.recorder.usage(rec.usage);
          cached.commit();
        }
        if (rec.idem && body) {
          if (rec.usage) rec.idem.usage(rec.usage);
          rec.idem.json({ 'x-backend': dispatch.backend }, body);
        }
        reply.header('content-type', 'application/json');
        return reply.send(body);
      } finally {
        dispatch.cancel();
      }
    }

    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      'x-request-id': req.id,
      'x-backend': dispatch.backend,
      ...(cached ? { 'x-cache': cached.status } : {}),
    });
    rec.idem?.head(true, { 'x-backend': dispatch.backend });
    // A client that stops reading must not hold its response (our buffers, its lease, the
    // request's settlement) past the deadline: by then the upstream call has ended too. The grace
    // lets a client that still reads receive the timeout error event.
    const cutoff = setTimeout(
      () => {
        if (!res.writableFinished) res.destroy();
      },
      Math.max(0, deadline - Date.now()) + STALLED_READER_GRACE_MS,
    );
    res.once('close', () => clearTimeout(cutoff));
    let completed = false;
    let streamed = 0;
    try {
      let ev: GenerateEvent__Output | undefined = dispatch.first;
      while (ev) {
        if (clientGone.signal.aborted) return;
        if (ev.event === 'chunkJson' && ev.chunkJson) {
          if (rec.firstTokenAt === 0) rec.firstTokenAt = performance.now();
          streamed++;
          rec.content?.push(ev.chunkJson);
          cached?.recorder?.frame(ev.chunkJson);
          // include_usage: every chunk before the usage-only one says `"usage": null`, as OpenAI's do.
          const chunk = wantsUsage ? withNullUsage(ev.chunkJson) : ev.chunkJson;
          const frame = rec.idem ? rec.idem.sse(chunk) : `data: ${chunk}\n\n`;
          if (wantsUsage || !isUsageOnlyChunk(ev.chunkJson)) await writeWithBackpressure(res, frame);
        } else if (ev.event === 'error' && ev.error) {
          writeStreamError(res, errors.upstream(`${dispatch.backend} failed mid-stream: ${ev.error.message}`, 'stream_interrupted'));
          return;
        } else if (ev.event === 'usage') {
          if (ev.usage) rec.usage = ev.usage;
          if (ev.usage) rec.idem?.usage(ev.usage);
          res.end(rec.idem ? rec.idem.finishStream() : 'data: [DONE]\n\n');
          completed = true;
          if (ev.usage) cached?.recorder?.usage(ev.usage);
          cached?.commit();
          return;
        }
        const next: IteratorResult<GenerateEvent__Output> = await dispatch.rest.next();
        ev = next.done ? undefined : next.value;
      }
      // The call ended without its final event: never leave the client hanging.
      writeStreamError(res, errors.upstream(`${dispatch.backend} ended the stream early`, 'stream_interrupted'));
    } catch (err) {
      if (!clientGone.signal.aborted) {
        writeStreamError(
          res,
          err instanceof ApiError
            ? err
            : errors.upstream(`${dispatch.backend} failed mid-stream: ${(err as Error).message}`, 'stream_interrupted'),
        );
      }
    } finally {
      // A completed call's status follows its final event: let it arrive (in the background, so
      // the request's end is not delayed) rather than cancel, which would reset the stream; Node's
      // HTTP/2 rapid-reset guard closes a channel that sees one reset per request.
      if (completed) void readToEnd(dispatch.rest, 1_000).finally(() => dispatch.cancel());
      else dispatch.cancel();
      // Cancelled before the final usage event: charge an estimate (prompt estimate, a token per chunk sent) rather than nothing.
      if (!rec.usage && streamed > 0) rec.usage = { promptTokens: prompt.promptTokens, completionTokens: streamed };
      if (!res.writableEnded) res.end();
    }
  };

  app.post('/v1/chat/completions', handle('CHAT_COMPLETIONS', chatCompletionBody));
  app.post('/v1/completions', handle('COMPLETIONS', completionBody));
};

function outcomeOf(failure: unknown, rec: RequestRecord): RequestOutcome {
  if (failure instanceof ClientCancelledError || rec.clientLeft) return 'cancelled';
  if (isAdmissionRefusal(failure)) return 'refused';
  return failure !== undefined || rec.status >= 400 ? 'error' : 'ok';
}

function record(m: RouterMetrics, operation: Operation, rec: RequestRecord, started: number): void {
  const now = performance.now();
  const op = operation === 'CHAT_COMPLETIONS' ? 'chat' : 'text_completion';
  m.requests.inc({
    operation: op,
    model: rec.model,
    lane: rec.lane,
    backend: rec.backend,
    status: String(rec.status),
    outcome: rec.outcome ?? 'ok',
  });
  if (rec.outcome === 'cancelled') return;
  if (rec.status >= 400) return;
  m.duration.observe({ operation: op, model: rec.model, lane: rec.lane }, (now - started) / 1000);
  if (rec.firstTokenAt) m.ttft.observe({ model: rec.model, lane: rec.lane }, (rec.firstTokenAt - started) / 1000);
  if (rec.usage) {
    m.tokens.inc({ model: rec.model, type: 'input' }, rec.usage.promptTokens);
    m.tokens.inc({ model: rec.model, type: 'output' }, rec.usage.completionTokens);
    if (rec.firstTokenAt && rec.usage.completionTokens > 1)
      m.tpot.observe({ model: rec.model }, (now - rec.firstTokenAt) / 1000 / (rec.usage.completionTokens - 1));
  }
}

async function readToEnd(it: AsyncIterator<unknown>, boundMs: number): Promise<void> {
  const drain = (async () => {
    try {
      for (let r = await it.next(); !r.done; r = await it.next()) {
        // nothing after the final event matters
      }
    } catch {
      // the call failed after its final event: nothing left to tell the client
    }
  })();
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([drain, new Promise<void>((resolve) => (timer = setTimeout(resolve, boundMs)))]);
  clearTimeout(timer);
}

function writeStreamError(res: ServerResponse, err: ApiError): void {
  if (res.writableEnded) return;
  res.write(`data: ${JSON.stringify(err.toBody())}\n\n`);
  res.end();
}

/** How long past its deadline a stream may wait for a client that is not reading. */
const STALLED_READER_GRACE_MS = 1_000;
