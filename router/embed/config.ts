// Configuration of the embedding/rerank engine: one entry per served model. Everything that differs
// between ONNX exports (output name, pooling, prefixes, lengths) is here, so a new model is config only.
import { availableParallelism } from 'node:os';
import { z } from 'zod';

export const embeddingModelConfigSchema = z.object({
  /** Name clients send as `model`. */
  id: z.string().min(1),
  kind: z.enum(['embedding', 'rerank']),
  /** model.onnx; relative paths resolve against the service's baseDir. */
  path: z.string().min(1),
  /** tokenizer.json (Hugging Face tokenizers format). */
  tokenizer: z.string().min(1),
  /** tokenizer_config.json; default: the one beside tokenizer.json, if present. */
  tokenizerConfig: z.string().min(1).optional(),
  /** Graph output to read, e.g. sentence_embedding | last_hidden_state | logits. Default: the first
   *  of those the graph has (by kind), else its first output. */
  output: z.string().min(1).optional(),
  /** How [batch, seq, hidden] outputs become one vector; ignored for [batch, hidden] outputs. */
  pooling: z.enum(['mean', 'cls', 'none']).default('mean'),
  normalize: z.boolean().default(true),
  /** Tokens per sequence including special tokens (pairs: query + passage together). */
  maxLength: z.number().int().min(4).default(512),
  /** Embeddings: when false an over-long input is a 400 (OpenAI's behaviour), unless the request
   *  asks for truncation. Rerank passages are always truncated (the query is kept). */
  truncate: z.boolean().default(false),
  /** e5/bge-style instruction prefixes; which one applies is the request's input_type. */
  queryPrefix: z.string().default(''),
  passagePrefix: z.string().default(''),
  /** Matryoshka-trained models may be cut to fewer dimensions (then re-normalised). */
  matryoshka: z.boolean().default(false),
  /** Rerank: which column of the logits is the relevance logit, and how it becomes relevance_score. */
  logitIndex: z.number().int().min(0).default(0),
  scoreActivation: z.enum(['sigmoid', 'identity']).default('sigmoid'),
  /** Dynamic batching: with a batch already running on another worker, a free worker waits up to
   *  this long for more requests (or its share of maxBatch). 0: it takes what is queued at once. */
  batchWindowMs: z.number().min(0).max(100).default(1),
  /** Sequences per inference call. */
  maxBatch: z.number().int().min(1).default(64),
  /** Sequences waiting (not yet running); beyond it requests get 429. */
  maxQueue: z.number().int().min(1).default(4096),
  /** Inputs (or documents) per request. */
  maxInputs: z.number().int().min(1).default(2048),
  executionProvider: z.enum(['cpu', 'cuda']).default('cpu'),
  cudaDeviceId: z.number().int().min(0).default(0),
  /** onnxruntime threads per session; default from the top-level setting. */
  intraOpNumThreads: z.number().int().min(1).optional(),
  /** Inference workers (threads, each with the tokenizer and its own session) for this model.
   *  Default: one per core, at most 2 (measured on 2 cores: 2 workers give ~1.75x the throughput
   *  of one at concurrency 64, as tokenizing and inference then use both cores). */
  workers: z
    .number()
    .int()
    .min(1)
    .max(16)
    .default(() => Math.min(2, availableParallelism())),
});

export const embeddingsConfigSchema = z
  .object({
    models: z.array(embeddingModelConfigSchema).default([]),
    /** Default onnxruntime intra-op threads per session; keep it modest, the event loop needs a core. */
    intraOpNumThreads: z.number().int().min(1).default(1),
  })
  .superRefine((cfg, ctx) => {
    const seen = new Set<string>();
    for (const [i, m] of cfg.models.entries()) {
      if (seen.has(m.id)) ctx.addIssue({ code: 'custom', message: `duplicate model id '${m.id}'`, path: ['models', i, 'id'] });
      seen.add(m.id);
    }
  });

export type EmbeddingModelConfig = z.infer<typeof embeddingModelConfigSchema>;
export type EmbeddingModelConfigInput = z.input<typeof embeddingModelConfigSchema>;
export type EmbeddingsConfig = z.infer<typeof embeddingsConfigSchema>;
export type EmbeddingsConfigInput = z.input<typeof embeddingsConfigSchema>;

/** The models the project carries (models/ at the repository root); paths relative to that root. */
export function defaultEmbeddingsConfig(): EmbeddingsConfig {
  return embeddingsConfigSchema.parse({
    models: [
      {
        id: 'glove-100d-embed',
        kind: 'embedding',
        path: 'models/glove-100d-embed/model.onnx',
        tokenizer: 'models/glove-100d-embed/tokenizer.json',
        output: 'sentence_embedding',
        maxLength: 256,
      },
      {
        id: 'glove-100d-rerank',
        kind: 'rerank',
        path: 'models/glove-100d-rerank/model.onnx',
        tokenizer: 'models/glove-100d-rerank/tokenizer.json',
        output: 'logits',
        maxLength: 256,
      },
    ],
  });
}
