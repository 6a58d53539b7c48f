// Any OpenAI-compatible API (api.openai.com, or any base URL that speaks it): chat completions,
// completions and embeddings. The client's body goes out with the provider's model name; chunks
// come back byte for byte, except Azure-style `choices: []` chunks without usage (filter results
// only), which an OpenAI client would not expect.
import { Credential } from './credentials.ts';
import { send, sseMessages, errorMessageOf, type HttpResponse } from './http.ts';
import { ev, toDispatch } from './events.ts';
import { ProviderError, type Provider, type ProviderRequest, type UpstreamDispatch, type UpstreamEvent } from './types.ts';
import { errors } from '../../../common/errors.ts';
import type { Operation } from '../../../common/contracts.ts';

export interface OpenAIProviderOptions {
  name: string;
  baseUrl: string;
  credential: Credential;
  firstByteTimeoutMs: number;
  /** Extra headers (e.g. OpenAI-Organization). */
  headers?: Record<string, string>;
}

/** Where a request goes and how it is authenticated; Azure differs only here. */
export interface OpenAIRoute {
  url(op: Operation | 'EMBEDDINGS', model: string): string;
  authHeaders(): Record<string, string>;
}

export class OpenAIProvider implements Provider {
  readonly kind: Provider['kind'] = 'openai';
  readonly name: string;

  constructor(
    protected readonly opts: OpenAIProviderOptions,
    private readonly route: OpenAIRoute = {
      url: (op) =>
        `${opts.baseUrl.replace(/\/$/, '')}/${op === 'COMPLETIONS' ? 'completions' : op === 'EMBEDDINGS' ? 'embeddings' : 'chat/completions'}`,
      authHeaders: () => ({ authorization: `Bearer ${opts.credential.reveal()}` }),
    },
  ) {
    this.name = opts.name;
  }

  supports(_op: Operation): boolean {
    return true;
  }

  async generate(req: ProviderRequest): Promise<UpstreamDispatch> {
    const stream = req.body.stream === true;
    const body: Record<string, unknown> = { ...req.body, model: req.model };
    // Usage is always asked for (settling needs it); generation.ts drops the chunk unless the client asked.
    if (stream) body.stream_options = { ...(req.body.stream_options as object | undefined), include_usage: true };
    const res = await this.post(req, req.operation, body);
    const events = stream ? openAIStreamEvents(this.name, res) : openAIJsonEvents(this.name, res);
    return toDispatch(this.name, `${this.name}:${req.model}`, events, res.abort);
  }

  /** POST /embeddings: the provider's JSON answer, as is. */
  async embed(req: Omit<ProviderRequest, 'operation'>): Promise<unknown> {
    const res = await this.post(req, 'EMBEDDINGS', { ...req.body, model: req.model });
    try {
      const j = (await res.body.json().catch(() => undefined)) as { data?: unknown } | undefined;
      if (!j || !Array.isArray(j.data))
        throw new ProviderError(
          this.name,
          errors.upstream(`provider ${this.name} answered embeddings with an unexpected body`, 'provider_error'),
          'retryable',
        );
      return j;
    } finally {
      res.abort();
    }
  }

  private post(req: Omit<ProviderRequest, 'operation'>, op: Operation | 'EMBEDDINGS', body: unknown): Promise<HttpResponse> {
    return send(
      {
        provider: this.name,
        url: this.route.url(op, req.model),
        headers: { ...this.opts.headers, ...this.route.authHeaders(), 'x-request-id': req.requestId },
        body,
        signal: req.signal,
        deadline: req.deadline,
        firstByteTimeoutMs: this.opts.firstByteTimeoutMs,
        credential: this.opts.credential,
      },
      errorMessageOf,
    );
  }
}

async function* openAIJsonEvents(provider: string, res: HttpResponse): AsyncGenerator<UpstreamEvent> {
  const text = await res.body.text();
  let usage: { prompt_tokens?: number; completion_tokens?: number; prompt_tokens_details?: { cached_tokens?: number } } | undefined;
  try {
    usage = (JSON.parse(text) as { usage?: typeof usage }).usage;
  } catch {
    throw new ProviderError(provider, errors.upstream(`provider ${provider} answered with invalid JSON`, 'provider_error'), 'retryable');
  }
  yield ev.response(text);
  yield ev.usage(usage?.prompt_tokens ?? 0, usage?.completion_tokens ?? 0, usage?.prompt_tokens_details?.cached_tokens ?? 0);
}

async function* openAIStreamEvents(provider: string, res: HttpResponse): AsyncGenerator<UpstreamEvent> {
  let usage = { prompt: 0, completion: 0, cached: 0 };
  for await (const m of sseMessages(res.body)) {
    if (m.data === '[DONE]') {
      yield ev.usage(usage.prompt, usage.completion, usage.cached);
      return;
    }
    let chunk: {
      choices?: unknown[];
      usage?: { prompt_tokens?: number; completion_tokens?: number; prompt_tokens_details?: { cached_tokens?: number } } | null;
      error?: { message?: string };
    };
    try {
      chunk = JSON.parse(m.data) as typeof chunk;
    } catch {
      continue;
    }
    if (chunk.error)
      throw new ProviderError(
        provider,
        errors.upstream(`provider ${provider} failed mid-stream: ${chunk.error.message ?? 'error'}`, 'provider_error'),
        'retryable',
      );
    if (chunk.usage)
      usage = {
        prompt: chunk.usage.prompt_tokens ?? 0,
        completion: chunk.usage.completion_tokens ?? 0,
        cached: chunk.usage.prompt_tokens_details?.cached_tokens ?? 0,
      };
    // Azure's first chunk carries only prompt_filter_results: nothing for an OpenAI client.
    if (Array.isArray(chunk.choices) && chunk.choices.length === 0 && !chunk.usage) continue;
    yield ev.chunk(m.data);
  }
  // The connection ended without [DONE]: a dropped stream.
  throw new ProviderError(provider, errors.upstream(`provider ${provider} ended the stream early`, 'stream_interrupted'), 'retryable');
}
