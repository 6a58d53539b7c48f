// The vLLM simulator's HTTP server: vLLM's OpenAI routes, /health, /metrics, plus test-only
// /sim/faults and /sim/state. node:http (not fastify) because the fault switches need the raw
// socket: hang forever, destroy the connection mid-stream.
import { StepLoop } from '../step-loop.ts';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { z } from 'zod';
import { BatchingEngine, type EngineState } from './batching.ts';
import { createSimMetrics, type MetricsNaming } from './metrics.ts';
import { estimateTokens, fnv1a, planOutput, prefixBlockHashes, TOKENS_PER_CHAT_MESSAGE } from './text.ts';
import {
  chatFirstChunk,
  chatPromptText,
  chatRequestSchema,
  chatResponse,
  chatTokenChunk,
  completionRequestSchema,
  completionResponse,
  completionTokenChunk,
  errorBody,
  modelList,
  requestId,
  usage,
  usageChunk,
  type ChunkHead,
  type ErrorType,
} from './wire.ts';

export interface VllmSimOptions {
  host?: string;
  port?: number;
  model: string;
  maxModelLen?: number;
  maxNumSeqs?: number;
  kvCacheTokens?: number;
  blockSize?: number;
  prefillMsPerToken?: number;
  decodeStepMs?: number;
  decodeStepMsPerSeq?: number;
  /** the HTTP server does not listen until this elapses, like a real vLLM loading weights */
  loadTimeMs?: number;
  speed?: number;
  seed?: number;
  faults?: Partial<SimFaults>;
  /** 'legacy' exposes the pre-0.11 metric names (gpu_cache_usage_perc, ...) */
  metricsNaming?: MetricsNaming;
  /** range of the deterministic natural output length (tokens, end-of-sequence included) */
  outputTokens?: { min: number; max: number };
}

export interface SimFaults {
  failAfterTokens: number | null;
  http5xx: boolean;
  engineDead: boolean;
  hang: boolean;
  slowdown: number;
  dropConnection: boolean;
  /** A request whose body contains this text gets a 500 (a deterministic per-item fault). */
  http5xxWhenBodyContains: string | null;
}

export interface VllmSim {
  url: string;
  port: number;
  state(): EngineState;
  setFaults(f: Partial<SimFaults>): void;
  close(): Promise<void>;
}

const DEFAULT_FAULTS: SimFaults = {
  failAfterTokens: null,
  http5xx: false,
  engineDead: false,
  hang: false,
  slowdown: 1,
  dropConnection: false,
  http5xxWhenBodyContains: null,
};
const faultsSchema = z.strictObject({
  failAfterTokens: z.int().min(0).nullable().optional(),
  http5xx: z.boolean().optional(),
  engineDead: z.boolean().optional(),
  hang: z.boolean().optional(),
  slowdown: z.number().positive().optional(),
  dropConnection: z.boolean().optional(),
  http5xxWhenBodyContains: z.string().min(1).nullable().optional(),
});
const MAX_BODY_BYTES = 8 * 1024 * 1024;
/** vLLM's EngineDeadError text */
const ENGINE_DEAD_MESSAGE = 'EngineCore encountered an issue. See stack trace (above) for the root cause.';

interface NormalizedRequest {
  model: string;
  stream: boolean;
  hasStreamOptions: boolean;
  includeUsage: boolean;
  requestedMax: number | null;
  promptText: string;
  promptTokens: number;
  /** the request's `seed`: varies the output like a sampling seed would */
  seed: number | null;
  /** vLLM's `ignore_eos` sampling parameter: no natural stop, generate up to max_tokens */
  ignoreEos: boolean;
}

