// /v1/embeddings (OpenAI's shape), /v1/rerank (Cohere/Jina shape) and /rerank (TEI's shape),
// served by the in-process ONNX EmbeddingService; an embeddings model no local embedder serves
// goes to its fallback chain's hosted providers. Each request leaves its usage and outcome for
// accounting (usage record, spend, TPM). Errors are ApiErrors; the router renders them.
import { randomUUID } from 'node:crypto';
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { errors } from '../../common/errors.ts';
import type { EmbeddingService } from '../embed/service.ts';
import { context, failSpan, setAttrs, trace, withSpan } from '../../common/telemetry.ts';
import { finishServerSpan, logRequest, startServerSpan, type RequestFacts } from './request-log.ts';
import type { EmbeddingFallbackRequest, EmbeddingFallbackResult } from '../upstream/fallback-dispatch.ts';
import { principalOf } from '../tenancy/enforcement.ts';
import { requestOutcome, requestUsage } from '../request-context.ts';
import { toApiError } from '../../common/http.ts';
import { OPENAI_EMBEDDING_FIELDS, allowOnly, parseWith } from './request-fields.ts';

export interface EmbeddingRoutesOptions {
  /** The in-process embedders; absent when only fallback chains serve embeddings. */
  service?: EmbeddingService;
  /** Hosted providers for models no local embedder serves (router/upstream/fallback-dispatch.ts). */
  fallback?: { servesEmbeddings(model: string): boolean; embed(req: EmbeddingFallbackRequest): Promise<EmbeddingFallbackResult> };
  /** Bound on a fallback provider call (router.requestTimeoutMs). */
  requestTimeoutMs?: number;
}

/** The backend of the in-process embedders, in usage records. */
export const LOCAL_EMBEDDER_BACKEND = 'router';

/**
 * Runs one embedding/rerank request inside its SERVER span (a child of the caller's `traceparent`),
 * leaves its outcome and usage for accounting (usage records, spend, TPM reconciliation) and writes
 * its request log line, as the generation routes do. Never the texts.
 */
async function accounted<T>(
  req: FastifyRequest,
  op: 'embeddings' | 'rerank',
  model: string,
  fn: () => Promise<{ value: T; promptTokens: number; backend: string }>,
): Promise<T> {
  const started = performance.now();
  const span = startServerSpan(req, op);
  const facts: RequestFacts = { model, lane: 'none', backend: 'none', status: 200, firstTokenAt: 0, usage: undefined };
  try {
    const r = await context.with(trace.setSpan(context.active(), span), fn);
    facts.backend = r.backend;
    facts.usage = { promptTokens: r.promptTokens, completionTokens: 0 };
    requestUsage.set(req, facts.usage);
    return r.value;
  } catch (err) {
    facts.status = toApiError(err).status;
    failSpan(span, err);
    throw err;
  } finally {
    requestOutcome.set(req, { model, backend: facts.backend, lane: 'none', status: facts.status, ttftMs: null });
    finishServerSpan(span, facts);
    logRequest(req, span, facts, started, false);
  }
}

/** The client's fields a hosted provider understands (router-only extensions are dropped). */
function providerBody(raw: unknown): Record<string, unknown> {
  const b = (raw ?? {}) as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const k of ['input', 'encoding_format', 'dimensions', 'user'] as const) if (b[k] !== undefined) out[k] = b[k];
  return out;
}

/** Only the route's own fields pass (an unknown one is a 400 naming it); then zod, the first issue a 400 naming its field and type. */
function parse<T extends z.ZodType>(schema: T, allowed: readonly string[], body: unknown): z.infer<T> {
  allowOnly(body, allowed);
  return parseWith(schema, body);
}

/** A tenant limited to some models gets the same 404 for a model it may not use as for one that does not exist. */
function checkAllowed(req: FastifyRequest, model: string): void {
  const allowed = principalOf(req)?.policy.allowedModels;
  if (allowed && !allowed.includes(model)) throw errors.modelNotFound(model);
}

