// Dispatches one generation to the GPU pool: schedule, call Generate, and wait for the first
// event. A failure before the first token goes to another node (up to `maxAttempts`); after
// that the caller owns the stream. Nothing here touches HTTP.
import type { Caller } from '../admission/lanes.ts';
import { grpc, type GenerateEvent__Output } from '../../common/grpc.ts';
import { ApiError, errors, isOpenAIErrorBody } from '../../common/errors.ts';
import type { Logger } from '../../common/logger.ts';
import type { Scheduler } from '../scheduling/scheduler.ts';
import type { SchedulingRequest } from '../scheduling/types.ts';
import type { NodeConnection } from '../nodes/node-connection.ts';
import type { BreakerSet } from './circuit-breaker.ts';
import { judgeAtEnd } from './judged-stream.ts';
import { backoffMs, sleepUnlessAborted, type RetryOptions } from './retry.ts';
import type { UpstreamDispatch } from './providers/types.ts';
import { SpanKind, context, failSpan, setAttrs, trace, traceHeaders, tracer, type Span } from '../../common/telemetry.ts';
import type { Decision } from '../scheduling/profile.ts';
import type { Operation } from '../../common/contracts.ts';

export interface DispatchRequest {
  requestId: string;
  operation: Operation;
  model: string;
  body: Record<string, unknown>;
  deadline: Date;
  lane: string;
  /** Estimated prompt tokens and prefix block hashes (router/scheduling/prompt-prefix.ts). */
  promptTokens?: number;
  prefixHashes?: readonly string[];
  traceparent?: string;
  /** Aborted when the client goes away. */
  signal: AbortSignal;
  /** The verified caller (fallback residency by key id or tenant); absent when auth is off. */
  caller?: Caller;
  /** False when the caller's tenant forbids data leaving the cluster (no hosted fallback). */
  dataMayLeave?: boolean;
}

export interface Dispatch extends UpstreamDispatch {
  node: NodeConnection;
  attempts: number;
  first: GenerateEvent__Output;
  /** The remaining events (after `first`). Ends after the final usage or error event. */
  rest: AsyncIterator<GenerateEvent__Output>;
  /** Cancels the gRPC call (and with it the engine request). Idempotent. */
  cancel(): void;
}

/** Kinds that mean "this node could not take it": another node may. */
const RETRYABLE = new Set(['ENGINE_UNAVAILABLE', 'ENGINE_OVERLOADED', 'DRAINING', 'ENGINE_ERROR', 'TIMEOUT']);

/** Per-node stats hook (metrics): every pick and how the attempt ended. */
export interface DispatchObserver {
  onAttempt?(nodeId: string, outcome: 'ok' | 'retried' | 'failed'): void;
}

export class NodeDispatcher {
  constructor(
    private readonly scheduler: Scheduler,
    private readonly maxAttempts: number,
    private readonly logger: Logger,
    private readonly observer: DispatchObserver = {},
    /** Per-node breakers (router/upstream/circuit-breaker.ts): open nodes are not picked. */
    private readonly breakers?: { set: BreakerSet; slowFirstTokenMs: number },
    /** Backoff between node attempts (full jitter, router/upstream/retry.ts); none when absent. */
    private readonly retry?: Pick<RetryOptions, 'baseDelayMs' | 'maxDelayMs'> & {
      random?: () => number;
      sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
    },
  ) {}