/** Validate either route's body and reduce it to what the simulator uses. */
function normalizeRequest(kind: 'chat' | 'completion', raw: unknown): NormalizedRequest | { error: string; param: string | null } {
  const fail = (e: z.ZodError) => ({ error: z.prettifyError(e), param: e.issues[0]?.path.join('.') || null });
  if (kind === 'chat') {
    const p = chatRequestSchema.safeParse(raw);
    if (!p.success) return fail(p.error);
    const b = p.data;
    return {
      model: b.model,
      stream: b.stream === true,
      hasStreamOptions: b.stream_options != null,
      includeUsage: b.stream_options?.include_usage === true,
      requestedMax: b.max_completion_tokens ?? b.max_tokens ?? null,
      seed: b.seed ?? null,
      ignoreEos: b.ignore_eos === true,
      promptText: chatPromptText(b.messages),
      // each message's text plus the template's per-message markers, plus the assistant header
      promptTokens: b.messages.reduce((n, m) => n + estimateTokens(chatPromptText([m])) + TOKENS_PER_CHAT_MESSAGE, 0) + 3,
    };
  }
  const p = completionRequestSchema.safeParse(raw);
  if (!p.success) return fail(p.error);
  const b = p.data;
  const promptText = typeof b.prompt === 'string' ? b.prompt : b.prompt.join('');
  return {
    model: b.model,
    stream: b.stream === true,
    hasStreamOptions: b.stream_options != null,
    includeUsage: b.stream_options?.include_usage === true,
    requestedMax: b.max_tokens ?? null,
    seed: b.seed ?? null,
    ignoreEos: b.ignore_eos === true,
    promptText,
    promptTokens: estimateTokens(promptText),
  };
}

/** One in-flight generation, so faults and shutdown can reach it. */
interface InFlight {
  fail(message: string): void;
  abort(): void;
}

