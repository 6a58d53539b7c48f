// Anthropic Messages API (`POST /v1/messages`, `x-api-key`, `anthropic-version`) behind the
// OpenAI shape: requests and answers go through anthropic-translate.ts. Chat only.
import { Credential } from './credentials.ts';
import { send, sseMessages, type HttpResponse } from './http.ts';
import { ev, toDispatch } from './events.ts';
import { ProviderError, type Provider, type ProviderRequest, type UpstreamDispatch, type UpstreamEvent } from './types.ts';
import { AnthropicStreamTranslator, anthropicErrorToOpenAI, toAnthropicRequest, toOpenAIResponse } from './anthropic-translate.ts';
import { errors } from '../../../common/errors.ts';
import type { Operation } from '../../../common/contracts.ts';

export interface AnthropicProviderOptions {
  name: string;
  baseUrl: string;
  version: string;
  defaultMaxTokens: number;
  credential: Credential;
  firstByteTimeoutMs: number;
}

export class AnthropicProvider implements Provider {
  readonly kind = 'anthropic' as const;
  readonly name: string;

  constructor(private readonly o: AnthropicProviderOptions) {
    this.name = o.name;
  }

  supports(op: Operation): boolean {
    return op === 'CHAT_COMPLETIONS';
  }

  async generate(req: ProviderRequest): Promise<UpstreamDispatch> {
    let body: Record<string, unknown>;
    try {
      body = toAnthropicRequest(req.body, { model: req.model, defaultMaxTokens: this.o.defaultMaxTokens });
    } catch (err) {
      throw new ProviderError(this.name, err as never, 'client');
    }
    const res = await send(
      {
        provider: this.name,
        url: `${this.o.baseUrl.replace(/\/$/, '')}/v1/messages`,
        headers: { 'x-api-key': this.o.credential.reveal(), 'anthropic-version': this.o.version, 'x-request-id': req.requestId },
        body,
        signal: req.signal,
        deadline: req.deadline,
        firstByteTimeoutMs: this.o.firstByteTimeoutMs,
        credential: this.o.credential,
      },
      anthropicErrorToOpenAI,
    );
    const events = body.stream === true ? streamEvents(this.name, req.model, res) : jsonEvents(this.name, res);
    return toDispatch(this.name, `${this.name}:${req.model}`, events, res.abort);
  }
}

async function* jsonEvents(provider: string, res: HttpResponse): AsyncGenerator<UpstreamEvent> {
  let msg: Record<string, unknown>;
  try {
    msg = (await res.body.json()) as Record<string, unknown>;
  } catch {
    throw new ProviderError(provider, errors.upstream(`provider ${provider} answered with invalid JSON`, 'provider_error'), 'retryable');
  }
  const out = toOpenAIResponse(msg);
  yield ev.response(JSON.stringify(out));
  const u = out.usage as { prompt_tokens: number; completion_tokens: number; prompt_tokens_details: { cached_tokens: number } };
  yield ev.usage(u.prompt_tokens, u.completion_tokens, u.prompt_tokens_details.cached_tokens);
}

async function* streamEvents(provider: string, model: string, res: HttpResponse): AsyncGenerator<UpstreamEvent> {
  const t = new AnthropicStreamTranslator(model);
  let sent = false;
  for await (const m of sseMessages(res.body)) {
    let e: Record<string, unknown>;
    try {
      e = JSON.parse(m.data) as Record<string, unknown>;
    } catch {
      continue;
    }
    for (const c of t.push(e)) {
      sent = true;
      yield ev.chunk(c);
    }
    if (t.error) {
      const overloaded = t.error.type === 'overloaded_error' || t.error.type === 'rate_limit_error';
      const msg = `provider ${provider} failed mid-stream: ${t.error.message}`;
      // Before anything reached the client this is an ordinary retryable failure.
      if (!sent)
        throw new ProviderError(provider, errors.upstream(msg, overloaded ? 'provider_overloaded' : 'provider_error'), 'retryable');
      yield ev.error(msg, overloaded ? 'ENGINE_OVERLOADED' : 'ENGINE_ERROR');
      return;
    }
    if (t.stopped) {
      const u = t.usage;
      yield ev.usage(u.prompt_tokens, u.completion_tokens, u.prompt_tokens_details.cached_tokens);
      return;
    }
  }
  throw new ProviderError(provider, errors.upstream(`provider ${provider} ended the stream early`, 'stream_interrupted'), 'retryable');
}
