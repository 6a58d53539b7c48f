// OpenAI's error shape, the only error shape clients ever see:
// {"error":{"message","type","param","code"}} (see test/fixtures/openai/error-*.json).

export interface OpenAIErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

/** An error that knows its HTTP status and how to render itself in OpenAI's shape. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type: string,
    readonly code: string | null = null,
    readonly param: string | null = null,
    /** Seconds; sent as `Retry-After` on 429/503. */
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
    this.name = 'ApiError';
  }

  toBody(): OpenAIErrorBody {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

/**
 * The client closed the request before its answer was complete. Nobody reads this error; it exists
 * so that the request is settled, counted and logged as cancelled (HTTP 499, nginx's convention for
 * "client closed request"), never as the client's fault (400) or ours (5xx).
 */
export class ClientCancelledError extends ApiError {
  constructor() {
    super(499, 'The client closed the request.', 'invalid_request_error', 'client_cancelled');
    this.name = 'ClientCancelledError';
  }
}

export const errors = {
  clientCancelled: () => new ClientCancelledError(),
  invalidRequest: (message: string, param: string | null = null, code: string | null = null) =>
    new ApiError(400, message, 'invalid_request_error', code, param),
  unauthorized: (message = 'Incorrect API key provided.') => new ApiError(401, message, 'authentication_error', 'invalid_api_key'),
  forbidden: (message: string, code: string | null = null) => new ApiError(403, message, 'permission_error', code),
  modelNotFound: (model: string) =>
    new ApiError(
      404,
      `The model '${model}' does not exist or you do not have access to it.`,
      'invalid_request_error',
      'model_not_found',
      'model',
    ),
  notFound: (message: string) => new ApiError(404, message, 'invalid_request_error', 'not_found'),
  unsupportedMediaType: (message: string) => new ApiError(415, message, 'invalid_request_error', 'unsupported_media_type'),
  payloadTooLarge: (message: string) => new ApiError(413, message, 'invalid_request_error', 'request_too_large'),
  rateLimited: (message: string, retryAfterSeconds: number, code = 'rate_limit_exceeded') =>
    new ApiError(429, message, 'rate_limit_error', code, null, retryAfterSeconds),
  overloaded: (message: string, retryAfterSeconds: number, code = 'no_capacity') =>
    new ApiError(503, message, 'server_error', code, null, retryAfterSeconds),
  upstream: (message: string, code = 'upstream_error') => new ApiError(502, message, 'server_error', code),
  timeout: (message: string) => new ApiError(504, message, 'server_error', 'timeout'),
  internal: (message = 'The server had an error while processing your request.') =>
    new ApiError(500, message, 'server_error', 'internal_error'),
};

/**
 * Load shedding, not a fault: a 503 (or 429) that tells the client when to come back (admission
 * refusals, `errors.overloaded`: no capacity, shutting down, too many watchers). Logged at info,
 * without a stack, so real faults stand out.
 */
export function isLoadShedding(err: unknown): boolean {
  return err instanceof ApiError && (err.status === 503 || err.status === 429) && err.retryAfterSeconds !== undefined;
}

export function isOpenAIErrorBody(v: unknown): v is OpenAIErrorBody {
  if (typeof v !== 'object' || v === null) return false;
  const e = (v as { error?: unknown }).error;
  return typeof e === 'object' && e !== null && typeof (e as { message?: unknown }).message === 'string';
}
