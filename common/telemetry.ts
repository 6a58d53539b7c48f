// OpenTelemetry tracing for every service (docs/observability.md). Off by default: on when the
// config's `telemetry.otlpEndpoint` or `OTEL_EXPORTER_OTLP_ENDPOINT` is set, then spans go over
// OTLP/HTTP (JSON) to `<endpoint>/v1/traces`. While off, the API's no-op tracer makes every helper
// here cost next to nothing, and an incoming `traceparent` is still passed through unchanged.
// Prompts and completions are never put on a span.
import { context, propagation, trace, SpanKind, SpanStatusCode, type Attributes, type Context, type Span } from '@opentelemetry/api';
import type { Operation } from './contracts.ts';

export { SpanKind, SpanStatusCode, context, trace, type Span, type Context, type Attributes };

export interface TelemetryConfig {
  otlpEndpoint?: string;
  /** Share of new traces kept, 0-1 (parent-based: a sampled parent is always followed). */
  sampleRatio?: number;
}

export interface Telemetry {
  readonly enabled: boolean;
  /** Flushes what is buffered and stops the exporter. */
  shutdown(): Promise<void>;
}

const OFF: Telemetry = { enabled: false, shutdown: async () => {} };

/** Starts the SDK for `service` when an endpoint is configured; call before any server starts. */
export async function startTelemetry(service: string, cfg: TelemetryConfig = {}): Promise<Telemetry> {
  const endpoint = cfg.otlpEndpoint ?? process.env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? process.env.OTEL_EXPORTER_OTLP_ENDPOINT;
  if (!endpoint || process.env.OTEL_SDK_DISABLED === 'true') return OFF;
  // Loaded only when on: the SDK is not paid for by services that do not trace.
  const [
    { NodeSDK },
    { OTLPTraceExporter },
    { BatchSpanProcessor, ParentBasedSampler, TraceIdRatioBasedSampler },
    { resourceFromAttributes },
  ] = await Promise.all([
    import('@opentelemetry/sdk-node'),
    import('@opentelemetry/exporter-trace-otlp-http'),
    import('@opentelemetry/sdk-trace-base'),
    import('@opentelemetry/resources'),
  ]);
  const url = process.env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT && !cfg.otlpEndpoint ? endpoint : `${endpoint.replace(/\/+$/, '')}/v1/traces`;
  const sdk = new NodeSDK({
    serviceName: service,
    resource: resourceFromAttributes({ 'service.name': process.env.OTEL_SERVICE_NAME ?? service }),
    autoDetectResources: false,
    instrumentations: [],
    sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(cfg.sampleRatio ?? 1) }),
    spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter({ url }))],
  });
  sdk.start();
  return { enabled: true, shutdown: () => sdk.shutdown().catch(() => {}) };
}

export const tracer = trace.getTracer('inference-control-plane');

/** Runs `fn` inside a new active span; ends it (with error status when `fn` throws). */
export async function withSpan<T>(
  name: string,
  attributes: Attributes,
  fn: (span: Span) => Promise<T>,
  kind: SpanKind = SpanKind.INTERNAL,
  parent?: Context,
): Promise<T> {
  return tracer.startActiveSpan(name, { kind, attributes }, parent ?? context.active(), async (span) => {
    try {
      return await fn(span);
    } catch (err) {
      failSpan(span, err);
      throw err;
    } finally {
      span.end();
    }
  });
}

/** Marks a span failed with the error's message (never a request body). */
export function failSpan(span: Span, err: unknown): void {
  const e = err as { message?: string; status?: number; name?: string };
  span.setStatus({ code: SpanStatusCode.ERROR, message: e?.message ?? String(err) });
  span.setAttribute('error.type', e?.status ? String(e.status) : (e?.name ?? 'Error'));
}

/** The W3C trace context (`traceparent`, `tracestate`) of `ctx`, as headers or gRPC metadata. */
export function traceHeaders(ctx: Context = context.active()): Record<string, string> {
  const carrier: Record<string, string> = {};
  propagation.inject(ctx, carrier);
  return carrier;
}

/** The context a caller sent (`traceparent` / `tracestate` headers or metadata values). */
export function extractContext(get: (key: string) => string | undefined): Context {
  const carrier: Record<string, string> = {};
  for (const k of ['traceparent', 'tracestate'] as const) {
    const v = get(k);
    if (v) carrier[k] = v;
  }
  return propagation.extract(context.active(), carrier);
}

/** The active trace id, for log lines; undefined when no span is recording. */
export function currentTraceId(ctx: Context = context.active()): string | undefined {
  const sc = trace.getSpanContext(ctx);
  return sc && trace.isSpanContextValid(sc) ? sc.traceId : undefined;
}

/** GenAI semantic-convention operation names for our operations. */
export function genAiOperation(op: Operation): 'chat' | 'text_completion' {
  return op === 'CHAT_COMPLETIONS' ? 'chat' : 'text_completion';
}

/** Attributes that are never content: sets only defined, primitive values. */
export function setAttrs(span: Span, attrs: Record<string, string | number | boolean | undefined>): void {
  if (!span.isRecording()) return;
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined) span.setAttribute(k, v);
}

/** The `model` field of a first chunk or response body (a bounded regex, not a parse). */
export function responseModel(json: string | undefined): string | undefined {
  return json ? /"model"\s*:\s*"([^"\\]{1,256})"/.exec(json.slice(0, 2048))?.[1] : undefined;
}
