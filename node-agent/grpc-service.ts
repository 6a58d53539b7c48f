// The agent's side of the contract: Generate forwards to the engine adapter, WatchStatus streams
// NodeStatus, Drain stops new work. Every Generate ends with exactly one Usage or Error event.
import { once } from 'node:events';
import { grpc, type NodeAgentHandlers, type GenerateEvent } from '../common/grpc.ts';
import type { Logger } from '../common/logger.ts';
import { safeRequestId } from '../common/http.ts';
import { operationSchema } from '../common/contracts.ts';
import { EngineError, type EngineAdapter } from './engines/engine.ts';
import type { StatusPublisher } from './status-publisher.ts';
import type { Caller, CallerCheck } from './caller-auth.ts';
import {
  SpanKind,
  extractContext,
  failSpan,
  genAiOperation,
  responseModel,
  setAttrs,
  trace,
  traceHeaders,
  tracer,
} from '../common/telemetry.ts';

export interface AgentState {
  readonly ready: boolean;
  readonly draining: boolean;
  inFlight: number;
}

export interface GrpcServiceDeps {
  engine: EngineAdapter;
  publisher: StatusPublisher;
  state: AgentState;
  logger: Logger;
  onDrain: (graceMs: number) => void;
  /** Undo a drain: take new work again. */
  onResume: () => void;
  /** Who may call what (caller-auth.ts); absent = anyone (tests of the handlers alone). */
  checkCaller?: CallerCheck;
  onInFlightChange: () => void;
  /** Called once per generation with how it ended and its usage (if any). */
  onFinished?: (outcome: string, usage: { promptTokens: number; completionTokens: number } | undefined) => void;
}

const FORWARDED_METADATA = ['x-request-id', 'traceparent', 'tracestate'] as const;

