// One adapter interface for every engine kind (vLLM, TGI). The agent's gRPC service speaks only
// to this; an adapter owns the engine's wire format.
import type { Operation } from '../../common/contracts.ts';
import type { EngineMetricsSnapshot } from './vllm-metrics.ts';

export type EngineEvent =
  | { type: 'chunk'; json: string }
  | { type: 'response'; json: string }
  | { type: 'usage'; promptTokens: number; completionTokens: number; cachedPromptTokens: number; ttftSeconds: number };

export type EngineErrorKind = 'ENGINE_UNAVAILABLE' | 'ENGINE_OVERLOADED' | 'INVALID_REQUEST' | 'ENGINE_ERROR' | 'TIMEOUT' | 'CANCELLED';

/** A failure the adapter classified; `errorJson` carries the engine's own OpenAI-shaped body for 4xx. */
export class EngineError extends Error {
  constructor(
    readonly kind: EngineErrorKind,
    message: string,
    readonly httpStatus = 0,
    readonly errorJson = '',
  ) {
    super(message);
    this.name = 'EngineError';
  }
}

export interface EngineModel {
  name: string;
  maxContext: number;
}

export interface EngineAdapter {
  readonly kind: 'vllm' | 'tgi';
  /**
   * Streams the engine's answer. Aborting `signal` cancels the engine request. `headers` carry
   * per-request context to the engine (x-request-id, traceparent).
   */
  generate(op: Operation, body: Record<string, unknown>, signal: AbortSignal, headers?: Record<string, string>): AsyncIterable<EngineEvent>;
  /** True when the engine answers its health check; never throws. */
  health(signal?: AbortSignal): Promise<boolean>;
  metrics(signal?: AbortSignal): Promise<EngineMetricsSnapshot>;
  models(signal?: AbortSignal): Promise<EngineModel[]>;
  close(): Promise<void>;
}
