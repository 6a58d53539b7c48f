// vLLM adapter: forwards OpenAI requests to vLLM's own OpenAI server over HTTP keep-alive
// (undici pool) and reads its /health and /metrics. vLLM answers /health with 200 when its
// engine runs and 503 when the engine core died; while loading a model it does not listen.
import { request, type Agent } from 'undici';
import { classifyTransportError, createEngineDispatcher, fetchMetricsText, probeHealth, safeJson } from './engine-http.ts';
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import type { Operation } from '../../common/contracts.ts';
import { EngineError, type EngineAdapter, type EngineEvent, type EngineModel } from './engine.ts';
import { parseVllmMetrics, type EngineMetricsSnapshot } from './vllm-metrics.ts';

const PATHS: Record<Operation, string> = {
  CHAT_COMPLETIONS: '/v1/chat/completions',
  COMPLETIONS: '/v1/completions',
};

export interface VllmAdapterOptions {
  url: string;
  requestTimeoutMs: number;
  /** Extra headers for every engine call (e.g. an engine API key). */
  headers?: Record<string, string>;
}

export class VllmAdapter implements EngineAdapter {
  readonly kind = 'vllm' as const;
  private readonly base: string;
  private readonly dispatcher: Agent;

  constructor(private readonly opts: VllmAdapterOptions) {
    this.base = opts.url.replace(/\/+$/, '');
    this.dispatcher = createEngineDispatcher(opts.requestTimeoutMs);
  }

  async *generate(
    op: Operation,
    body: Record<string, unknown>,
    signal: AbortSignal,
    headers: Record<string, string> = {},
  ): AsyncIterable<EngineEvent> {
    const stream = body.stream === true;
    // Ask for usage on every stream: the router needs real token counts; it drops the usage
    // chunk again when the client did not ask for it.
    const payload = stream ? { ...body, stream_options: { ...(body.stream_options as object | undefined), include_usage: true } } : body;
    const started = performance.now();
    let res;
    try {
      res = await request(this.base + PATHS[op], {
        method: 'POST',
        body: JSON.stringify(payload),
        headers: {
          'content-type': 'application/json',
          accept: stream ? 'text/event-stream' : 'application/json',
          ...this.opts.headers,
          ...headers,
        },
        signal,
        dispatcher: this.dispatcher,
      });
    } catch (err) {
      throw classifyTransportError(err, signal);
    }

    if (res.statusCode >= 400) {
      const text = await res.body.text().catch(() => '');
      throw classifyHttpError(res.statusCode, text);
    }

    if (!stream) {
      let text: string;
      try {
        text = await res.body.text();
      } catch (err) {
        throw classifyTransportError(err, signal);
      }
      yield { type: 'response', json: text };
      const usage = readUsage(safeJson(text));
      if (usage) yield { type: 'usage', ...usage, ttftSeconds: 0 };
      return;
    }

    // SSE: forward each chunk as the engine wrote it; remember the usage chunk.
    const queue: EventSourceMessage[] = [];
    const parser = createParser({ onEvent: (ev) => queue.push(ev) });
    let usage: ReturnType<typeof readUsage> = null;
    let ttftSeconds = 0;
    let done = false;
    try {
      for await (const piece of res.body) {
        parser.feed(typeof piece === 'string' ? piece : (piece as Buffer).toString('utf8'));
        while (queue.length > 0) {
          const ev = queue.shift()!;
          if (ev.data === '[DONE]') {
            done = true;
            continue;
          }
          const parsed = safeJson(ev.data);
          if (isErrorEvent(parsed)) throw new EngineError('ENGINE_ERROR', errorMessage(parsed), 0, ev.data);
          const u = readUsage(parsed);
          if (u) usage = u;
          if (ttftSeconds === 0 && hasContent(parsed)) ttftSeconds = (performance.now() - started) / 1000;
          yield { type: 'chunk', json: ev.data };
        }
      }
    } catch (err) {
      if (err instanceof EngineError) throw err;
      throw classifyTransportError(err, signal);
    }
    if (!done) throw new EngineError('ENGINE_ERROR', 'engine stream ended without [DONE]');
    yield {
      type: 'usage',
      promptTokens: usage?.promptTokens ?? 0,
      completionTokens: usage?.completionTokens ?? 0,
      cachedPromptTokens: usage?.cachedPromptTokens ?? 0,
      ttftSeconds,
    };
  }

  health(signal?: AbortSignal): Promise<boolean> {
    return probeHealth(this.base, this.dispatcher, signal);
  }

  async metrics(signal?: AbortSignal): Promise<EngineMetricsSnapshot> {
    return parseVllmMetrics(await fetchMetricsText(this.base, this.dispatcher, signal));
  }

  async models(signal?: AbortSignal): Promise<EngineModel[]> {
    const res = await request(this.base + '/v1/models', {
      method: 'GET',
      signal,
      dispatcher: this.dispatcher,
      headersTimeout: 5_000,
      bodyTimeout: 5_000,
    });
    const body = (await res.body.json()) as { data?: { id?: unknown; max_model_len?: unknown }[] };
    if (res.statusCode !== 200 || !Array.isArray(body.data))
      throw new EngineError('ENGINE_UNAVAILABLE', `/v1/models answered ${res.statusCode}`);
    return body.data
      .filter((m) => typeof m.id === 'string')
      .map((m) => ({ name: m.id as string, maxContext: typeof m.max_model_len === 'number' ? m.max_model_len : 0 }));
  }

  async close(): Promise<void> {
    await this.dispatcher.close();
  }
}

function readUsage(v: unknown): { promptTokens: number; completionTokens: number; cachedPromptTokens: number } | null {
  const u = (
    v as
      | {
          usage?: {
            prompt_tokens?: unknown;
            completion_tokens?: unknown;
            prompt_tokens_details?: { cached_tokens?: unknown } | null;
          } | null;
        }
      | undefined
  )?.usage;
  if (!u || typeof u.prompt_tokens !== 'number') return null;
  const cached = u.prompt_tokens_details?.cached_tokens;
  return {
    promptTokens: u.prompt_tokens,
    completionTokens: typeof u.completion_tokens === 'number' ? u.completion_tokens : 0,
    cachedPromptTokens: typeof cached === 'number' ? cached : 0,
  };
}

function hasContent(v: unknown): boolean {
  const choices = (v as { choices?: unknown[] } | undefined)?.choices;
  return Array.isArray(choices) && choices.length > 0;
}

// `{"error":{...}}` (vLLM >= 0.10.1) or the older top-level `{"object":"error","message":...}`.
function isErrorEvent(v: unknown): boolean {
  if (typeof v !== 'object' || v === null || 'choices' in v) return false;
  return 'error' in v || (v as { object?: unknown }).object === 'error';
}

function errorMessage(v: unknown): string {
  const old = v as { object?: unknown; message?: unknown };
  if (old.object === 'error' && typeof old.message === 'string') return old.message;
  const e = (v as { error?: { message?: unknown } | string }).error;
  if (typeof e === 'string') return e;
  return typeof e?.message === 'string' ? e.message : 'engine reported an error mid-stream';
}

function classifyHttpError(status: number, text: string): EngineError {
  const parsed = safeJson(text);
  const message =
    parsed && typeof parsed === 'object' && 'error' in parsed ? errorMessage(parsed) : text.slice(0, 500) || `engine answered ${status}`;
  if (status === 429 || status === 503) return new EngineError('ENGINE_OVERLOADED', message, status);
  if (status >= 400 && status < 500) return new EngineError('INVALID_REQUEST', message, status, parsed ? text : '');
  return new EngineError('ENGINE_ERROR', message, status);
}