const embeddingsBody = z.object({
  model: z.string().min(1),
  input: z.unknown().optional(),
  encoding_format: z.enum(['float', 'base64']).default('float'),
  dimensions: z.number().int().min(1).optional(),
  user: z.string().optional(),
  // Extensions (TEI/NIM/Jina style): which configured prefix applies, and cutting long inputs.
  input_type: z.enum(['query', 'passage', 'document']).optional(),
  truncate: z.boolean().optional(),
});
// OpenAI's fields plus the two extensions above.
const EMBEDDINGS_FIELDS = [...OPENAI_EMBEDDING_FIELDS, 'input_type', 'truncate'];

/** OpenAI's `input`: a string or a list of strings here; token-id arrays get a clear 400. */
function parseInput(input: unknown): string[] {
  if (input === undefined || input === null) throw errors.invalidRequest("'input' is required.", 'input');
  const list = typeof input === 'string' ? [input] : input;
  if (!Array.isArray(list)) throw errors.invalidRequest("'input' must be a string or an array of strings.", 'input');
  if (list.length === 0) throw errors.invalidRequest("'input' must not be an empty array.", 'input');
  for (const [i, v] of list.entries()) {
    if (typeof v === 'string') {
      if (v.length === 0) throw errors.invalidRequest(`'input[${i}]' must not be an empty string.`, 'input');
      continue;
    }
    if (typeof v === 'number' || Array.isArray(v)) {
      throw errors.invalidRequest(
        "Token-id arrays are not supported: the served models use their own tokenizers, not OpenAI's. Send text.",
        'input',
        'unsupported_input',
      );
    }
    throw errors.invalidRequest(`'input[${i}]' must be a string.`, 'input');
  }
  return list as string[];
}

function toBase64(v: Float32Array): string {
  // OpenAI's base64 is little-endian float32, which is what typed arrays hold on x86/ARM.
  return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64');
}

const documentSchema = z.union([z.string(), z.object({ text: z.string() })]);

const rerankBody = z.object({
  model: z.string().min(1),
  query: z.string().min(1),
  documents: z.array(documentSchema),
  top_n: z.number().int().min(1).optional(),
  return_documents: z.boolean().default(false),
});
const RERANK_FIELDS = ['model', 'query', 'documents', 'top_n', 'return_documents'];

const teiRerankBody = z.object({
  model: z.string().min(1).optional(),
  query: z.string().min(1),
  texts: z.array(z.string()),
  raw_scores: z.boolean().default(false),
  return_text: z.boolean().default(false),
  truncate: z.boolean().optional(),
});
const TEI_RERANK_FIELDS = ['model', 'query', 'texts', 'raw_scores', 'return_text', 'truncate'];

/** Indices sorted by score, best first; ties keep input order. */
function ranking(scores: number[]): number[] {
  return scores.map((_, i) => i).sort((a, b) => scores[b]! - scores[a]! || a - b);
}

/** The embedder's own span, a child of the request's SERVER span (its inputs count and tokens; never the texts). */
function traced<T extends { promptTokens: number }>(
  req: { id: string },
  op: 'embeddings' | 'rerank',
  model: string,
  inputs: number,
  fn: () => Promise<T>,
): Promise<T> {
  return withSpan(
    `${op} ${model}`,
    {
      'gen_ai.operation.name': op,
      'gen_ai.request.model': model,
      'gen_ai.provider.name': 'icp.onnx',
      'icp.request.id': req.id,
      'icp.inputs': inputs,
    },
    async (span) => {
      const r = await fn();
      setAttrs(span, { 'gen_ai.response.model': model, 'gen_ai.usage.input_tokens': r.promptTokens });
      return r;
    },
  );
}