  async dispatch(req: DispatchRequest): Promise<Dispatch> {
    const tried = new Set<string>();
    let lastError: ApiError | undefined;
    for (let attempt = 1; attempt <= this.maxAttempts; attempt++) {
      if (req.signal.aborted) throw errors.clientCancelled();
      // A retry only within the request's deadline: better an honest timeout than a late answer.
      if (attempt > 1 && Date.now() >= req.deadline.getTime())
        throw errors.timeout('The request timed out before a GPU node could answer.');
      if (attempt > 1 && this.retry) {
        // Full-jitter backoff, so a burst of failed requests does not stampede the next node; never past the deadline.
        const delay = backoffMs(attempt - 1, this.retry, this.retry.random);
        if (Date.now() + delay >= req.deadline.getTime())
          throw lastError ?? errors.timeout('The request timed out before a GPU node could answer.');
        if (delay > 0) {
          try {
            await (this.retry.sleep ?? sleepUnlessAborted)(delay, req.signal);
          } catch {
            throw errors.clientCancelled();
          }
        }
      }
      const broken = this.breakers?.set.refusing('node:');
      const schedSpan = tracer.startSpan('schedule', {
        attributes: { 'gen_ai.request.model': req.model, 'icp.lane': req.lane, 'icp.attempt': attempt },
      });
      const decision = this.scheduler.schedule({
        model: req.model,
        exclude: broken?.size ? new Set([...tried, ...broken]) : tried,
        promptTokens: req.promptTokens,
        prefixHashes: req.prefixHashes,
        lane: req.lane as SchedulingRequest['lane'],
      });
      const node = decision.connection;
      traceDecision(schedSpan, decision, tried.size + (broken?.size ?? 0));
      if (!node) {
        if (lastError) throw lastError;
        if (
          broken?.size &&
          this.scheduler.schedule({ model: req.model, exclude: tried, lane: req.lane as SchedulingRequest['lane'] }).connection
        ) {
          throw errors.overloaded(`Every GPU node for model '${req.model}' has an open circuit breaker.`, 1, 'breaker_open');
        }
        throw errors.overloaded(`No GPU node can serve model '${req.model}' right now.`, 1, 'no_ready_node');
      }
      tried.add(node.id);
      const permit = this.breakers?.set.get(`node:${node.id}`).tryAcquire();
      const outcome = await this.tryNode(node, req, attempt);
      if ('dispatch' in outcome) {
        this.observer.onAttempt?.(node.id, 'ok');
        const d = { ...outcome.dispatch, attempts: attempt };
        if (!permit) return d;
        // Judged when the call ends: a mid-stream failure counts, and a first token slower than the
        // bound (a brownout: served, but counted) is measured by the engine's own TTFT from the
        // final usage event, never by router-side time (queueing, the agent's channel). Non-streaming
        // answers report no TTFT (0): only errors count for them.
        const slowMs = this.breakers!.slowFirstTokenMs;
        return judgeAtEnd(d, permit, { slow: (u) => u.ttftSeconds * 1000 > slowMs });
      }
      if (permit) {
        if (outcome.retryable || outcome.error.status === 504) permit.failure();
        else permit.release();
      }
      lastError = outcome.error;
      const retrying = outcome.retryable && attempt < this.maxAttempts;
      this.observer.onAttempt?.(node.id, retrying ? 'retried' : 'failed');
      if (!outcome.retryable) throw outcome.error;
      this.logger.warn(
        { requestId: req.requestId, node: node.id, attempt, err: outcome.error.message },
        'node failed before first token; trying another',
      );
    }
    throw lastError ?? errors.overloaded(`No GPU node can serve model '${req.model}' right now.`, 1, 'no_ready_node');
  }

