// Simulated hosted providers on one HTTP server: OpenAI's routes (/v1/chat/completions,
// /v1/completions, /v1/embeddings; Bearer key), Azure OpenAI's deployment routes
// (/openai/deployments/{dep}/...?api-version=; `api-key` header) and Anthropic's Messages API
// (/v1/messages; `x-api-key` + `anthropic-version`). Shapes follow the captures in
// test/fixtures/{openai,azure-openai,anthropic} (a test compares them). Fault switches
// (POST /sim/faults): 429 with Retry-After, 5xx, slow first token, mid-stream drop or error event.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ProviderFaults {
  /** The next `count` generation requests get 429 with `Retry-After: retryAfterSeconds`. */
  rateLimit?: { count: number; retryAfterSeconds: number };
  /** The next `count` requests (-1: all until cleared) get this status (default 500; 529 = Anthropic overloaded). */
  serverError?: { count: number; status?: number };
  /** Delay before the response headers and first event. */
  slowFirstTokenMs?: number;
  /** Streams: close the connection after this many content events. */
  dropAfterChunks?: number;
  /** Anthropic streams: an `event: error` (overloaded_error) after this many content events. */
  errorEventAfterChunks?: number;
}

export interface ProviderSimOptions {
  port?: number;
  host?: string;
  /** The key clients must present; requests without it get 401. */
  apiKey: string;
  /** Pause between streamed events. */
  chunkDelayMs?: number;
}

export interface ProviderSimRequest {
  at: number;
  api: 'openai' | 'azure' | 'anthropic';
  path: string;
  model: string;
  stream: boolean;
  status: number;
  body: Record<string, unknown>;
}

const WORDS = [
  'The',
  ' simulated',
  ' provider',
  ' answers',
  ' in',
  ' small',
  ' pieces',
  ' so',
  ' that',
  ' streaming',
  ' can',
  ' be',
  ' tested',
  ' end',
  ' to',
  ' end',
];