export function createNodeAgentHandlers(deps: GrpcServiceDeps): NodeAgentHandlers {
  const { engine, publisher, state, logger } = deps;
  // One warning per kind of refusal per minute: a scanner must not flood the log.
  let lastDenialLogAt = 0;
  const denied = (call: Parameters<CallerCheck>[0], allowed: readonly Caller[], rpc: string) => {
    const d = deps.checkCaller?.(call, allowed);
    if (d && Date.now() - lastDenialLogAt > 60_000) {
      lastDenialLogAt = Date.now();
      logger.warn({ rpc, code: grpc.status[d.code], reason: d.details }, 'gRPC call refused: caller not authorized');
    }
    return d;
  };

  const generate = async (call: Parameters<NodeAgentHandlers['Generate']>[0]): Promise<void> => {
    const req = call.request;
    const fail = (kind: string, message: string, extra: Partial<NonNullable<GenerateEvent['error']>> = {}) => {
      call.write({ error: { kind, message, beforeFirstToken: true, ...extra } } as GenerateEvent);
      call.end();
    };
    if (state.draining) return fail('DRAINING', 'node is draining');
    if (!state.ready) return fail('ENGINE_UNAVAILABLE', 'node is not ready');
    const operation = operationSchema.safeParse(req.operation);
    if (!operation.success) return fail('INVALID_REQUEST', `unknown operation ${req.operation}`);
    const op = operation.data;
    let body: Record<string, unknown>;
    try {
      const parsed: unknown = JSON.parse(req.bodyJson);
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('body is not a JSON object');
      body = parsed as Record<string, unknown>;
    } catch (err) {
      return fail('INVALID_REQUEST', `body_json: ${(err as Error).message}`);
    }

    const headers: Record<string, string> = {};
    for (const key of FORWARDED_METADATA) {
      const v = call.metadata.get(key)[0];
      if (typeof v === 'string' && v.length <= 512) headers[key] = key === 'x-request-id' ? safeRequestId(v).id : v;
    }
    // The router's dispatch span is the parent; the engine call is a child, and its context goes
    // to the engine in the request headers (vLLM reads traceparent).
    const parent = extractContext((k) => {
      const v = call.metadata.get(k)[0];
      return typeof v === 'string' ? v : undefined;
    });
    const model = typeof body.model === 'string' ? body.model : req.model;
    const opName = genAiOperation(op);
    const span = tracer.startSpan(
      `${opName} ${model}`,
      {
        kind: SpanKind.CLIENT,
        attributes: {
          'gen_ai.operation.name': opName,
          'gen_ai.provider.name': engine.kind,
          'gen_ai.request.model': model,
          'icp.request.id': req.requestId,
          ...(typeof body.max_tokens === 'number'
            ? { 'gen_ai.request.max_tokens': body.max_tokens }
            : typeof body.max_completion_tokens === 'number'
              ? { 'gen_ai.request.max_tokens': body.max_completion_tokens }
              : {}),
        },
      },
      parent,
    );
    Object.assign(headers, traceHeaders(trace.setSpan(parent, span)));
    const ac = new AbortController();
    call.on('cancelled', () => ac.abort());
    state.inFlight += 1;
    deps.onInFlightChange();
    let sent = false;
    let outcome = 'ok';
    let usage: { promptTokens: number; completionTokens: number } | undefined;
    try {
      for await (const ev of engine.generate(op, body, ac.signal, headers)) {
        if (ac.signal.aborted) break;
        let msg: GenerateEvent;
        if (ev.type === 'chunk') msg = { chunkJson: ev.json };
        else if (ev.type === 'response') msg = { responseJson: ev.json };
        else
          msg = {
            usage: {
              promptTokens: ev.promptTokens,
              completionTokens: ev.completionTokens,
              cachedPromptTokens: ev.cachedPromptTokens,
              ttftSeconds: ev.ttftSeconds,
            },
          };
        if (ev.type !== 'usage') {
          if (!sent) setAttrs(span, { 'gen_ai.response.model': responseModel(ev.json) });
          sent = true;
        } else {
          usage = { promptTokens: ev.promptTokens, completionTokens: ev.completionTokens };
          setAttrs(span, {
            'gen_ai.usage.input_tokens': ev.promptTokens,
            'gen_ai.usage.output_tokens': ev.completionTokens,
            'gen_ai.server.time_to_first_token': ev.ttftSeconds,
          });
        }
        // Respect HTTP/2 flow control: a slow router must not make the agent buffer without bound.
        if (!call.write(msg)) await once(call, 'drain');
      }
    } catch (err) {
      outcome = ac.signal.aborted ? 'cancelled' : err instanceof EngineError ? err.kind.toLowerCase() : 'engine_error';
      if (!ac.signal.aborted) {
        const e = err instanceof EngineError ? err : new EngineError('ENGINE_ERROR', (err as Error).message ?? String(err));
        failSpan(span, e);
        if (e.kind !== 'INVALID_REQUEST')
          logger.warn({ requestId: req.requestId, kind: e.kind, status: e.httpStatus, msg: e.message }, 'engine call failed');
        call.write({
          error: { kind: e.kind, message: e.message, httpStatus: e.httpStatus, errorJson: e.errorJson, beforeFirstToken: !sent },
        } as GenerateEvent);
      }
    } finally {
      if (ac.signal.aborted && outcome === 'ok') outcome = 'cancelled';
      setAttrs(span, { 'icp.outcome': outcome });
      span.end();
      deps.onFinished?.(outcome, usage);
      state.inFlight -= 1;
      deps.onInFlightChange();
      if (!ac.signal.aborted) call.end();
    }
  };

  return {
    Generate(call) {
      const d = denied(call, ['router'], 'Generate');
      if (d) return void call.emit('error', d);
      // grpc-js ignores what a handler returns: an error escaping the async body would be an
      // unhandled rejection (the process exits), so it fails this call instead.
      generate(call).catch((err: unknown) => {
        logger.error({ err: (err as Error).message }, 'generate handler failed');
        call.destroy(err as Error);
      });
    },

    WatchStatus(call) {
      const d = denied(call, ['router', 'control-plane'], 'WatchStatus');
      if (d) return void call.emit('error', d);
      const unsubscribe = publisher.subscribe(
        (status) => call.write(status),
        () => call.end(),
      );
      const stop = () => unsubscribe();
      call.on('cancelled', stop);
      call.on('close', stop);
      call.on('error', stop);
    },

    Drain(call, callback) {
      const d = denied(call, ['control-plane'], 'Drain');
      if (d) return callback(d);
      deps.onDrain(call.request.graceMs);
      callback(null, { draining: true, inFlight: state.inFlight });
    },

    Resume(call, callback) {
      const d = denied(call, ['control-plane'], 'Resume');
      if (d) return callback(d);
      deps.onResume();
      callback(null, { draining: false, inFlight: state.inFlight });
    },
  };
}

export { grpc };