  private async tryNode(
    node: NodeConnection,
    req: DispatchRequest,
    attempt = 1,
  ): Promise<{ dispatch: Omit<Dispatch, 'attempts'> } | { error: ApiError; retryable: boolean }> {
    const metadata = new grpc.Metadata();
    metadata.set('x-request-id', req.requestId);
    metadata.set('x-lane', req.lane);
    // The attempt's span covers the whole gRPC call; the agent's spans are its children.
    const span = tracer.startSpan(`dispatch ${node.id}`, {
      kind: SpanKind.CLIENT,
      attributes: {
        'icp.node.id': node.id,
        'icp.attempt': attempt,
        'rpc.system': 'grpc',
        'rpc.method': 'Generate',
        'gen_ai.request.model': req.model,
      },
    });
    const trace_ = traceHeaders(trace.setSpan(context.active(), span));
    // Telemetry off: the client's own traceparent still travels unchanged.
    const traceparent = trace_.traceparent ?? req.traceparent;
    if (traceparent) metadata.set('traceparent', traceparent);
    if (trace_.tracestate) metadata.set('tracestate', trace_.tracestate);
    const call = node.client.Generate(
      { requestId: req.requestId, operation: req.operation, model: req.model, bodyJson: JSON.stringify(req.body) },
      metadata,
      { deadline: req.deadline },
    );
    node.inFlight += 1;
    node.dispatchedSinceStatus += 1;
    let released = false;
    let firstAt = 0;
    const release = () => {
      if (released) return;
      released = true;
      node.inFlight -= 1;
      span.end();
      // How long a sequence held its batch slot here: the scheduler's drain-rate estimate.
      if (firstAt) this.scheduler.observeService(node.id, (performance.now() - firstAt) / 1000);
    };
    // Once the call has its status it is over: cancelling it then would still send an HTTP/2
    // RST_STREAM, and one per request at high rates trips Node's rapid-reset protection on the
    // agent (GOAWAY code 2), killing every stream on the channel.
    let ended = false;
    call.on('status', () => {
      ended = true;
      release();
    });
    call.on('close', release);
    call.on('error', release);
    call.on('end', release);
    let cancelled = false;
    const cancel = () => {
      if (cancelled) return;
      cancelled = true;
      if (!ended) call.cancel();
      release();
    };
    const onAbort = () => cancel();
    req.signal.addEventListener('abort', onAbort, { once: true });

    const iterator = (call as AsyncIterable<GenerateEvent__Output>)[Symbol.asyncIterator]();
    let first: IteratorResult<GenerateEvent__Output>;
    try {
      first = await iterator.next();
    } catch (err) {
      cancel();
      req.signal.removeEventListener('abort', onAbort);
      const e = err as grpc.ServiceError;
      failSpan(span, e);
      if (e.code === grpc.status.DEADLINE_EXCEEDED)
        return { error: errors.timeout('The request timed out waiting for a GPU node.'), retryable: false };
      if (e.code === grpc.status.CANCELLED) return { error: errors.clientCancelled(), retryable: false };
      return { error: errors.upstream(`GPU node ${node.id} failed: ${e.details || e.message}`, 'node_unavailable'), retryable: true };
    }
    if (first.done) {
      cancel();
      return { error: errors.upstream(`GPU node ${node.id} ended the call without an answer`, 'node_error'), retryable: true };
    }
    const ev = first.value;
    if (ev.event === 'error' && ev.error) {
      setAttrs(span, { 'icp.error.kind': ev.error.kind });
      failSpan(span, new Error(ev.error.message));
      cancel();
      req.signal.removeEventListener('abort', onAbort);
      return { error: toApiError(ev.error, node.id), retryable: ev.error.beforeFirstToken && RETRYABLE.has(ev.error.kind) };
    }
    firstAt = performance.now();
    return {
      dispatch: {
        node,
        backend: `node:${node.id}`,
        first: ev,
        rest: iterator,
        cancel: () => {
          req.signal.removeEventListener('abort', onAbort);
          cancel();
        },
      },
    };
  }
}

/** The scheduling decision on its span: the chosen node, and why (scores, filtered counts). */
function traceDecision(span: Span, d: Decision, excluded: number): void {
  if (span.isRecording()) {
    setAttrs(span, { 'icp.node.id': d.node?.id, 'icp.schedule.excluded': excluded, 'icp.schedule.candidates': d.scores.length });
    for (const s of d.scores) span.setAttribute(`icp.schedule.score.${s.id}`, Math.round(s.score * 1000) / 1000);
    for (const [filter, n] of Object.entries(d.filtered)) span.setAttribute(`icp.schedule.filtered.${filter}`, n);
    if (!d.node) failSpan(span, new Error('no node can serve the request'));
  }
  span.end();
}

/** Maps an agent's typed error to what the client sees. An engine's own 4xx body passes through. */
export function toApiError(e: NonNullable<GenerateEvent__Output['error']>, nodeId: string): ApiError {
  if (e.kind === 'INVALID_REQUEST') {
    let body: unknown;
    try {
      body = e.errorJson ? JSON.parse(e.errorJson) : undefined;
    } catch {
      body = undefined;
    }
    const status = e.httpStatus >= 400 && e.httpStatus < 500 ? e.httpStatus : 400;
    if (isOpenAIErrorBody(body)) {
      const b = body.error;
      return new ApiError(
        status,
        b.message,
        b.type || 'invalid_request_error',
        b.code === null || b.code === undefined ? null : String(b.code),
        b.param ?? null,
      );
    }
    return new ApiError(status, e.message, 'invalid_request_error');
  }
  switch (e.kind) {
    case 'ENGINE_OVERLOADED':
    case 'DRAINING':
    case 'ENGINE_UNAVAILABLE':
      return errors.overloaded(`GPU node ${nodeId} cannot take the request: ${e.message}`, 1, 'node_unavailable');
    case 'TIMEOUT':
      return errors.timeout(`GPU node ${nodeId} timed out: ${e.message}`);
    default:
      return errors.upstream(`GPU node ${nodeId} failed: ${e.message}`, 'engine_error');
  }
}