export async function startProviderSim(o: ProviderSimOptions) {
  let faults: ProviderFaults = {};
  const requests: ProviderSimRequest[] = [];
  const delay = o.chunkDelayMs ?? 2;
  let seq = 0;

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { message: String(err), type: 'server_error', param: null, code: null } }));
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse) {
    const url = new URL(req.url ?? '/', 'http://sim');
    const raw = await readBody(req);
    if (url.pathname === '/sim/faults' && req.method === 'POST') {
      faults = JSON.parse(raw || '{}') as ProviderFaults;
      return json(res, 200, { ok: true, faults });
    }
    if (url.pathname === '/sim/state') return json(res, 200, { requests: requests.map(({ body: _b, ...r }) => r), faults });
    if (url.pathname === '/sim/reset' && req.method === 'POST') {
      faults = {};
      requests.length = 0;
      return json(res, 200, { ok: true });
    }
    const azure = /^\/openai\/deployments\/([^/]+)\/(chat\/completions|completions|embeddings)$/.exec(url.pathname);
    const api: ProviderSimRequest['api'] | undefined =
      url.pathname === '/v1/messages'
        ? 'anthropic'
        : azure
          ? 'azure'
          : /^\/v1\/(chat\/completions|completions|embeddings)$/.test(url.pathname)
            ? 'openai'
            : undefined;
    if (!api || req.method !== 'POST')
      return json(res, 404, { error: { message: 'Not found', type: 'invalid_request_error', param: null, code: null } });
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(raw) as Record<string, unknown>;
    } catch {
      return json(
        res,
        400,
        api === 'anthropic'
          ? anthropicError('invalid_request_error', 'Invalid JSON')
          : { error: { message: 'invalid JSON', type: 'invalid_request_error', param: null, code: null } },
      );
    }
    const rec: ProviderSimRequest = {
      at: Date.now(),
      api,
      path: url.pathname,
      model: azure ? decodeURIComponent(azure[1]!) : String(body.model ?? ''),
      stream: body.stream === true,
      status: 200,
      body,
    };
    requests.push(rec);
    const status = (s: number) => {
      rec.status = s;
      return s;
    };

    // Authentication, as each API does it.
    const key =
      api === 'openai'
        ? (req.headers.authorization ?? '').replace(/^Bearer /, '')
        : api === 'azure'
          ? req.headers['api-key']
          : req.headers['x-api-key'];
    if (key !== o.apiKey) {
      if (api === 'anthropic') return json(res, status(401), anthropicError('authentication_error', 'invalid x-api-key'));
      if (api === 'azure')
        return json(res, status(401), {
          error: { code: '401', message: 'Access denied due to invalid subscription key or wrong API endpoint.' },
        });
      return json(res, status(401), {
        error: { message: 'Incorrect API key provided.', type: 'invalid_request_error', param: null, code: 'invalid_api_key' },
      });
    }
    if (api === 'azure' && !url.searchParams.get('api-version'))
      return json(res, status(404), { error: { code: '404', message: 'Resource not found' } });
    if (api === 'anthropic') {
      if (!req.headers['anthropic-version'])
        return json(res, status(400), anthropicError('invalid_request_error', 'anthropic-version: header is required'));
      if (typeof body.max_tokens !== 'number')
        return json(res, status(400), anthropicError('invalid_request_error', 'max_tokens: Field required'));
    }

    if (faults.rateLimit && faults.rateLimit.count > 0) {
      faults.rateLimit.count -= 1;
      const ra = faults.rateLimit.retryAfterSeconds;
      const headers = { 'retry-after': String(ra) };
      if (api === 'anthropic')
        return json(
          res,
          status(429),
          anthropicError('rate_limit_error', "This request would exceed your account's rate limit. Please try again later."),
          headers,
        );
      if (api === 'azure')
        return json(res, status(429), { error: { code: '429', message: `Rate limit is exceeded. Try again in ${ra} seconds.` } }, headers);
      return json(
        res,
        status(429),
        {
          error: {
            message: `Rate limit reached for ${rec.model} on requests per min (RPM). Please try again in ${ra}s.`,
            type: 'requests',
            param: null,
            code: 'rate_limit_exceeded',
          },
        },
        headers,
      );
    }
    if (faults.serverError && faults.serverError.count !== 0) {
      if (faults.serverError.count > 0) faults.serverError.count -= 1;
      const s = faults.serverError.status ?? 500;
      if (api === 'anthropic')
        return json(
          res,
          status(s),
          s === 529 ? anthropicError('overloaded_error', 'Overloaded') : anthropicError('api_error', 'Internal server error'),
        );
      return json(res, status(s), {
        error: {
          message: 'The server had an error while processing your request. Sorry about that!',
          type: 'server_error',
          param: null,
          code: null,
        },
      });
    }
    if (faults.slowFirstTokenMs) await sleep(faults.slowFirstTokenMs);

    const n = ++seq;
    if (url.pathname.endsWith('/embeddings')) return json(res, 200, embeddings(body, rec.model));
    if (api === 'anthropic') return anthropic(res, body, n);
    return openai(res, body, rec.model, url.pathname.endsWith('/chat/completions'), api === 'azure', n);
  }

  // ---- OpenAI / Azure ----
  async function openai(res: ServerResponse, body: Record<string, unknown>, model: string, chat: boolean, azure: boolean, n: number) {
    const id = chat ? `chatcmpl-sim${n}` : `cmpl-sim${n}`;
    const created = Math.floor(Date.now() / 1000);
    const maxTokens = Number(body.max_completion_tokens ?? body.max_tokens ?? 8);
    const tool = chat ? toolToCall(body) : undefined;
    const words = WORDS.slice(0, Math.max(1, Math.min(maxTokens, WORDS.length)));
    const finish = tool ? 'tool_calls' : words.length < maxTokens ? 'stop' : 'length';
    const promptTokens = Math.ceil(JSON.stringify(body.messages ?? body.prompt ?? '').length / 4);
    const completionTokens = tool ? 12 : words.length;
    const usage = { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens };
    const filter = azure ? { content_filter_results: { hate: { filtered: false, severity: 'safe' } } } : {};
    if (body.stream !== true) {
      const message = tool
        ? {
            role: 'assistant',
            content: null,
            tool_calls: [{ id: 'call_sim1', type: 'function', function: { name: tool.name, arguments: tool.args } }],
            refusal: null,
          }
        : { role: 'assistant', content: words.join(''), refusal: null };
      const choice = chat
        ? { index: 0, message, logprobs: null, finish_reason: finish, ...filter }
        : { index: 0, text: words.join(''), logprobs: null, finish_reason: finish };
      return json(res, 200, {
        id,
        object: chat ? 'chat.completion' : 'text_completion',
        created,
        model,
        choices: [choice],
        usage,
        system_fingerprint: null,
        ...(azure ? { prompt_filter_results: [{ prompt_index: 0, content_filter_results: {} }] } : {}),
      });
    }
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' });
    const includeUsage = (body.stream_options as { include_usage?: boolean } | undefined)?.include_usage === true;
    const u = includeUsage ? { usage: null } : {};
    const object = chat ? 'chat.completion.chunk' : 'text_completion';
    const send = (choices: unknown[], extra: Record<string, unknown> = u) =>
      res.write(`data: ${JSON.stringify({ id, object, created, model, system_fingerprint: null, choices, ...extra })}\n\n`);
    // Azure's first chunk: no choices, only prompt filter results (test/fixtures/azure-openai).
    if (azure)
      res.write(
        `data: ${JSON.stringify({ choices: [], created: 0, id: '', model: '', object: '', prompt_filter_results: [{ prompt_index: 0, content_filter_results: {} }] })}\n\n`,
      );
    const pieces: unknown[] = [];
    if (chat) {
      pieces.push({
        index: 0,
        delta: { role: 'assistant', content: tool ? null : '', refusal: null },
        logprobs: null,
        finish_reason: null,
      });
      if (tool) {
        pieces.push({
          index: 0,
          delta: { tool_calls: [{ index: 0, id: 'call_sim1', type: 'function', function: { name: tool.name, arguments: '' } }] },
          logprobs: null,
          finish_reason: null,
        });
        for (const part of splitJson(tool.args))
          pieces.push({
            index: 0,
            delta: { tool_calls: [{ index: 0, function: { arguments: part } }] },
            logprobs: null,
            finish_reason: null,
          });
      } else {
        for (const w of words) pieces.push({ index: 0, delta: { content: w }, logprobs: null, finish_reason: null, ...filter });
      }
      pieces.push({ index: 0, delta: {}, logprobs: null, finish_reason: finish });
    } else {
      for (const w of words) pieces.push({ index: 0, text: w, logprobs: null, finish_reason: null });
      pieces.push({ index: 0, text: '', logprobs: null, finish_reason: finish });
    }
    let sent = 0;
    for (const p of pieces) {
      if (faults.dropAfterChunks !== undefined && sent >= faults.dropAfterChunks) return res.destroy();
      send([p]);
      sent++;
      await sleep(delay);
    }
    if (includeUsage) send([], { usage });
    res.end('data: [DONE]\n\n');
  }

  // ---- Anthropic ----
  async function anthropic(res: ServerResponse, body: Record<string, unknown>, n: number) {
    const model = String(body.model);
    const id = `msg_sim${String(n).padStart(6, '0')}`;
    const tool = anthropicToolToCall(body);
    const maxTokens = body.max_tokens as number;
    const words = WORDS.slice(0, Math.max(1, Math.min(maxTokens, WORDS.length)));
    const stopSeq = (body.stop_sequences as string[] | undefined)?.find((s) => words.join('').includes(s));
    const text = stopSeq ? words.join('').slice(0, words.join('').indexOf(stopSeq)) : words.join('');
    const stopReason = tool ? 'tool_use' : stopSeq ? 'stop_sequence' : words.length < maxTokens ? 'end_turn' : 'max_tokens';
    const inputTokens = Math.ceil((JSON.stringify(body.messages).length + String(body.system ?? '').length) / 4);
    const outputTokens = tool ? 12 : words.length;
    const usageStart = {
      input_tokens: inputTokens,
      cache_creation_input_tokens: 0,
      cache_read_input_tokens: 0,
      cache_creation: { ephemeral_5m_input_tokens: 0, ephemeral_1h_input_tokens: 0 },
      output_tokens: 1,
      service_tier: 'standard',
    };
    if (body.stream !== true) {
      const content = tool
        ? [{ type: 'tool_use', id: 'toolu_sim1', name: tool.name, input: JSON.parse(tool.args) as unknown }]
        : [{ type: 'text', text }];
      return json(res, 200, {
        model,
        id,
        type: 'message',
        role: 'assistant',
        content,
        stop_reason: stopReason,
        stop_sequence: stopSeq ?? null,
        usage: { ...usageStart, output_tokens: outputTokens },
      });
    }
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' });
    const send = (type: string, data: Record<string, unknown>) =>
      res.write(`event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`);
    send('message_start', {
      message: { model, id, type: 'message', role: 'assistant', content: [], stop_reason: null, stop_sequence: null, usage: usageStart },
    });
    send('content_block_start', {
      index: 0,
      content_block: tool ? { type: 'tool_use', id: 'toolu_sim1', name: tool.name, input: {} } : { type: 'text', text: '' },
    });
    res.write('event: ping\ndata: {"type": "ping"}\n\n');
    const deltas = tool
      ? ['', ...splitJson(tool.args)].map((p) => ({ type: 'input_json_delta', partial_json: p }))
      : splitText(text).map((t) => ({ type: 'text_delta', text: t }));
    let sent = 0;
    for (const d of deltas) {
      if (faults.dropAfterChunks !== undefined && sent >= faults.dropAfterChunks) return res.destroy();
      if (faults.errorEventAfterChunks !== undefined && sent >= faults.errorEventAfterChunks) {
        res.write('event: error\ndata: {"type":"error","error":{"details":null,"type":"overloaded_error","message":"Overloaded"} }\n\n');
        return res.end();
      }
      send('content_block_delta', { index: 0, delta: d });
      sent++;
      await sleep(delay);
    }
    send('content_block_stop', { index: 0 });
    send('message_delta', {
      delta: { stop_reason: stopReason, stop_sequence: stopSeq ?? null },
      usage: { input_tokens: inputTokens, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: outputTokens },
    });
    send('message_stop', {});
    res.end();
  }

  await new Promise<void>((resolve) => server.listen(o.port ?? 0, o.host ?? '127.0.0.1', resolve));
  const addr = server.address() as AddressInfo;
  return {
    url: `http://${addr.address}:${addr.port}`,
    requests,
    setFaults(f: ProviderFaults) {
      faults = f;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function toolToCall(body: Record<string, unknown>): { name: string; args: string } | undefined {
  const tools = body.tools as { function: { name: string; parameters?: { properties?: Record<string, { type?: string }> } } }[] | undefined;
  const msgs = body.messages as { role: string }[] | undefined;
  if (!tools?.length || body.tool_choice === 'none' || msgs?.[msgs.length - 1]?.role === 'tool') return undefined;
  return { name: tools[0]!.function.name, args: argsFor(tools[0]!.function.parameters?.properties) };
}

function anthropicToolToCall(body: Record<string, unknown>): { name: string; args: string } | undefined {
  const tools = body.tools as { name: string; input_schema?: { properties?: Record<string, { type?: string }> } }[] | undefined;
  const msgs = body.messages as { role: string; content: { type: string }[] | string }[];
  const last = msgs[msgs.length - 1];
  const afterResult = Array.isArray(last?.content) && last.content.some((b) => b.type === 'tool_result');
  if (!tools?.length || (body.tool_choice as { type?: string } | undefined)?.type === 'none' || afterResult) return undefined;
  return { name: tools[0]!.name, args: argsFor(tools[0]!.input_schema?.properties) };
}

function argsFor(props: Record<string, { type?: string }> | undefined): string {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(props ?? {}))
    out[k] = v.type === 'number' || v.type === 'integer' ? 42 : v.type === 'boolean' ? true : 'Paris';
  return JSON.stringify(out);
}

/** A JSON text in three pieces, as the providers stream tool arguments. */
function splitJson(s: string): string[] {
  const a = Math.floor(s.length / 3);
  return [s.slice(0, a), s.slice(a, 2 * a), s.slice(2 * a)].filter(Boolean);
}

function splitText(s: string): string[] {
  return s.match(/\s*\S+/g) ?? [s];
}

/**
 * OpenAI's CreateEmbeddingResponse: `{object: 'list', data: [{object: 'embedding', index,
 * embedding}], model, usage: {prompt_tokens, total_tokens}}`; `encoding_format: 'base64'` (what
 * the openai SDK asks for by default) gives little-endian float32 bytes in base64; `dimensions`
 * shortens the vector (default 8). Vectors depend on the text; tokens are ~4 characters each.
 */
function embeddings(body: Record<string, unknown>, model: string) {
  const input = (Array.isArray(body.input) ? body.input : [body.input]).map((x) => (typeof x === 'string' ? x : JSON.stringify(x)));
  const dims = typeof body.dimensions === 'number' ? body.dimensions : 8;
  const tokens = input.reduce((n, t) => n + Math.max(1, Math.ceil(t.length / 4)), 0);
  const data = input.map((text, index) => {
    const v = Float32Array.from({ length: dims }, (_, i) => ((text.charCodeAt(i % Math.max(1, text.length)) || 0) % 97) / 97 + i / 100);
    const embedding = body.encoding_format === 'base64' ? Buffer.from(v.buffer).toString('base64') : Array.from(v);
    return { object: 'embedding', index, embedding };
  });
  return { object: 'list', data, model, usage: { prompt_tokens: tokens, total_tokens: tokens } };
}

function anthropicError(type: string, message: string) {
  return { type: 'error', error: { type, message }, request_id: `req_sim${Date.now()}` };
}

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let s = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (s += c));
    req.on('end', () => resolve(s));
    req.on('error', reject);
  });
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
