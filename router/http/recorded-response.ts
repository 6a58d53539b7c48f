// A generation response as it was served (status, the headers that matter, the JSON body or the
// SSE frames, usage), recorded while it is served, and a writer that serves it again. Shared by
// the response cache (router/cache/) and idempotency keys: both answer a request with a response
// someone already paid for. A recorded stream can answer a non-streaming request (the chunks are
// assembled into one completion) and a recorded JSON answer can be replayed as a stream (split
// into chunks); where that cannot be done faithfully (logprobs) `canReplay` says no.
import type { FastifyReply } from 'fastify';
import type { ServerResponse } from 'node:http';
import { setOwn } from '../../common/own.ts';
import { isUsageOnlyChunk, omitDisallowedNulls, withNullUsage } from '../../common/openai-wire.ts';

export type Usage = { promptTokens: number; completionTokens: number };

export interface RecordedResponse {
  /** Format version: stored records from an older router are ignored, not misread. */
  v: 1;
  status: number;
  /** `chat.completion` or `text_completion` (chunks: `chat.completion.chunk` / `text_completion`). */
  object: 'chat.completion' | 'text_completion';
  /** Headers worth replaying (lower-case names), e.g. `x-backend` of the original answer. */
  headers: Record<string, string>;
  /** The JSON body, for a response that was served as JSON. */
  body?: string;
  /** The SSE `data:` payloads in order (chunk JSON, the usage-only chunk included; no `[DONE]`). */
  frames?: string[];
  usage?: Usage;
  /** When it was recorded (ms since epoch). */
  at: number;
}

/** Builds a RecordedResponse from what a handler writes; `finish()` when the response completed. */
export class ResponseRecorder {
  private readonly headers: Record<string, string> = {};
  private body: string | undefined;
  private readonly frames: string[] = [];
  private usageSeen: Usage | undefined;

  constructor(private readonly object: RecordedResponse['object']) {}

  header(name: string, value: string): this {
    setOwn(this.headers, name.toLowerCase(), value);
    return this;
  }

  json(body: string): this {
    this.body = body;
    return this;
  }

  frame(data: string): this {
    this.frames.push(data);
    return this;
  }

  usage(u: Usage): this {
    this.usageSeen = { promptTokens: u.promptTokens, completionTokens: u.completionTokens };
    return this;
  }

  /** Approximate size in bytes (for byte-bounded stores) of what has been recorded so far. */
  get size(): number {
    return (this.body?.length ?? 0) + this.frames.reduce((n, f) => n + f.length + 8, 0);
  }

  finish(status = 200): RecordedResponse {
    const rec: RecordedResponse = { v: 1, status, object: this.object, headers: { ...this.headers }, at: Date.now() };
    if (this.body !== undefined) rec.body = this.body;
    else rec.frames = [...this.frames];
    if (this.usageSeen) rec.usage = this.usageSeen;
    return rec;
  }
}

/** Approximate stored size of a record in bytes. */
export function recordSize(rec: RecordedResponse): number {
  return 200 + (rec.body?.length ?? 0) + (rec.frames ?? []).reduce((n, f) => n + f.length + 8, 0);
}

/** Parses a stored record (JSON text); undefined when it is not one this router understands. */
export function parseRecord(text: string): RecordedResponse | undefined {
  try {
    const r = JSON.parse(text) as Partial<RecordedResponse>;
    if (r.v !== 1 || typeof r.status !== 'number' || (r.object !== 'chat.completion' && r.object !== 'text_completion')) return undefined;
    if (typeof r.body !== 'string' && !(Array.isArray(r.frames) && r.frames.every((f) => typeof f === 'string'))) return undefined;
    return r as RecordedResponse;
  } catch {
    return undefined;
  }
}

type Json = Record<string, unknown>;
type ChoiceOut = { index: number; message?: Json; text?: string; finish_reason: unknown; logprobs: null };

/** True when `rec` can answer a request of this stream-ness faithfully. */
export function canReplay(rec: RecordedResponse, stream: boolean): boolean {
  if (rec.status !== 200) return false;
  if (stream ? rec.frames !== undefined : rec.body !== undefined) return true;
  try {
    return stream ? toFrames(rec) !== undefined : toBody(rec) !== undefined;
  } catch {
    return false;
  }
}

