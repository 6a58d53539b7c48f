// The TGI simulator's HTTP server: TGI's routes (/generate, /generate_stream, /v1/chat/completions,
// /v1/completions, /health, /info, /metrics, /v1/models) on the same continuous-batching model as
// the vLLM simulator (../vllm/batching.ts, ../vllm/text.ts), plus the same test-only /sim/faults
// and /sim/state. node:http for the same reason as the vLLM sim: faults need the raw socket.
import { StepLoop } from '../step-loop.ts';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { BatchingEngine, type EngineState } from '../vllm/batching.ts';
import { estimateTokens, fnv1a, planOutput, prefixBlockHashes, TOKENS_PER_CHAT_MESSAGE } from '../vllm/text.ts';
import { chatPromptText } from '../vllm/wire.ts';
import { createTgiSimMetrics } from './metrics.ts';
import {
  chatChunk,
  chatCompletion,
  chatRequestSchema,
  chatUsageChunk,
  completionChunk,
  completionFinal,
  completionRequestSchema,
  EOS_TOKEN,
  errorBody,
  generateRequestSchema,
  generateResponse,
  info,
  modelList,
  openAiStreamError,
  streamResponse,
  type Head,
  type TgiFinishReason,
  type TgiToken,
} from './wire.ts';

export interface TgiSimOptions {
  host?: string;
  port?: number;
  model: string;
  /** TGI's --max-input-tokens / --max-total-tokens */
  maxInputTokens?: number;
  maxTotalTokens?: number;
  /** --max-concurrent-requests: more in flight answer 429 "Model is overloaded" */
  maxConcurrentRequests?: number;
  /** the batching model's sequence cap (TGI: --max-batch-size) */
  maxNumSeqs?: number;
  /** KV cache in tokens (TGI: max_batch_total_tokens, measured at warm-up) */
  kvCacheTokens?: number;
  blockSize?: number;
  prefillMsPerToken?: number;
  decodeStepMs?: number;
  decodeStepMsPerSeq?: number;
  /** nothing listens until this elapses (TGI's router starts after the shards loaded and warmed up) */
  loadTimeMs?: number;
  speed?: number;
  seed?: number;
  /** reported in /info and system_fingerprint; before 1.4.4 there is no /v1/completions, before 2.3.0 no include_usage */
  version?: string;
  faults?: Partial<SimFaults>;
  outputTokens?: { min: number; max: number };
}

export interface SimFaults {
  failAfterTokens: number | null;
  http5xx: boolean;
  engineDead: boolean;
  hang: boolean;
  slowdown: number;
  dropConnection: boolean;
}

export interface TgiSim {
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
};
const faultsSchema = z.strictObject({
  failAfterTokens: z.int().min(0).nullable().optional(),
  http5xx: z.boolean().optional(),
  engineDead: z.boolean().optional(),
  hang: z.boolean().optional(),
  slowdown: z.number().positive().optional(),
  dropConnection: z.boolean().optional(),
});
const MAX_BODY_BYTES = 8 * 1024 * 1024;
/** what a shard failure looks like through TGI's router (InferError::GenerationError) */
const SHARD_DEAD_MESSAGE = 'Request failed during generation: Server error: CUDA error: an illegal memory access was encountered';

type Route = 'generate' | 'chat' | 'completion';

function versionAtLeast(v: string, min: number[]): boolean {
  const m = /^(\d+)\.(\d+)\.(\d+)/.exec(v);
  if (!m) return true;
  const n = [Number(m[1]), Number(m[2]), Number(m[3])];
  for (let i = 0; i < 3; i++) if (n[i] !== min[i]) return n[i]! > min[i]!;
  return true;
}

interface Job {
  route: Route;
  stream: boolean;
  details: boolean;
  includeUsage: boolean;
  promptText: string;
  promptTokens: number;
  requestedMax: number | null;
}

