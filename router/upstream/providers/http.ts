// The HTTP side shared by every provider: one undici request with deadline and abort, error
// classification by status (429/5xx/529 retryable, 401/403/404 "next provider", other 4xx the
// client's fault), Retry-After parsing, and SSE framing (eventsource-parser).
import { request, type Dispatcher } from 'undici';
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { ApiError, errors } from '../../../common/errors.ts';
import { ProviderError } from './types.ts';
import type { Credential } from './credentials.ts';

export interface HttpCall {
  provider: string;
  url: string;
  headers: Record<string, string>;
  body: unknown;
  signal: AbortSignal;
  deadline: Date;
  /** Bound on the time to the response headers (a provider that never answers is a timeout). */
  firstByteTimeoutMs: number;
  credential: Credential;
}

export interface HttpResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Dispatcher.ResponseData['body'];
  abort(): void;
}

/** Sends the request; resolves with a 2xx response or throws a classified ProviderError. */
export async function send(
  call: HttpCall,
  describeError: (status: number, text: string) => { message: string; type?: string; code?: string | null; param?: string | null },
): Promise<HttpResponse> {
  const ac = new AbortController();
  const onAbort = () => ac.abort();
  call.signal.addEventListener('abort', onAbort, { once: true });
  const budget = Math.max(1, Math.min(call.firstByteTimeoutMs, call.deadline.getTime() - Date.now()));
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    ac.abort();
  }, budget);
  let res: Dispatcher.ResponseData;
  try {
    res = await request(call.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...call.headers },
      body: JSON.stringify(call.body),
      signal: ac.signal,
      headersTimeout: budget,
      bodyTimeout: 0,
    });
  } catch (err) {
    clearTimeout(timer);
    call.signal.removeEventListener('abort', onAbort);
    if (call.signal.aborted) throw new ProviderError(call.provider, errors.clientCancelled(), 'client');
    if (timedOut)
      throw new ProviderError(
        call.provider,
        errors.timeout(`provider ${call.provider} did not answer within ${budget} ms`),
        'retryable',
        undefined,
        true,
      );
    throw new ProviderError(
      call.provider,
      errors.upstream(`provider ${call.provider} unreachable: ${call.credential.scrub((err as Error).message)}`, 'provider_unavailable'),
      'retryable',
    );
  }
  clearTimeout(timer);
  const abort = () => {
    call.signal.removeEventListener('abort', onAbort);
    ac.abort();
  };
  if (res.statusCode >= 200 && res.statusCode < 300) return { status: res.statusCode, headers: res.headers, body: res.body, abort };
  const text = await res.body.text().catch(() => '');
  abort();
  throw classify(call, res.statusCode, res.headers, text, describeError);
}

function classify(
  call: HttpCall,
  status: number,
  headers: Record<string, string | string[] | undefined>,
  text: string,
  describe: (s: number, t: string) => { message: string; type?: string; code?: string | null; param?: string | null },
): ProviderError {
  const d = describe(status, text);
  const message = call.credential.scrub(d.message);
  const p = call.provider;
  if (status === 401 || status === 403) {
    // The operator's credentials, not the client's: never echo the provider's text (it may quote the key).
    return new ProviderError(
      p,
      errors.upstream(`provider ${p} refused the router's credentials (HTTP ${status})`, 'provider_auth'),
      'next',
    );
  }
  if (status === 404) return new ProviderError(p, errors.upstream(`provider ${p}: ${message}`, 'provider_not_found'), 'next');
  if (status === 429) {
    const wait = retryAfterMs(headers);
    return new ProviderError(
      p,
      errors.rateLimited(`provider ${p} is rate limiting: ${message}`, Math.ceil((wait ?? 1000) / 1000), 'provider_rate_limited'),
      'retryable',
      wait,
    );
  }
  if (status === 408 || status === 409 || status >= 500) {
    return new ProviderError(
      p,
      errors.upstream(`provider ${p} failed (HTTP ${status}): ${message}`, status === 529 ? 'provider_overloaded' : 'provider_error'),
      'retryable',
      status === 503 || status === 529 ? retryAfterMs(headers) : undefined,
    );
  }
  // 400, 413, 422: the request; keep the provider's words in OpenAI's shape.
  const clientStatus = status === 413 ? 413 : 400;
  return new ProviderError(
    p,
    new ApiError(clientStatus, message, d.type ?? 'invalid_request_error', d.code ?? null, d.param ?? null),
    'client',
  );
}

/** `retry-after-ms`, or `retry-after` as seconds or an HTTP date. */
export function retryAfterMs(headers: Record<string, string | string[] | undefined>, now = Date.now()): number | undefined {
  const one = (k: 'retry-after-ms' | 'retry-after') => {
    const v = headers[k];
    return Array.isArray(v) ? v[0] : v;
  };
  const ms = Number(one('retry-after-ms'));
  if (one('retry-after-ms') !== undefined && Number.isFinite(ms) && ms >= 0) return ms;
  const ra = one('retry-after');
  if (ra === undefined) return undefined;
  const s = Number(ra);
  if (Number.isFinite(s) && s >= 0) return s * 1000;
  const at = Date.parse(ra);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** SSE messages of a response body, in order. */
export async function* sseMessages(body: AsyncIterable<Buffer | string>): AsyncGenerator<EventSourceMessage> {
  const queue: EventSourceMessage[] = [];
  const parser = createParser({ onEvent: (m) => queue.push(m) });
  for await (const chunk of body) {
    parser.feed(typeof chunk === 'string' ? chunk : chunk.toString('utf8'));
    while (queue.length) yield queue.shift()!;
  }
}

/** A JSON body's error message, from OpenAI's, Azure's or Anthropic's error shape. */
export function errorMessageOf(
  status: number,
  text: string,
): { message: string; type?: string; code?: string | null; param?: string | null } {
  try {
    const j = JSON.parse(text) as { error?: { message?: string; type?: string; code?: string | number | null; param?: string | null } };
    if (j.error && typeof j.error.message === 'string') {
      return {
        message: j.error.message,
        type: j.error.type,
        code: j.error.code === undefined || j.error.code === null ? null : String(j.error.code),
        param: j.error.param ?? null,
      };
    }
  } catch {
    // not JSON
  }
  return { message: text.slice(0, 200) || `HTTP ${status}` };
}