/** The JSON completion of a record (assembled from its chunks when it was a stream). */
export function toBody(rec: RecordedResponse): string | undefined {
  if (rec.body !== undefined) return rec.body;
  const chunks = (rec.frames ?? []).map((f) => JSON.parse(f) as Json);
  const first = chunks[0];
  if (!first) return undefined;
  const chat = rec.object === 'chat.completion';
  const choices = new Map<number, { content: string; role: string; finish: unknown; tools: Json[]; seen: boolean }>();
  let usage: unknown = null;
  for (const c of chunks) {
    if (c.usage) usage = c.usage;
    for (const ch of (c.choices as Json[] | undefined) ?? []) {
      if (ch.logprobs !== undefined && ch.logprobs !== null) return undefined; // not reassembled faithfully
      const i = typeof ch.index === 'number' ? ch.index : 0;
      const acc = choices.get(i) ?? { content: '', role: 'assistant', finish: null, tools: [], seen: false };
      choices.set(i, acc);
      acc.seen = true;
      if (ch.finish_reason !== undefined && ch.finish_reason !== null) acc.finish = ch.finish_reason;
      if (!chat) {
        if (typeof ch.text === 'string') acc.content += ch.text;
        continue;
      }
      const delta = (ch.delta ?? {}) as Json;
      if (typeof delta.role === 'string') acc.role = delta.role;
      if (typeof delta.content === 'string') acc.content += delta.content;
      for (const t of (delta.tool_calls as Json[] | undefined) ?? []) {
        const ti = typeof t.index === 'number' ? t.index : acc.tools.length;
        const fn = (t.function ?? {}) as Json;
        const slot = acc.tools[ti] ?? (acc.tools[ti] = { id: t.id, type: t.type ?? 'function', function: { name: '', arguments: '' } });
        if (t.id) slot.id = t.id;
        const sf = slot.function as { name: string; arguments: string };
        if (typeof fn.name === 'string') sf.name += fn.name;
        if (typeof fn.arguments === 'string') sf.arguments += fn.arguments;
      }
    }
  }
  const out: ChoiceOut[] = [...choices.entries()]
    .sort((a, b) => a[0] - b[0])
    .map(([index, a]) => {
      if (!chat) return { index, text: a.content, finish_reason: a.finish, logprobs: null };
      const message: Json = { role: a.role, content: a.tools.length && a.content === '' ? null : a.content };
      if (a.tools.length) message.tool_calls = a.tools.filter(Boolean);
      return { index, message, finish_reason: a.finish, logprobs: null };
    });
  if (!usage && rec.usage)
    usage = {
      prompt_tokens: rec.usage.promptTokens,
      completion_tokens: rec.usage.completionTokens,
      total_tokens: rec.usage.promptTokens + rec.usage.completionTokens,
    };
  const body: Json = { id: first.id, object: rec.object, created: first.created, model: first.model, choices: out, usage };
  if (first.system_fingerprint !== undefined) body.system_fingerprint = first.system_fingerprint;
  return JSON.stringify(body);
}

/** The SSE payloads of a record (split from its JSON completion when it was not a stream). */
export function toFrames(rec: RecordedResponse): string[] | undefined {
  if (rec.frames !== undefined) return rec.frames;
  const body = JSON.parse(rec.body!) as Json;
  const chat = rec.object === 'chat.completion';
  const base = {
    id: body.id,
    object: chat ? 'chat.completion.chunk' : 'text_completion',
    created: body.created,
    model: body.model,
    ...(body.system_fingerprint !== undefined ? { system_fingerprint: body.system_fingerprint } : {}),
  };
  const frames: string[] = [];
  for (const ch of (body.choices as Json[] | undefined) ?? []) {
    if (ch.logprobs !== undefined && ch.logprobs !== null) return undefined;
    const index = ch.index ?? 0;
    if (chat) {
      const msg = (ch.message ?? {}) as Json;
      const delta: Json = { role: msg.role ?? 'assistant', content: msg.content ?? '' };
      if (Array.isArray(msg.tool_calls)) delta.tool_calls = (msg.tool_calls as Json[]).map((t, i) => ({ index: i, ...t }));
      frames.push(JSON.stringify({ ...base, choices: [{ index, delta, logprobs: null, finish_reason: null }] }));
      frames.push(JSON.stringify({ ...base, choices: [{ index, delta: {}, logprobs: null, finish_reason: ch.finish_reason ?? 'stop' }] }));
    } else {
      frames.push(JSON.stringify({ ...base, choices: [{ index, text: ch.text ?? '', logprobs: null, finish_reason: null }] }));
      frames.push(JSON.stringify({ ...base, choices: [{ index, text: '', logprobs: null, finish_reason: ch.finish_reason ?? 'stop' }] }));
    }
  }
  if (body.usage) frames.push(JSON.stringify({ ...base, choices: [], usage: body.usage }));
  return frames;
}

// Moved to common/openai-wire.ts (the agent normalises too); re-exported for router imports.
export { isUsageOnlyChunk, withNullUsage, omitDisallowedNulls };

export interface ReplayOptions {
  stream: boolean;
  /** stream_options.include_usage: keep the usage-only chunk. */
  includeUsage?: boolean;
  /** Headers to add (and override the recorded ones), e.g. `x-cache`. */
  headers?: Record<string, string>;
  /** Resume a stream after this many frames (Last-Event-ID); frames carry `id: <n>` when set. */
  fromFrame?: number;
}

/**
 * Serves a record again on `reply`: JSON through fastify (its hooks and headers apply), or SSE
 * written to the raw socket after the headers already set on the reply. Call `canReplay` first.
 */
export async function replay(reply: FastifyReply, rec: RecordedResponse, opts: ReplayOptions): Promise<void> {
  const headers = { ...rec.headers, ...opts.headers };
  if (!opts.stream) {
    const body = toBody(rec);
    if (body === undefined) throw new Error('record cannot be replayed as JSON');
    reply.code(rec.status).headers(headers).header('content-type', 'application/json');
    await reply.send(body);
    return;
  }
  const frames = toFrames(rec);
  if (frames === undefined) throw new Error('record cannot be replayed as a stream');
  reply.hijack();
  const res = reply.raw;
  res.writeHead(rec.status, {
    ...(reply.getHeaders() as Record<string, string>),
    ...headers,
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache',
    connection: 'keep-alive',
  });
  const withIds = opts.fromFrame !== undefined;
  let out = '';
  for (let i = opts.fromFrame ?? 0; i < frames.length; i++) {
    const f = frames[i]!;
    if (!opts.includeUsage && isUsageOnlyChunk(f)) continue;
    const data = opts.includeUsage ? withNullUsage(f) : f;
    out += withIds ? `id: ${i + 1}\ndata: ${data}\n\n` : `data: ${data}\n\n`;
  }
  res.end(`${out}data: [DONE]\n\n`);
}

/**
 * Writes with backpressure: a slow client slows its own stream, not the router's memory. A client
 * that left is not written to (its idempotent generation may go on without it).
 */
export function writeWithBackpressure(res: ServerResponse, data: string): Promise<void> | void {
  if (res.destroyed || res.write(data)) return;
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}
