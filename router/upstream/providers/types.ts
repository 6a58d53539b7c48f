// One upstream interface for everything that can answer a generation: a GPU node (via the
// dispatcher) or a hosted provider. Both yield the agent's event stream (chunkJson /
// responseJson, then one final usage or error), so router/http/generation.ts serves both alike.
import type { GenerateEvent__Output } from '../../../common/grpc.ts';
import type { ApiError } from '../../../common/errors.ts';
import type { Operation } from '../../../common/contracts.ts';

export type UpstreamEvent = GenerateEvent__Output;

/** What generation.ts consumes: which backend answered, its first event and the rest. */
export interface UpstreamDispatch {
  /** `node:<id>`, `<provider>:<model>`: sent to the client as the `x-backend` header. */
  backend: string;
  attempts: number;
  first: UpstreamEvent;
  rest: AsyncIterator<UpstreamEvent>;
  cancel(): void;
}

export interface ProviderRequest {
  requestId: string;
  operation: Operation;
  /** The provider's own model name (from the fallback chain). */
  model: string;
  /** The client's OpenAI request body. */
  body: Record<string, unknown>;
  deadline: Date;
  signal: AbortSignal;
}

export interface Provider {
  /** Config name, e.g. `openai`; the backend header is `<name>:<model>`. */
  readonly name: string;
  readonly kind: 'openai' | 'azure-openai' | 'anthropic';
  supports(op: Operation): boolean;
  /** Resolves once the first event arrived; throws ProviderError when nothing was served. */
  generate(req: ProviderRequest): Promise<UpstreamDispatch>;
  /** POST embeddings (OpenAI and Azure only): the provider's JSON answer; throws ProviderError. */
  embed?(req: Omit<ProviderRequest, 'operation'>): Promise<unknown>;
}

/** How a failure before the first token should be handled by the chain. */
export type FailureClass =
  | 'retryable' //  try this provider again (backoff), or the next one
  | 'next' //       this provider can't serve it now (credentials, model missing): next in chain
  | 'client'; //    the request itself is bad: stop and tell the client

export class ProviderError extends Error {
  constructor(
    readonly provider: string,
    /** What the client sees if nothing else serves the request. Never carries credentials. */
    readonly apiError: ApiError,
    readonly failure: FailureClass,
    /** A 429/503 Retry-After from the provider, in ms. */
    readonly retryAfterMs?: number,
    readonly timeout = false,
  ) {
    super(apiError.message);
    this.name = 'ProviderError';
  }
}
