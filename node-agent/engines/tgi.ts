// TGI (text-generation-inference) adapter: the same EngineAdapter as vLLM's, so an agent can front
// either engine and the router cannot tell which.
// - chat completions -> TGI's /v1/chat/completions (OpenAI-compatible since TGI 1.4);
// - completions -> TGI's /v1/completions (since 1.4.4); on an older TGI (told by /info's version,
//   or by a 404 from the route) they are translated to /generate_stream (or /generate) and back to
//   OpenAI text_completion chunks;
// - every chunk is rewritten to look like vLLM's (see tgi-wire.ts): an id, the requested model,
//   OpenAI finish reasons, usage as its own chunk;
// - /health: 200 healthy, 503 when TGI's backend health check fails; /metrics -> tgi-metrics.ts;
//   models and context length from /info (model_id, max_total_tokens).
import { request, type Agent, type Dispatcher } from 'undici';
import { classifyTransportError, createEngineDispatcher, fetchMetricsText, probeHealth, safeJson } from './engine-http.ts';
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import type { Operation } from '../../common/contracts.ts';
import { EngineError, type EngineAdapter, type EngineEvent, type EngineModel } from './engine.ts';
import type { EngineMetricsSnapshot } from './vllm-metrics.ts';
import { parseTgiMetrics } from './tgi-metrics.ts';
import {
  generateEventToChunks,
  generateResponseToCompletion,
  isValidationError,
  newHead,
  normalizeChatChunk,
  normalizeCompletionChunk,
  normalizeResponse,
  tgiErrorMessage,
  tgiErrorSchema,
  tgiGenerateResponseSchema,
  tgiInfoSchema,
  tgiStreamResponseSchema,
  toGenerateRequest,
  versionAtLeast,
  type ChunkHead,
} from './tgi-wire.ts';

/** TGI release that added /v1/completions (commit 3dd7da21, "accept legacy request format"). */
const COMPLETIONS_SINCE: [number, number, number] = [1, 4, 4];

export interface TgiAdapterOptions {
  url: string;
  requestTimeoutMs: number;
  headers?: Record<string, string>;
  /** 'auto' (default): /v1/completions unless /info or a 404 says the TGI is older; 'generate' always translates. */
  completions?: 'auto' | 'native' | 'generate';
}

type Obj = Record<string, unknown>;
type Usage = { promptTokens: number; completionTokens: number; cachedPromptTokens: number };

export class TgiAdapter implements EngineAdapter {
  readonly kind = 'tgi' as const;
  private readonly base: string;
  private readonly dispatcher: Agent;
  /** null until known; false once the TGI answered 404 to /v1/completions or /info is older. */
  private nativeCompletions: boolean | null;

  constructor(private readonly opts: TgiAdapterOptions) {
    this.base = opts.url.replace(/\/+$/, '');
    this.nativeCompletions = opts.completions === 'generate' ? false : opts.completions === 'native' ? true : null;
    this.dispatcher = createEngineDispatcher(opts.requestTimeoutMs);
  }

  async *generate(
    op: Operation,
    body: Record<string, unknown>,
    signal: AbortSignal,
    headers: Record<string, string> = {},
  ): AsyncIterable<EngineEvent> {
    if (op === 'CHAT_COMPLETIONS') {
      yield* this.openAiRoute('chat', body, signal, headers);
      return;
    }
    if (this.nativeCompletions !== false) {
      try {
        yield* this.openAiRoute('completion', body, signal, headers);
        this.nativeCompletions = true;
        return;
      } catch (err) {
        // 404 before anything was sent: this TGI has no /v1/completions; remember and translate.
        if (!(err instanceof EngineError && err.httpStatus === 404 && this.nativeCompletions === null)) throw err;
        this.nativeCompletions = false;
      }
    }
    yield* this.translatedCompletion(body, signal, headers);
  }