export const embeddingRoutes: FastifyPluginAsync<EmbeddingRoutesOptions> = async (
  app,
  { service: maybeService, fallback, requestTimeoutMs = 60_000 },
) => {
  const local = (model: string): EmbeddingService => {
    if (!maybeService) throw errors.modelNotFound(model);
    return maybeService;
  };

  app.post('/v1/embeddings', (req, reply) => {
    const body = parse(embeddingsBody, EMBEDDINGS_FIELDS, req.body);
    const inputs = parseInput(body.input);
    return accounted(req, 'embeddings', body.model, async () => {
      if (!maybeService?.hasModel(body.model) && fallback?.servesEmbeddings(body.model)) {
        // No local embedder for it: the model's fallback chain (OpenAI / Azure embeddings).
        const clientGone = new AbortController();
        reply.raw.on('close', () => {
          if (!reply.raw.writableFinished) clientGone.abort();
        });
        const r = await fallback.embed({
          requestId: req.id,
          model: body.model,
          body: providerBody(req.body),
          deadline: new Date(Date.now() + requestTimeoutMs),
          signal: clientGone.signal,
          caller: principalOf(req),
          dataMayLeave: principalOf(req)?.policy.allowHostedFallback,
        });
        reply.header('x-backend', r.backend);
        return { value: r.body, promptTokens: r.promptTokens, backend: r.backend };
      }
      const service = local(body.model);
      const inputType = body.input_type === 'query' ? 'query' : 'passage';
      const r = await traced(req, 'embeddings', body.model, inputs.length, () =>
        service.embed(body.model, inputs, { inputType, truncate: body.truncate, dimensions: body.dimensions }),
      );
      return {
        value: {
          object: 'list',
          data: r.embeddings.map((v, index) => ({
            object: 'embedding',
            index,
            embedding: body.encoding_format === 'base64' ? toBase64(v) : Array.from(v),
          })),
          model: body.model,
          usage: { prompt_tokens: r.promptTokens, total_tokens: r.promptTokens },
        },
        promptTokens: r.promptTokens,
        backend: LOCAL_EMBEDDER_BACKEND,
      };
    });
  });

  app.post('/v1/rerank', async (req) => {
    const body = parse(rerankBody, RERANK_FIELDS, req.body);
    const texts = body.documents.map((d) => (typeof d === 'string' ? d : d.text));
    if (texts.length === 0) throw errors.invalidRequest("'documents' must not be empty.", 'documents');
    const service = local(body.model);
    const r = await accounted(req, 'rerank', body.model, async () => {
      const x = await traced(req, 'rerank', body.model, texts.length, () => service.rerank(body.model, body.query, texts));
      return { value: x, promptTokens: x.promptTokens, backend: LOCAL_EMBEDDER_BACKEND };
    });
    const order = ranking(r.scores).slice(0, body.top_n ?? texts.length);
    return {
      id: randomUUID(),
      model: body.model,
      results: order.map((index) => ({
        index,
        relevance_score: r.scores[index]!,
        ...(body.return_documents ? { document: { text: texts[index]! } } : {}),
      })),
      usage: { prompt_tokens: r.promptTokens, total_tokens: r.promptTokens },
    };
  });

  // Text Embeddings Inference's /rerank: no model field required, a bare array back.
  app.post('/rerank', async (req) => {
    const body = parse(teiRerankBody, TEI_RERANK_FIELDS, req.body);
    const model = body.model ?? maybeService?.defaultModel('rerank');
    if (!model) throw errors.notFound('No rerank model is configured.');
    // The tenancy hook checked the body's model, absent here: check the default it resolved to.
    checkAllowed(req, model);
    if (body.texts.length === 0) throw errors.invalidRequest("'texts' must not be empty.", 'texts');
    const service = local(model);
    const r = await accounted(req, 'rerank', model, async () => {
      const x = await traced(req, 'rerank', model, body.texts.length, () => service.rerank(model, body.query, body.texts));
      return { value: x, promptTokens: x.promptTokens, backend: LOCAL_EMBEDDER_BACKEND };
    });
    const scores = body.raw_scores ? r.logits : r.scores;
    return ranking(scores).map((index) => ({ index, score: scores[index]!, ...(body.return_text ? { text: body.texts[index]! } : {}) }));
  });
};