/** Validate a route's body; a string is a 422 validation message (json: a body axum's Json extractor refused). */
function parseJob(route: Route, raw: unknown): Job | { status: number; message: string } {
  if (route === 'generate') {
    const p = generateRequestSchema.safeParse(raw);
    if (!p.success)
      return { status: 422, message: `Failed to deserialize the JSON body into the target type: ${z.prettifyError(p.error)}` };
    const b = p.data;
    return {
      route,
      stream: b.stream === true,
      details: b.parameters?.details ?? true,
      includeUsage: false,
      promptText: b.inputs,
      promptTokens: estimateTokens(b.inputs),
      requestedMax: b.parameters?.max_new_tokens ?? null,
    };
  }
  if (route === 'chat') {
    const p = chatRequestSchema.safeParse(raw);
    if (!p.success)
      return { status: 422, message: `Failed to deserialize the JSON body into the target type: ${z.prettifyError(p.error)}` };
    const b = p.data;
    return {
      route,
      stream: b.stream === true,
      details: true,
      includeUsage: b.stream_options?.include_usage === true,
      promptText: chatPromptText(b.messages),
      promptTokens: b.messages.reduce((n, m) => n + estimateTokens(chatPromptText([m])) + TOKENS_PER_CHAT_MESSAGE, 0) + 3,
      requestedMax: b.max_tokens ?? b.max_completion_tokens ?? null,
    };
  }
  const p = completionRequestSchema.safeParse(raw);
  if (!p.success) return { status: 422, message: `Failed to deserialize the JSON body into the target type: ${z.prettifyError(p.error)}` };
  const b = p.data;
  if (b.suffix != null) return { status: 422, message: 'Suffix is not supported and can be achieved by preprocessing the prompt.' };
  const prompts = typeof b.prompt === 'string' ? [b.prompt] : b.prompt;
  // TGI runs one stream per prompt; the simulator serves one.
  if (prompts.length > 1) return { status: 422, message: 'The simulator serves one prompt per request' };
  return {
    route,
    stream: b.stream === true,
    details: true,
    includeUsage: false,
    promptText: prompts[0]!,
    promptTokens: estimateTokens(prompts[0]!),
    requestedMax: b.max_tokens ?? null,
  };
}

interface InFlight {
  fail(message: string): void;
  abort(): void;
}

