// One served model: its inference workers (each with the tokenizer and a session) and its batcher.
// The main thread applies prefixes and routes; tokenizing and inference run in the workers.
import { isAbsolute, resolve } from 'node:path';
import { errors } from '../../common/errors.ts';
import { Batcher, ItemError, QueueFullError, type SubmitResult, type WorkItem } from './batcher.ts';
import type { EmbeddingModelConfig } from './config.ts';
import { InferenceWorker, type WorkerReady } from './inference-worker-handle.ts';
import { truncateDimensions } from './pooling.ts';
import { TextTokenizer } from './tokenizer.ts';
import type { WorkerInit } from './worker-protocol.ts';

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

export class LoadedModel {
  private constructor(
    readonly config: EmbeddingModelConfig,
    private readonly batcher: Batcher,
    readonly runtime: WorkerReady,
    /** Native output width (embeddings) or 1 (rerank). */
    readonly dimensions: number,
    private readonly tokenizerFiles: { path: string; config?: string },
  ) {}

  private counter: Promise<TextTokenizer> | undefined;

  /**
   * Tokens these texts take in this model (its own tokenizer, the input type's prefix and the
   * special tokens, at most maxLength each): what the rate limiter charges at admission. The
   * tokenizer is loaded in this thread on first use (the workers have their own).
   */
  async countTokens(texts: string[], inputType: InputType = 'passage'): Promise<number> {
    this.counter ??= TextTokenizer.load(this.tokenizerFiles.path, this.tokenizerFiles.config);
    const tok = await this.counter;
    const prefix = inputType === 'query' ? this.config.queryPrefix : this.config.passagePrefix;
    return texts.reduce((n, t) => n + Math.min(this.config.maxLength, tok.content(prefix + t).length + tok.singleOverhead), 0);
  }

  static async load(config: EmbeddingModelConfig, baseDir: string, defaultThreads: number, logger?: ModelLogger): Promise<LoadedModel> {
    const abs = (p: string) => (isAbsolute(p) ? p : resolve(baseDir, p));
    const init: WorkerInit = {
      modelPath: abs(config.path),
      tokenizerPath: abs(config.tokenizer),
      tokenizerConfigPath: config.tokenizerConfig ? abs(config.tokenizerConfig) : undefined,
      kind: config.kind,
      maxLength: config.maxLength,
      output: config.output,
      pooling: config.pooling,
      normalize: config.normalize,
      logitIndex: config.logitIndex,
      executionProvider: config.executionProvider,
      cudaDeviceId: config.cudaDeviceId,
      intraOpNumThreads: config.intraOpNumThreads ?? defaultThreads,
    };
    const started = await Promise.allSettled(Array.from({ length: config.workers }, () => InferenceWorker.start(init)));
    const workers = started.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) {
      await Promise.all(workers.map((w) => w.close()));
      throw new Error(
        `embedding model '${config.id}' failed to start: ${failed.reason instanceof Error ? failed.reason.message : String(failed.reason)}`,
        { cause: failed.reason },
      );
    }
    const runtime = workers[0]!.info;
    if (runtime.fallbackReason) {
      logger?.warn({ model: config.id, reason: runtime.fallbackReason }, 'CUDA execution provider unavailable; running on CPU');
    }
    const batcher = new Batcher(workers, { windowMs: config.batchWindowMs, maxBatch: config.maxBatch, maxQueue: config.maxQueue });
    // A warm-up run validates the graph, the output choice and the pooling, and gives the width.
    let dimensions: number;
    try {
      // One item per worker, so every worker's tokenizer and session are exercised.
      const probe: WorkItem = config.kind === 'rerank' ? { text: 'hello world', query: 'hello' } : { text: 'hello world', truncate: true };
      const runs = await Promise.all(workers.map(() => batcher.submit([probe])));
      dimensions = runs[0]!.rows[0]!.length;
    } catch (err) {
      await batcher.close();
      throw new Error(`embedding model '${config.id}' failed its warm-up run: ${err instanceof Error ? err.message : String(err)}`, {
        cause: err,
      });
    }
    logger?.info(
      {
        model: config.id,
        kind: config.kind,
        provider: runtime.provider,
        output: runtime.output,
        dimensions,
        workers: config.workers,
        maxLength: config.maxLength,
      },
      'embedding model loaded',
    );
    return new LoadedModel(config, batcher, runtime, dimensions, { path: init.tokenizerPath, config: init.tokenizerConfigPath });
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
    let res: SubmitResult;
    try {
      res = await this.submit(texts.map((text) => ({ text: prefix + text, truncate })));
    } catch (err) {
      const tooLong = err instanceof ItemError ? err.failure.tooLong : undefined;
      if (err instanceof ItemError && tooLong) {
        const where = texts.length > 1 ? `input[${err.index}]` : 'input';
        throw errors.invalidRequest(
          `This model's maximum input length is ${tooLong.maxLength} tokens, but ${where} has ${tooLong.tokens} tokens. Shorten it or send "truncate": true.`,
          'input',
          'context_length_exceeded',
        );
      }
      throw err;
    }
    const dims = opts.dimensions;
    const embeddings =
      dims !== undefined && dims !== this.dimensions ? res.rows.map((r) => truncateDimensions(r, dims, this.config.normalize)) : res.rows;
    return { embeddings, promptTokens: res.tokens };
  }

  /** Passages over the length budget are cut (the query is kept); a rerank never refuses length. */
  async rerank(query: string, documents: string[]): Promise<RerankResult> {
    const q = this.config.queryPrefix + query;
    const res = await this.submit(documents.map((doc) => ({ text: this.config.passagePrefix + doc, query: q })));
    const act = this.config.scoreActivation === 'sigmoid' ? (x: number) => 1 / (1 + Math.exp(-x)) : (x: number) => x;
    const logits = res.rows.map((r) => r[0]!);
    return { scores: logits.map(act), logits, promptTokens: res.tokens };
  }

  private async submit(items: WorkItem[]): Promise<SubmitResult> {
    try {
      return await this.batcher.submit(items);
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