export async function startVllmSim(opts: VllmSimOptions): Promise<VllmSim> {
  const o = {
    host: opts.host ?? '127.0.0.1',
    port: opts.port ?? 0,
    model: opts.model,
    maxModelLen: opts.maxModelLen ?? 8192,
    seed: opts.seed ?? 0,
    loadTimeMs: opts.loadTimeMs ?? 0,
    outputTokens: opts.outputTokens ?? { min: 16, max: 64 },
  };
  const faults: SimFaults = { ...DEFAULT_FAULTS, ...opts.faults };
  const engineCfg = {
    maxNumSeqs: opts.maxNumSeqs ?? 16,
    kvCacheTokens: opts.kvCacheTokens ?? 65536,
    blockSize: opts.blockSize ?? 16,
    prefillMsPerToken: opts.prefillMsPerToken ?? 0.05,
    decodeStepMs: opts.decodeStepMs ?? 10,
    decodeStepMsPerSeq: opts.decodeStepMsPerSeq ?? 0.5,
    speed: opts.speed ?? 1,
    slowdown: faults.slowdown,
  };
  // the metrics' collect callbacks read the engine lazily, after it exists
  const metrics = createSimMetrics(o.model, opts.metricsNaming ?? 'current', () => engine);
  const engine: BatchingEngine = new BatchingEngine(engineCfg, () => performance.now(), metrics.observer);
  const created = Math.floor(Date.now() / 1000);
  const fingerprint = `vllm-sim-${fnv1a(o.model).toString(16)}`;
  const inflight = new Set<InFlight>();
  const hung = new Set<ServerResponse>();
  let closing = false;

  const loop = new StepLoop(engine);
  const kick = () => {
    if (!closing) loop.kick();
  };

  const setFaults = (f: Partial<SimFaults>) => {
    Object.assign(faults, f);
    engine.config.slowdown = faults.slowdown;
    if (faults.engineDead) for (const g of [...inflight]) g.fail(ENGINE_DEAD_MESSAGE);
  };

  const sendJson = (res: ServerResponse, status: number, body: unknown) => {
    const data = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) });
    res.end(data);
  };
  const sendError = (res: ServerResponse, status: number, type: ErrorType, message: string, param: string | null = null) =>
    sendJson(res, status, errorBody(message, type, status, param));

  const readBody = (req: IncomingMessage) =>
    new Promise<string>((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      req.on('data', (c: Buffer) => {
        size += c.length;
        if (size > MAX_BODY_BYTES) {
          reject(new Error('request body too large'));
          req.destroy();
          return;
        }
        chunks.push(c);
      });
      req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
      req.on('error', reject);
    });

  async function handleGeneration(kind: 'chat' | 'completion', req: IncomingMessage, res: ServerResponse) {
    let raw: unknown;
    let rawText: string;
    try {
      rawText = await readBody(req);
      raw = JSON.parse(rawText);
    } catch (e) {
      return sendError(res, 400, 'BadRequestError', `Invalid JSON body: ${(e as Error).message}`);
    }
    const parsed = normalizeRequest(kind, raw);
    if ('error' in parsed) return sendError(res, 400, 'BadRequestError', parsed.error, parsed.param);
    const body = parsed;
    if (body.model !== o.model) return sendError(res, 404, 'NotFoundError', `The model \`${body.model}\` does not exist.`, 'model');
    if (body.hasStreamOptions && !body.stream)
      return sendError(res, 400, 'BadRequestError', 'Stream options can only be defined when `stream=True`.', 'stream_options');
    if (faults.engineDead) return sendError(res, 500, 'InternalServerError', ENGINE_DEAD_MESSAGE);
    if (faults.http5xx) return sendError(res, 500, 'InternalServerError', 'Simulated internal server error.');
    if (faults.http5xxWhenBodyContains && rawText.includes(faults.http5xxWhenBodyContains))
      return sendError(res, 500, 'InternalServerError', 'Simulated internal server error (keyed on the request body).');
    if (faults.dropConnection && !body.stream) {
      res.socket?.destroy();
      return;
    }
    if (faults.hang) {
      hung.add(res);
      res.on('close', () => hung.delete(res));
      return; // accepted, never answered
    }

    const { promptText, promptTokens, requestedMax } = body;
    if (promptTokens + (requestedMax ?? 0) > o.maxModelLen || promptTokens >= o.maxModelLen) {
      return sendError(
        res,
        400,
        'BadRequestError',
        `This model's maximum context length is ${o.maxModelLen} tokens. However, you requested ${requestedMax ?? 0} output tokens and your prompt contains ${promptTokens} input tokens, for a total of ${promptTokens + (requestedMax ?? 0)} tokens. Please reduce the length of the input prompt or the number of requested output tokens.`,
        'input_tokens',
      );
    }
    const maxTokens = requestedMax ?? o.maxModelLen - promptTokens;
    const plan = planOutput(
      body.seed === null ? o.seed : fnv1a(String(body.seed), o.seed),
      promptText,
      o.outputTokens.min,
      o.outputTokens.max,
    );
    const head: ChunkHead = {
      id: requestId(kind === 'chat' ? 'chatcmpl' : 'cmpl'),
      created: Math.floor(Date.now() / 1000),
      model: o.model,
    };
    const stream = body.stream;
    const includeUsage = stream && body.includeUsage;
    const objectType = kind === 'chat' ? ('chat.completion.chunk' as const) : ('text_completion' as const);

    let done = false;
    let generated = 0;
    let text = '';
    let cachedTokens = 0;
    const write = (obj: unknown) => res.write(`data: ${JSON.stringify(obj)}\n\n`);
    const finishUp = () => {
      done = true;
      inflight.delete(g);
    };
    const g: InFlight = {
      fail(message) {
        if (done) return;
        finishUp();
        engine.abort(head.id);
        if (!stream) return sendError(res, 500, 'InternalServerError', message);
        // vLLM: an error inside the stream generator becomes one error event, then [DONE]
        write(errorBody(message, 'InternalServerError', 500));
        res.end('data: [DONE]\n\n');
      },
      abort() {
        if (done) return;
        finishUp();
        engine.abort(head.id);
        res.destroy();
      },
    };
    // A client that goes away aborts its sequence at once: slot and KV blocks are freed.
    res.on('close', () => {
      if (!done) {
        finishUp();
        engine.abort(head.id);
      }
    });

    if (stream) {
      res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive' });
      res.flushHeaders(); // the client sees 200 before the first token, as with vLLM's streaming response
    }
    if (faults.failAfterTokens === 0) return g.fail('Simulated failure after 0 tokens.');
    inflight.add(g);

    try {
      engine.submit({
        id: head.id,
        promptTokens,
        naturalTokens: body.ignoreEos ? maxTokens : plan.naturalTokens,
        maxTokens,
        prefixHashes: prefixBlockHashes(promptText, engineCfg.blockSize),
        nextWord: plan.nextWord,
        listener: {
          onAdmitted(cached) {
            cachedTokens = cached;
          },
          onToken(index, tokenText, finish) {
            if (done) return;
            generated++;
            text += tokenText;
            if (stream) {
              if (index === 0 && kind === 'chat') write(chatFirstChunk(head));
              const chunk = kind === 'chat' ? chatTokenChunk(head, tokenText, finish) : completionTokenChunk(head, tokenText, finish);
              if (faults.dropConnection) {
                // let the token reach the client first, then cut the connection: no [DONE], no error event
                finishUp();
                engine.abort(head.id);
                const socket = res.socket;
                res.write(`data: ${JSON.stringify(chunk)}\n\n`, () => socket?.destroy());
                return;
              }
              write(chunk);
            }
            if (finish) {
              finishUp();
              const u = usage(promptTokens, generated, stream ? cachedTokens : null);
              if (!stream)
                return sendJson(
                  res,
                  200,
                  kind === 'chat' ? chatResponse(head, text, finish, u) : completionResponse(head, text, finish, u),
                );
              if (includeUsage) write(usageChunk(head, objectType, u, fingerprint));
              res.end('data: [DONE]\n\n');
              return;
            }
            if (faults.failAfterTokens !== null && generated >= faults.failAfterTokens)
              g.fail(`Simulated failure after ${generated} tokens.`);
          },
        },
      });
    } catch (e) {
      finishUp();
      if (stream) {
        write(errorBody((e as Error).message, 'BadRequestError', 400));
        res.end('data: [DONE]\n\n');
        return;
      }
      return sendError(res, 400, 'BadRequestError', (e as Error).message);
    }
    kick();
  }

  async function route(req: IncomingMessage, res: ServerResponse) {
    const path = (req.url ?? '/').split('?')[0];
    const method = req.method ?? 'GET';
    if (method === 'POST' && path === '/v1/chat/completions') return handleGeneration('chat', req, res);
    if (method === 'POST' && path === '/v1/completions') return handleGeneration('completion', req, res);
    if (method === 'GET' && path === '/v1/models') return sendJson(res, 200, modelList(o.model, o.maxModelLen, created));
    if (method === 'GET' && path === '/health') {
      // vLLM: 200 with an empty body; 503 once the engine core is dead
      res.writeHead(faults.engineDead ? 503 : 200, { 'content-length': 0 });
      return res.end();
    }
    if (method === 'GET' && path === '/metrics') {
      const text = await metrics.registry.metrics();
      res.writeHead(200, { 'content-type': metrics.registry.contentType });
      return res.end(text);
    }
    if (method === 'GET' && path === '/sim/state') return sendJson(res, 200, engine.state());
    if (method === 'POST' && path === '/sim/faults') {
      let raw: unknown;
      try {
        raw = JSON.parse(await readBody(req));
      } catch {
        return sendError(res, 400, 'BadRequestError', 'Invalid JSON body');
      }
      const f = faultsSchema.safeParse(raw);
      if (!f.success) return sendError(res, 400, 'BadRequestError', z.prettifyError(f.error));
      setFaults(f.data as Partial<SimFaults>);
      return sendJson(res, 200, faults);
    }
    // FastAPI's 404 body for an unknown route
    return sendJson(res, 404, { detail: 'Not Found' });
  }

  // Like vLLM: nothing listens while the model "loads".
  if (o.loadTimeMs > 0) await new Promise((r) => setTimeout(r, o.loadTimeMs));

  const sockets = new Set<Socket>();
  const server: Server = createServer((req, res) => {
    route(req, res).catch((e: unknown) => {
      if (!res.headersSent) sendError(res, 500, 'InternalServerError', (e as Error).message);
      else res.destroy();
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;

  return {
    url: `http://${o.host}:${port}`,
    port,
    state: () => engine.state(),
    setFaults,
    close: async () => {
      if (closing) return;
      closing = true;
      for (const g of [...inflight]) g.abort();
      engine.abortAll();
      loop.stop();
      for (const r of hung) r.destroy();
      const closed = new Promise<void>((r) => server.close(() => r()));
      for (const s of sockets) s.destroy();
      await closed;
    },
  };
}