  /** /v1/chat/completions or /v1/completions, streaming or not. */
  private async *openAiRoute(
    kind: 'chat' | 'completion',
    body: Obj,
    signal: AbortSignal,
    headers: Record<string, string>,
  ): AsyncIterable<EngineEvent> {
    const stream = body.stream === true;
    const head = newHead(kind === 'chat' ? 'chatcmpl' : 'cmpl', String(body.model ?? ''));
    // Chat: ask for the usage chunk (TGI >= 2.3 sends it; older ones ignore the field).
    // Completions: TGI has no stream_options there and always puts usage on the last chunk.
    const payload =
      stream && kind === 'chat'
        ? { ...body, stream_options: { ...(body.stream_options as object | undefined), include_usage: true } }
        : { ...body };
    if (kind === 'completion') delete payload.stream_options;
    const started = performance.now();
    const res = await this.post(kind === 'chat' ? '/v1/chat/completions' : '/v1/completions', payload, stream, signal, headers);

    if (!stream) {
      const text = await readText(res, signal);
      const parsed = safeJson(text);
      if (!isObj(parsed)) throw new EngineError('ENGINE_ERROR', 'TGI answered with a body that is not JSON');
      const out = normalizeResponse(parsed, head);
      yield { type: 'response', json: JSON.stringify(out) };
      const u = readUsage(out);
      if (u) yield { type: 'usage', ...u, ttftSeconds: 0 };
      return;
    }

    let usage: Usage | null = null;
    let contentChunks = 0;
    let ttftSeconds = 0;
    let done = false;
    for await (const ev of sseEvents(res, signal)) {
      if (ev.data === '[DONE]') {
        done = true;
        continue;
      }
      const parsed = safeJson(ev.data);
      throwIfError(parsed, ev.data, contentChunks === 0);
      if (!isObj(parsed)) continue;
      const chunks = kind === 'chat' ? [normalizeChatChunk(parsed, head)] : normalizeCompletionChunk(parsed, head);
      for (const c of chunks) {
        const u = readUsage(c);
        if (u) usage = u;
        if (hasChoices(c)) {
          contentChunks++;
          if (ttftSeconds === 0) ttftSeconds = (performance.now() - started) / 1000;
        }
        yield { type: 'chunk', json: JSON.stringify(c) };
      }
    }
    if (!done) throw new EngineError('ENGINE_ERROR', 'TGI stream ended without [DONE]');
    // A TGI before 2.3 sends no usage on chat streams: TGI streams one token per chunk, so count them.
    yield { type: 'usage', ...(usage ?? { promptTokens: 0, completionTokens: contentChunks, cachedPromptTokens: 0 }), ttftSeconds };
  }

  /** Completions on a TGI without /v1/completions: /generate_stream or /generate. */
  private async *translatedCompletion(body: Obj, signal: AbortSignal, headers: Record<string, string>): AsyncIterable<EngineEvent> {
    const stream = body.stream === true;
    const head: ChunkHead = newHead('cmpl', String(body.model ?? ''));
    let tgiBody: Obj;
    try {
      tgiBody = toGenerateRequest(body, stream);
    } catch (err) {
      const message = (err as Error).message;
      throw new EngineError('INVALID_REQUEST', message, 400, openAiErrorJson(message, 400));
    }
    const started = performance.now();
    const res = await this.post(stream ? '/generate_stream' : '/generate', tgiBody, stream, signal, headers);

    if (!stream) {
      const raw = safeJson(await readText(res, signal));
      // "/" (compat_generate) wraps the answer in an array; /generate does not. Accept both.
      const parsed = tgiGenerateResponseSchema.safeParse(Array.isArray(raw) ? raw[0] : raw);
      if (!parsed.success) throw new EngineError('ENGINE_ERROR', 'TGI /generate answered an unexpected body');
      const promptTokens = Number(res.headers['x-prompt-tokens'] ?? 0) || 0;
      const out = generateResponseToCompletion(parsed.data, head, promptTokens);
      yield { type: 'response', json: JSON.stringify(out) };
      const u = readUsage(out);
      if (u) yield { type: 'usage', ...u, ttftSeconds: 0 };
      return;
    }

    let usage: Usage | null = null;
    let tokens = 0;
    let ttftSeconds = 0;
    let done = false;
    for await (const ev of sseEvents(res, signal)) {
      const parsed = safeJson(ev.data);
      throwIfError(parsed, ev.data, tokens === 0);
      const tok = tgiStreamResponseSchema.safeParse(parsed);
      if (!tok.success) continue;
      tokens++;
      if (ttftSeconds === 0) ttftSeconds = (performance.now() - started) / 1000;
      for (const c of generateEventToChunks(tok.data, head)) {
        const u = readUsage(c);
        if (u) usage = u;
        yield { type: 'chunk', json: JSON.stringify(c) };
      }
      // The last event carries generated_text (and details); TGI then closes the stream (no [DONE]).
      if (tok.data.generated_text !== null && tok.data.generated_text !== undefined) {
        done = true;
        break;
      }
    }
    if (!done) throw new EngineError('ENGINE_ERROR', 'TGI stream ended before its last token');
    yield { type: 'usage', ...(usage ?? { promptTokens: 0, completionTokens: tokens, cachedPromptTokens: 0 }), ttftSeconds };
  }