export async function startTgiSim(opts: TgiSimOptions): Promise<TgiSim> {
  const o = {
    host: opts.host ?? '127.0.0.1',
    port: opts.port ?? 0,
    model: opts.model,
    maxInputTokens: opts.maxInputTokens ?? 4095,
    maxTotalTokens: opts.maxTotalTokens ?? 4096,
    maxConcurrentRequests: opts.maxConcurrentRequests ?? 128,
    seed: opts.seed ?? 0,
    loadTimeMs: opts.loadTimeMs ?? 0,
    version: opts.version ?? '3.3.6',
    outputTokens: opts.outputTokens ?? { min: 16, max: 64 },
  };
  const hasCompletions = versionAtLeast(o.version, [1, 4, 4]);
  const hasIncludeUsage = versionAtLeast(o.version, [2, 3, 0]);
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
  let reservedTokens = 0;
  const engine: BatchingEngine = new BatchingEngine(engineCfg, () => performance.now());
  const metrics = createTgiSimMetrics(o.maxInputTokens, o.maxTotalTokens, engineCfg.kvCacheTokens, () => {
    const s = engine.state();
    return { running: s.running, waiting: s.waiting, reservedTokens: Math.min(reservedTokens, engineCfg.kvCacheTokens) };
  });
  const fingerprint = `${o.version}-native`;
  const inflight = new Set<InFlight>();
  const hung = new Set<ServerResponse>();
  let admittedThisStep = 0;
  let closing = false;

  // Each step is one TGI prefill or decode call.
  const loop = new StepLoop(engine, {
    beforeStep: () => {
      admittedThisStep = 0;
    },
    onStep: (d) => metrics.step(admittedThisStep > 0 ? 'prefill' : 'decode', d / 1000, admittedThisStep),
  });
  const kick = () => {
    if (!closing) loop.kick();
  };

  const setFaults = (f: Partial<SimFaults>) => {
    Object.assign(faults, f);
    engine.config.slowdown = faults.slowdown;
    if (faults.engineDead) for (const g of [...inflight]) g.fail(SHARD_DEAD_MESSAGE);
  };

  const sendJson = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
    const data = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data), ...headers });
    res.end(data);
  };
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

  /** `forceStream`: /generate never streams and /generate_stream always does, whatever the body says. */
  async function handleGeneration(route: Route, req: IncomingMessage, res: ServerResponse, forceStream?: boolean) {
    let raw: unknown;
    try {
      raw = JSON.parse(await readBody(req));
    } catch (e) {
      // axum's Json extractor: 400 with a plain-text reason
      res.writeHead(400, { 'content-type': 'text/plain; charset=utf-8' });
      return res.end(`Failed to parse the request body as JSON: ${(e as Error).message}`);
    }
    metrics.request();
    const parsed = parseJob(route, raw);
    if ('status' in parsed) {
      metrics.failure('validation');
      return sendJson(res, parsed.status, errorBody(parsed.message, 'validation'));
    }
    const job = forceStream === undefined ? parsed : { ...parsed, stream: forceStream };
    const stream = job.stream;
    const requestId = randomUUID();
    const head: Head = { created: Math.floor(Date.now() / 1000), model: o.model, fingerprint };
    // TGI's framing: `data:` with no space on /generate_stream (as in the 2023/2024 captures),
    // `data: ` on the OpenAI routes (as in the 3.2.1 capture).
    const sep = route === 'generate' ? 'data:' : 'data: ';
    const write = (obj: unknown) => res.write(`${sep}${JSON.stringify(obj)}\n\n`);
    const startStream = () => {
      res.writeHead(200, {
        'content-type': 'text/event-stream',
        'cache-control': 'no-cache',
        'x-accel-buffering': 'no',
        'x-compute-type': 'gpu+optimized',
      });
      res.flushHeaders();
    };
    /** an error before or during generation, in the route's own shape */
    const streamError = (message: string, type: string) => {
      if (route === 'generate') {
        write(errorBody(message, type));
        res.end();
        return;
      }
      write(openAiStreamError(message));
      res.end(`${sep}[DONE]\n\n`);
    };
    const refuse = (status: number, message: string, type: string) => {
      if (!stream) return sendJson(res, status, errorBody(message, type));
      startStream();
      streamError(message, type);
    };

    if (faults.http5xx) return sendJson(res, 500, errorBody('Incomplete generation', 'incomplete_generation'));
    if (faults.engineDead) {
      metrics.failure('generation');
      return refuse(424, SHARD_DEAD_MESSAGE, 'generation');
    }
    if (faults.dropConnection && !stream) {
      res.socket?.destroy();
      return;
    }
    if (faults.hang) {
      hung.add(res);
      res.on('close', () => hung.delete(res));
      return;
    }

    // Validation (router/src/validation.rs), in TGI's order and words.
    const input = job.promptTokens;
    const maxNew = job.requestedMax ?? Math.max(1, o.maxTotalTokens - input);
    let invalid: string | null = null;
    if (job.promptText.length === 0) invalid = '`inputs` cannot be empty';
    else if (job.requestedMax === 0) invalid = '`max_new_tokens` must be strictly positive';
    else if (input + maxNew > o.maxTotalTokens)
      invalid = `\`inputs\` tokens + \`max_new_tokens\` must be <= ${o.maxTotalTokens}. Given: ${input} \`inputs\` tokens and ${maxNew} \`max_new_tokens\``;
    else if (input > o.maxInputTokens) invalid = `\`inputs\` must have less than ${o.maxInputTokens} tokens. Given: ${input}`;
    if (invalid) {
      metrics.failure('validation');
      return refuse(422, `Input validation error: ${invalid}`, 'validation');
    }
    if (inflight.size >= o.maxConcurrentRequests) {
      metrics.failure('overloaded');
      return refuse(429, 'Model is overloaded', 'overloaded');
    }
    metrics.validated(input, maxNew);

    const plan = planOutput(o.seed, job.promptText, o.outputTokens.min, o.outputTokens.max);
    const arrivedAt = performance.now();
    let admittedAt = arrivedAt;
    let reserved = 0;
    let done = false;
    let generated = 0;
    let text = '';
    const tokens: TgiToken[] = [];
    const finishUp = () => {
      if (done) return;
      done = true;
      inflight.delete(g);
      reservedTokens -= reserved;
      reserved = 0;
    };
    const g: InFlight = {
      fail(message) {
        if (done) return;
        finishUp();
        engine.abort(requestId);
        metrics.failure('generation');
        if (!stream) return sendJson(res, 424, errorBody(message, 'generation'));
        streamError(message, 'generation');
      },
      abort() {
        if (done) return;
        finishUp();
        engine.abort(requestId);
        res.destroy();
      },
    };
    res.on('close', () => {
      if (!done) {
        finishUp();
        engine.abort(requestId);
      }
    });

    if (stream) startStream();
    if (faults.failAfterTokens === 0) return g.fail('Request failed during generation: Simulated failure after 0 tokens.');
    inflight.add(g);

    const tokenId = (t: string) => 100 + (fnv1a(t) % 32000);
    try {
      engine.submit({
        id: requestId,
        promptTokens: input,
        naturalTokens: plan.naturalTokens,
        maxTokens: maxNew,
        prefixHashes: prefixBlockHashes(job.promptText, engineCfg.blockSize),
        nextWord: plan.nextWord,
        listener: {
          onAdmitted() {
            admittedAt = performance.now();
            admittedThisStep++;
            reserved = input + maxNew;
            reservedTokens += reserved;
          },
          onToken(index, tokenText, finish) {
            if (done) return;
            generated++;
            const token: TgiToken =
              finish === 'stop' ? EOS_TOKEN : { id: tokenId(tokenText), text: tokenText, logprob: -0.5, special: false };
            tokens.push(token);
            if (!token.special) text += tokenText;
            const tgiFinish: TgiFinishReason | null = finish === 'stop' ? 'eos_token' : finish;
            if (stream) {
              let event: unknown;
              if (route === 'generate') {
                event = streamResponse(
                  index + 1,
                  token,
                  tgiFinish ? { text, finish: tgiFinish, generated, inputLength: input } : null,
                  job.details,
                );
              } else if (route === 'chat') {
                event = chatChunk(head, token, tgiFinish);
              } else {
                event = completionChunk(head, token, tgiFinish ? { finish: tgiFinish, prompt: input, completion: generated } : null);
              }
              if (faults.dropConnection) {
                finishUp();
                engine.abort(requestId);
                const socket = res.socket;
                res.write(`${sep}${JSON.stringify(event)}\n\n`, () => socket?.destroy());
                return;
              }
              write(event);
            }
            if (tgiFinish) {
              const now = performance.now();
              metrics.success({
                total: (now - arrivedAt) / 1000,
                queue: (admittedAt - arrivedAt) / 1000,
                inference: (now - admittedAt) / 1000,
                generated,
              });
              finishUp();
              if (!stream) {
                const timing = {
                  'x-compute-type': 'gpu+optimized',
                  'x-compute-time': String((now - arrivedAt) / 1000),
                  'x-total-time': String(Math.round(now - arrivedAt)),
                  'x-validation-time': '0',
                  'x-queue-time': String(Math.round(admittedAt - arrivedAt)),
                  'x-inference-time': String(Math.round(now - admittedAt)),
                  'x-time-per-token': String(Math.round((now - admittedAt) / generated)),
                  'x-prompt-tokens': String(input),
                  'x-generated-tokens': String(generated),
                };
                if (route === 'generate') return sendJson(res, 200, generateResponse(text, tgiFinish, tokens, job.details), timing);
                if (route === 'chat') return sendJson(res, 200, chatCompletion(head, text, tgiFinish, input, generated), timing);
                return sendJson(res, 200, completionFinal(head, text, tgiFinish, input, generated), timing);
              }
              if (route === 'generate') {
                res.end();
                return;
              }
              if (route === 'chat' && job.includeUsage && hasIncludeUsage) write(chatUsageChunk(head, input, generated));
              res.end(`${sep}[DONE]\n\n`);
              return;
            }
            if (faults.failAfterTokens !== null && generated >= faults.failAfterTokens)
              g.fail(`Request failed during generation: Simulated failure after ${generated} tokens.`);
          },
        },
      });
    } catch (e) {
      finishUp();
      metrics.failure('validation');
      return refuse(422, `Input validation error: ${(e as Error).message}`, 'validation');
    }
    kick();
  }

  async function route(req: IncomingMessage, res: ServerResponse) {
    const path = (req.url ?? '/').split('?')[0];
    const method = req.method ?? 'GET';
    if (method === 'POST' && path === '/generate') return handleGeneration('generate', req, res, false);
    if (method === 'POST' && path === '/generate_stream') return handleGeneration('generate', req, res, true);
    if (method === 'POST' && path === '/v1/chat/completions') return handleGeneration('chat', req, res);
    if (method === 'POST' && path === '/v1/completions' && hasCompletions) return handleGeneration('completion', req, res);
    if (method === 'GET' && path === '/info') {
      return sendJson(
        res,
        200,
        info({
          model: o.model,
          maxInputTokens: o.maxInputTokens,
          maxTotalTokens: o.maxTotalTokens,
          maxConcurrentRequests: o.maxConcurrentRequests,
          version: o.version,
        }),
      );
    }
    if (method === 'GET' && path === '/v1/models') return sendJson(res, 200, modelList(o.model));
    if (method === 'GET' && (path === '/health' || path === '/ping')) {
      if (faults.engineDead) return sendJson(res, 503, errorBody('unhealthy', 'healthcheck'));
      res.writeHead(200, { 'content-length': 0 });
      return res.end();
    }
    if (method === 'GET' && path === '/metrics') {
      const text = await metrics.registry.metrics();
      res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
      return res.end(text);
    }
    if (method === 'GET' && path === '/sim/state') return sendJson(res, 200, engine.state());
    if (method === 'POST' && path === '/sim/faults') {
      let raw: unknown;
      try {
        raw = JSON.parse(await readBody(req));
      } catch {
        return sendJson(res, 400, errorBody('Invalid JSON body', 'validation'));
      }
      const f = faultsSchema.safeParse(raw);
      if (!f.success) return sendJson(res, 400, errorBody(z.prettifyError(f.error), 'validation'));
      setFaults(f.data as Partial<SimFaults>);
      return sendJson(res, 200, faults);
    }
    // axum's fallback: 404 with an empty body
    res.writeHead(404, { 'content-length': 0 });
    return res.end();
  }

  if (o.loadTimeMs > 0) await new Promise((r) => setTimeout(r, o.loadTimeMs));

  const sockets = new Set<Socket>();
  const server: Server = createServer((req, res) => {
    route(req, res).catch((e: unknown) => {
      if (!res.headersSent) sendJson(res, 500, errorBody((e as Error).message, 'incomplete_generation'));
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
