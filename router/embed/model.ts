// One served model: its tokenizer, its inference workers and its batcher.
import { isAbsolute, resolve } from 'node:path';
import { errors } from '../../common/errors.ts';
import { Batcher, QueueFullError } from './batcher.ts';
import type { EmbeddingModelConfig } from './config.ts';
import { InferenceWorker, type WorkerReady } from './inference-worker-handle.ts';
import { truncateDimensions } from './pooling.ts';
import { TextTokenizer, TooLongError, type Encoded } from './tokenizer.ts';

export interface ModelLogger {
  info(o: object, msg?: string): void;
  warn(o: object, msg?: string): void;
}

export type InputType = 'query' | 'passage';

export interface EmbedResult {
  embeddings: Float32Array[];
  promptTokens: number;
}

export interface RerankResult {
  /** Relevance scores in input order (after the configured activation). */
  scores: number[];
  /** The raw model outputs behind `scores`. */
  logits: number[];
  promptTokens: number;
}

/** Tokenizing is synchronous JS; yield to the event loop every few ms on big requests. */
const YIELD_EVERY_MS = 4;
const yieldToLoop = () => new Promise<void>((r) => setImmediate(r));

export class LoadedModel {
  private constructor(
    readonly config: EmbeddingModelConfig,
    private readonly tokenizer: TextTokenizer,
    private readonly batcher: Batcher,
    readonly runtime: WorkerReady,
    /** Native output width (embeddings) or 1 (rerank). */
    readonly dimensions: number,
  ) {}

  static async load(config: EmbeddingModelConfig, baseDir: string, defaultThreads: number, logger?: ModelLogger): Promise<LoadedModel> {
    const abs = (p: string) => (isAbsolute(p) ? p : resolve(baseDir, p));
    const tokenizer = await TextTokenizer.load(abs(config.tokenizer), config.tokenizerConfig ? abs(config.tokenizerConfig) : undefined);
    const init = {
      modelPath: abs(config.path),
      kind: config.kind,
      output: config.output,
      pooling: config.pooling,
      normalize: config.normalize,
      logitIndex: config.logitIndex,
      executionProvider: config.executionProvider,
      cudaDeviceId: config.cudaDeviceId,
      intraOpNumThreads: config.intraOpNumThreads ?? defaultThreads,
    };
    const workers = await Promise.all(Array.from({ length: config.workers }, () => InferenceWorker.start(init)));
    const runtime = workers[0]!.info;
    if (runtime.fallbackReason) {
      logger?.warn({ model: config.id, reason: runtime.fallbackReason }, 'CUDA execution provider unavailable; running on CPU');
    }
    const batcher = new Batcher(workers, { windowMs: config.batchWindowMs, maxBatch: config.maxBatch, maxQueue: config.maxQueue });
    // A warm-up run validates the graph, the output choice and the pooling, and gives the width.
    let dimensions: number;
    try {
      const probe = tokenizer.encode('hello world', config.maxLength, true);
      const enc = config.kind === 'rerank' ? tokenizer.encodePair(tokenizer.content('hello'), 'hello world', config.maxLength) : probe;
      const rows = await batcher.submit([enc]);
      dimensions = rows[0]!.length;
    } catch (err) {
      await batcher.close();
      throw new Error(`embedding model '${config.id}' failed its warm-up run: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
    logger?.info(
      { model: config.id, kind: config.kind, provider: runtime.provider, output: runtime.output, dimensions, workers: config.workers, maxLength: config.maxLength },
      'embedding model loaded',
    );
    return new LoadedModel(config, tokenizer, batcher, runtime, dimensions);
  }

  get queued(): number {
    return this.batcher.queued;
  }

  get batchStats() {
    return this.batcher.stats;
  }

  async embed(texts: string[], opts: { inputType?: InputType; truncate?: boolean; dimensions?: number } = {}): Promise<EmbedResult> {
    const prefix = opts.inputType === 'query' ? this.config.queryPrefix : this.config.passagePrefix;
    const truncate = opts.truncate ?? this.config.truncate;
    const encs: Encoded[] = [];
    // Each request tokenizes in its own macrotask, so a burst of requests resolved together does
    // not tokenize back to back in one turn of the event loop.
    await yieldToLoop();
    let last = performance.now();
    for (const [i, text] of texts.entries()) {
      try {
        encs.push(this.tokenizer.encode(prefix + text, this.config.maxLength, truncate));
      } catch (err) {
        if (err instanceof TooLongError) {
          const where = texts.length > 1 ? `input[${i}]` : 'input';
          throw errors.invalidRequest(
            `This model's maximum input length is ${err.maxLength} tokens, but ${where} has ${err.tokens} tokens. Shorten it or send "truncate": true.`,
            'input',
            'context_length_exceeded',
          );
        }
        throw err;
      }
      if (performance.now() - last > YIELD_EVERY_MS) {
        await yieldToLoop();
        last = performance.now();
      }
    }
    const rows = await this.submit(encs);
    const dims = opts.dimensions;
    const embeddings = dims !== undefined && dims !== this.dimensions ? rows.map((r) => truncateDimensions(r, dims, this.config.normalize)) : rows;
    return { embeddings, promptTokens: encs.reduce((n, e) => n + e.ids.length, 0) };
  }

  async rerank(query: string, documents: string[]): Promise<RerankResult> {
    await yieldToLoop();
    const q = this.tokenizer.content(this.config.queryPrefix + query);
    const encs: Encoded[] = [];
    let last = performance.now();
    for (const doc of documents) {
      encs.push(this.tokenizer.encodePair(q, this.config.passagePrefix + doc, this.config.maxLength));
      if (performance.now() - last > YIELD_EVERY_MS) {
        await yieldToLoop();
        last = performance.now();
      }
    }
    const rows = await this.submit(encs);
    const act = this.config.scoreActivation === 'sigmoid' ? (x: number) => 1 / (1 + Math.exp(-x)) : (x: number) => x;
    const logits = rows.map((r) => r[0]!);
    return { scores: logits.map(act), logits, promptTokens: encs.reduce((n, e) => n + e.ids.length, 0) };
  }

  private async submit(encs: Encoded[]): Promise<Float32Array[]> {
    try {
      return await this.batcher.submit(encs);
    } catch (err) {
      if (err instanceof QueueFullError) {
        throw errors.rateLimited(`Model '${this.config.id}' is at capacity (${err.queued} inputs queued). Retry shortly.`, 1, 'queue_full');
      }
      throw err;
    }
  }

  close(): Promise<void> {
    return this.batcher.close();
  }
}
