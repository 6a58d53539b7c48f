// The per-request server span and JSON log line of the generation routes (docs/observability.md).
// Neither carries the prompt, the completion or the API key; with `logging.logContent` on (and only
// then) the log line adds the prompt and the completion text.
import type { FastifyRequest } from 'fastify';
import { SpanKind, SpanStatusCode, extractContext, setAttrs, tracer, type Span } from '../../common/telemetry.ts';
import { principalOf } from '../tenancy/enforcement.ts';
import { own } from '../../common/own.ts';

/** What the generation routes learnt about one request (a subset of their RequestRecord). */
export interface RequestFacts {
  /** ok, error, refused or cancelled (the generation routes' RequestOutcome). */
  outcome?: string;
  model: string;
  lane: string;
  backend: string;
  status: number;
  firstTokenAt: number;
  usage: { promptTokens: number; completionTokens: number } | undefined;
  responseModel?: string;
  content?: string[];
}

const header = (req: FastifyRequest, name: string): string | undefined => {
  const v = own(req.headers, name);
  return typeof v === 'string' ? v : undefined;
};

/** The SERVER span of one request, a child of the caller's `traceparent` when it sent one. */
export function startServerSpan(req: FastifyRequest, operation: 'chat' | 'text_completion' | 'embeddings' | 'rerank'): Span {
  const route = req.routeOptions.url ?? req.url.split('?')[0];
  const body = req.body as { model?: unknown; max_tokens?: unknown; max_completion_tokens?: unknown } | undefined;
  const maxTokens =
    typeof body?.max_completion_tokens === 'number'
      ? body.max_completion_tokens
      : typeof body?.max_tokens === 'number'
        ? body.max_tokens
        : undefined;
  return tracer.startSpan(
    `${req.method} ${route}`,
    {
      kind: SpanKind.SERVER,
      attributes: {
        'http.request.method': req.method,
        'http.route': route,
        'icp.request.id': req.id,
        'gen_ai.operation.name': operation,
        ...(typeof body?.model === 'string' ? { 'gen_ai.request.model': body.model } : {}),
        ...(maxTokens !== undefined ? { 'gen_ai.request.max_tokens': maxTokens } : {}),
      },
    },
    extractContext((k) => header(req, k)),
  );
}

export function finishServerSpan(span: Span, rec: RequestFacts): void {
  if (span.isRecording()) {
    setAttrs(span, {
      'http.response.status_code': rec.status,
      'gen_ai.request.model': rec.model,
      'gen_ai.response.model': rec.responseModel,
      'gen_ai.usage.input_tokens': rec.usage?.promptTokens,
      'gen_ai.usage.output_tokens': rec.usage?.completionTokens,
      'icp.lane': rec.lane,
      'icp.backend.kind': rec.backend,
    });
    if (rec.status >= 500) span.setStatus({ code: SpanStatusCode.ERROR, message: `HTTP ${rec.status}` });
  }
  span.end();
}

/** One JSON line per request, at info. */
export function logRequest(req: FastifyRequest, span: Span, rec: RequestFacts, started: number, logContent: boolean): void {
  const sc = span.spanContext();
  const traceId = sc.traceId && sc.traceId !== '00000000000000000000000000000000' ? sc.traceId : undefined;
  const line: Record<string, unknown> = {
    requestId: req.id,
    traceId,
    method: req.method,
    route: req.routeOptions.url,
    model: rec.model,
    lane: rec.lane,
    backend: rec.backend,
    status: rec.status,
    outcome: rec.outcome,
    durationMs: Math.round((performance.now() - started) * 10) / 10,
    ttftMs: rec.firstTokenAt ? Math.round((rec.firstTokenAt - started) * 10) / 10 : undefined,
    promptTokens: rec.usage?.promptTokens,
    completionTokens: rec.usage?.completionTokens,
    tenantId: principalOf(req)?.tenantId,
  };
  if (logContent) {
    const body = req.body as { messages?: unknown; prompt?: unknown } | undefined;
    line.prompt = body?.messages ?? body?.prompt;
    line.completion = completionText(rec.content ?? []);
  }
  req.log.info(line, 'request');
}

/** The text of a response or of a stream's chunks (the request log with logContent on; shadow comparison). */
export function completionText(parts: string[]): string {
  let out = '';
  for (const p of parts) {
    try {
      const j = JSON.parse(p) as { choices?: { text?: string; delta?: { content?: string }; message?: { content?: string } }[] };
      for (const c of j.choices ?? []) out += c.text ?? c.delta?.content ?? c.message?.content ?? '';
    } catch {
      // a malformed chunk adds nothing
    }
  }
  return out;
}
