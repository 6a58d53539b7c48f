// /v1/embeddings (OpenAI's shape), /v1/rerank (Cohere/Jina shape) and /rerank (TEI's shape),
// served by the in-process ONNX EmbeddingService. Errors are ApiErrors; the router renders them.
import { randomUUID } from 'node:crypto';
import type { FastifyPluginAsync } from 'fastify';
import { z } from 'zod';
import { errors } from '../../common/errors.ts';
import type { EmbeddingService } from '../embed/service.ts';
import { SpanKind, extractContext, setAttrs, withSpan } from '../../common/telemetry.ts';

export interface EmbeddingRoutesOptions {
  service: EmbeddingService;
}

/** Parses with zod; the first issue becomes a 400 naming its field. */
function parse<T>(schema: z.ZodType<T>, body: unknown): T {
  const r = schema.safeParse(body);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  const param = issue.path.length ? issue.path.map(String).join('.') : null;
  throw errors.invalidRequest(param ? `Invalid '${param}': ${issue.message}` : issue.message, param);
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

const teiRerankBody = z.object({
  model: z.string().min(1).optional(),
  query: z.string().min(1),
  texts: z.array(z.string()),
  raw_scores: z.boolean().default(false),
  return_text: z.boolean().default(false),
  truncate: z.boolean().optional(),
});

/** Indices sorted by score, best first; ties keep input order. */
function ranking(scores: number[]): number[] {
  return scores.map((_, i) => i).sort((a, b) => scores[b]! - scores[a]! || a - b);
}

/** One span per embedding/rerank request (its trace's root unless the caller sent traceparent); never the texts. */
function traced<T extends { promptTokens: number }>(req: { id: string; headers: Record<string, unknown> }, op: 'embeddings' | 'rerank', model: string, inputs: number, fn: () => Promise<T>): Promise<T> {
  const parent = extractContext((k) => (typeof req.headers[k] === 'string' ? req.headers[k] : undefined));
  return withSpan(`${op} ${model}`, { 'gen_ai.operation.name': op, 'gen_ai.request.model': model, 'gen_ai.provider.name': 'icp.onnx', 'icp.request.id': req.id, 'icp.inputs': inputs }, async (span) => {
    const r = await fn();
    setAttrs(span, { 'gen_ai.response.model': model, 'gen_ai.usage.input_tokens': r.promptTokens });
    return r;
  }, SpanKind.SERVER, parent);
}

export const embeddingRoutes: FastifyPluginAsync<EmbeddingRoutesOptions> = async (app, { service }) => {
  app.post('/v1/embeddings', async (req) => {
    const body = parse(embeddingsBody, req.body);
    const inputs = parseInput(body.input);
    const inputType = body.input_type === 'query' ? 'query' : 'passage';
    const r = await traced(req, 'embeddings', body.model, inputs.length, () => service.embed(body.model, inputs, { inputType, truncate: body.truncate, dimensions: body.dimensions }));
    return {
      object: 'list',
      data: r.embeddings.map((v, index) => ({
        object: 'embedding',
        index,
        embedding: body.encoding_format === 'base64' ? toBase64(v) : Array.from(v),
      })),
      model: body.model,
      usage: { prompt_tokens: r.promptTokens, total_tokens: r.promptTokens },
    };
  });

  app.post('/v1/rerank', async (req) => {
    const body = parse(rerankBody, req.body);
    const texts = body.documents.map((d) => (typeof d === 'string' ? d : d.text));
    if (texts.length === 0) throw errors.invalidRequest("'documents' must not be empty.", 'documents');
    const r = await traced(req, 'rerank', body.model, texts.length, () => service.rerank(body.model, body.query, texts));
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
    const body = parse(teiRerankBody, req.body);
    const model = body.model ?? service.defaultModel('rerank');
    if (!model) throw errors.notFound('No rerank model is configured.');
    if (body.texts.length === 0) throw errors.invalidRequest("'texts' must not be empty.", 'texts');
    const r = await traced(req, 'rerank', model, body.texts.length, () => service.rerank(model, body.query, body.texts));
    const scores = body.raw_scores ? r.logits : r.scores;
    return ranking(scores).map((index) => ({ index, score: scores[index]!, ...(body.return_text ? { text: body.texts[index]! } : {}) }));
  });
};