  private async post(
    path: string,
    payload: Obj,
    stream: boolean,
    signal: AbortSignal,
    headers: Record<string, string>,
  ): Promise<Dispatcher.ResponseData> {
    let res: Dispatcher.ResponseData;
    try {
      res = await request(this.base + path, {
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
    return res;
  }

  health(signal?: AbortSignal): Promise<boolean> {
    return probeHealth(this.base, this.dispatcher, signal);
  }

  async metrics(signal?: AbortSignal): Promise<EngineMetricsSnapshot> {
    return parseTgiMetrics(await fetchMetricsText(this.base, this.dispatcher, signal));
  }

  async models(signal?: AbortSignal): Promise<EngineModel[]> {
    const res = await request(this.base + '/info', {
      method: 'GET',
      signal,
      dispatcher: this.dispatcher,
      headersTimeout: 5_000,
      bodyTimeout: 5_000,
    });
    const raw: unknown = await res.body.json().catch(() => undefined);
    const info = tgiInfoSchema.safeParse(raw);
    if (res.statusCode !== 200 || !info.success) throw new EngineError('ENGINE_UNAVAILABLE', `/info answered ${res.statusCode}`);
    if (this.nativeCompletions === null && this.opts.completions !== 'native') {
      this.nativeCompletions = versionAtLeast(info.data.version, COMPLETIONS_SINCE) ? null : false;
    }
    return [{ name: info.data.model_id, maxContext: info.data.max_total_tokens }];
  }

  async close(): Promise<void> {
    await this.dispatcher.close();
  }
}

async function readText(res: Dispatcher.ResponseData, signal: AbortSignal): Promise<string> {
  try {
    return await res.body.text();
  } catch (err) {
    throw classifyTransportError(err, signal);
  }
}

/** The SSE events of a response body, as they arrive. */
async function* sseEvents(res: Dispatcher.ResponseData, signal: AbortSignal): AsyncIterable<EventSourceMessage> {
  const queue: EventSourceMessage[] = [];
  const parser = createParser({ onEvent: (ev) => queue.push(ev) });
  try {
    for await (const piece of res.body) {
      parser.feed(typeof piece === 'string' ? piece : (piece as Buffer).toString('utf8'));
      while (queue.length > 0) yield queue.shift()!;
    }
  } catch (err) {
    if (err instanceof EngineError) throw err;
    throw classifyTransportError(err, signal);
  } finally {
    // A consumer that stops early (the last /generate_stream token) must not leave the socket busy.
    if (!res.body.destroyed) res.body.destroy();
  }
}

/** TGI reports validation failures of a stream inside it, with status 200: before any token they are the client's fault. */
function throwIfError(parsed: unknown, raw: string, beforeFirstToken: boolean): void {
  const e = tgiErrorMessage(parsed);
  if (!e) return;
  if (beforeFirstToken && isValidationError(e)) throw new EngineError('INVALID_REQUEST', e.message, 400, openAiErrorJson(e.message, 400));
  if (beforeFirstToken && (e.type === 'overloaded' || e.message === 'Model is overloaded'))
    throw new EngineError('ENGINE_OVERLOADED', e.message, 429);
  throw new EngineError('ENGINE_ERROR', e.message, 0, raw);
}

function openAiErrorJson(message: string, code: number): string {
  return JSON.stringify({ error: { message, type: 'BadRequestError', param: null, code } });
}

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

function hasChoices(c: Obj): boolean {
  return Array.isArray(c.choices) && c.choices.length > 0;
}

function readUsage(v: Obj): Usage | null {
  const u = v.usage as { prompt_tokens?: unknown; completion_tokens?: unknown } | null | undefined;
  if (!u || typeof u.prompt_tokens !== 'number') return null;
  return {
    promptTokens: u.prompt_tokens,
    completionTokens: typeof u.completion_tokens === 'number' ? u.completion_tokens : 0,
    cachedPromptTokens: 0,
  };
}

/** TGI status codes (router/src/server.rs, From<InferError>): 422 validation, 424 generation, 429 overloaded, 500 incomplete. */
function classifyHttpError(status: number, text: string): EngineError {
  const parsed = tgiErrorSchema.safeParse(safeJson(text));
  const message = parsed.success ? parsed.data.error : text.slice(0, 500) || `TGI answered ${status}`;
  if (status === 429 || status === 503) return new EngineError('ENGINE_OVERLOADED', message, status);
  // TGI's 422 is OpenAI's and vLLM's 400: answer the router the way a vLLM node would.
  if (status === 422) return new EngineError('INVALID_REQUEST', message, 400, openAiErrorJson(message, 400));
  if (status === 404)
    return new EngineError('INVALID_REQUEST', message || 'route not found', 404, openAiErrorJson(`TGI has no such route (${status})`, 404));
  if (status === 424) return new EngineError('ENGINE_ERROR', message, status);
  if (status >= 400 && status < 500) return new EngineError('INVALID_REQUEST', message, status, openAiErrorJson(message, status));
  return new EngineError('ENGINE_ERROR', message, status);
}
