// The embedding/rerank service the router constructs from config: a set of loaded models.
import { errors } from '../../common/errors.ts';
import { embeddingsConfigSchema, type EmbeddingsConfig, type EmbeddingsConfigInput } from './config.ts';
import { LoadedModel, type EmbedResult, type InputType, type ModelLogger, type RerankResult } from './model.ts';

export interface ServedModelInfo {
  id: string;
  kind: 'embedding' | 'rerank';
  dimensions: number;
  maxLength: number;
  maxInputs: number;
  matryoshka: boolean;
  provider: 'cpu' | 'cuda';
}

export interface EmbedOptions {
  /** Chooses the configured query or passage prefix (default passage). */
  inputType?: InputType;
  /** Cut over-long inputs instead of refusing them (default: the model's config). */
  truncate?: boolean;
  /** Matryoshka models only; checked by `embed`. */
  dimensions?: number;
}

export class EmbeddingService {
  private constructor(private readonly models: Map<string, LoadedModel>) {}

  static async load(
    config: EmbeddingsConfig | EmbeddingsConfigInput,
    opts: { baseDir?: string; logger?: ModelLogger } = {},
  ): Promise<EmbeddingService> {
    const cfg = embeddingsConfigSchema.parse(config);
    const baseDir = opts.baseDir ?? process.cwd();
    const loaded = new Map<string, LoadedModel>();
    try {
      // One at a time: the machines are small and load errors stay readable.
      for (const m of cfg.models) loaded.set(m.id, await LoadedModel.load(m, baseDir, cfg.intraOpNumThreads, opts.logger));
    } catch (err) {
      await Promise.all([...loaded.values()].map((m) => m.close()));
      throw err;
    }
    return new EmbeddingService(loaded);
  }

  listModels(): { id: string; kind: 'embedding' | 'rerank' }[] {
    return [...this.models.values()].map((m) => ({ id: m.config.id, kind: m.config.kind }));
  }

  hasModel(id: string): boolean {
    return this.models.has(id);
  }

  /** Throws 404 model_not_found for unknown ids. */
  modelInfo(id: string): ServedModelInfo {
    const m = this.get(id);
    return {
      id: m.config.id,
      kind: m.config.kind,
      dimensions: m.dimensions,
      maxLength: m.config.maxLength,
      maxInputs: m.config.maxInputs,
      matryoshka: m.config.matryoshka,
      provider: m.runtime.provider,
    };
  }

  /** Tokens `inputs` take in an embedding model's own tokenizer; undefined for models not served here. */
  async countTokens(model: string, inputs: string[], inputType?: InputType): Promise<number | undefined> {
    const m = this.models.get(model);
    return m ? m.countTokens(inputs, inputType) : undefined;
  }

  /** First model of a kind (for APIs whose requests name no model, such as TEI's /rerank). */
  defaultModel(kind: 'embedding' | 'rerank'): string | undefined {
    return [...this.models.values()].find((m) => m.config.kind === kind)?.config.id;
  }

  async embed(model: string, inputs: string[], opts: EmbedOptions = {}): Promise<EmbedResult> {
    const m = this.get(model);
    if (m.config.kind !== 'embedding')
      throw errors.invalidRequest(`Model '${model}' is a rerank model; use /v1/rerank.`, 'model', 'wrong_model_kind');
    this.checkCount(m, inputs.length, 'input');
    if (opts.dimensions !== undefined && opts.dimensions !== m.dimensions) {
      if (!m.config.matryoshka) {
        throw errors.invalidRequest(
          `Model '${model}' does not support 'dimensions' other than its native ${m.dimensions}.`,
          'dimensions',
          'unsupported_dimensions',
        );
      }
      if (opts.dimensions < 1 || opts.dimensions > m.dimensions) {
        throw errors.invalidRequest(`'dimensions' must be between 1 and ${m.dimensions} for model '${model}'.`, 'dimensions');
      }
    }
    return m.embed(inputs, opts);
  }

  async rerank(model: string, query: string, documents: string[]): Promise<RerankResult> {
    const m = this.get(model);
    if (m.config.kind !== 'rerank')
      throw errors.invalidRequest(`Model '${model}' is an embedding model; use /v1/embeddings.`, 'model', 'wrong_model_kind');
    this.checkCount(m, documents.length, 'documents');
    return m.rerank(query, documents);
  }

  /** Sequences waiting per model (for metrics and tests). */
  queueDepth(model: string): number {
    return this.get(model).queued;
  }

  batchStats(model: string) {
    return { ...this.get(model).batchStats };
  }

  async close(): Promise<void> {
    const ms = [...this.models.values()];
    this.models.clear();
    await Promise.all(ms.map((m) => m.close()));
  }

  private get(id: string): LoadedModel {
    const m = this.models.get(id);
    if (!m) throw errors.modelNotFound(id);
    return m;
  }

  private checkCount(m: LoadedModel, n: number, param: string): void {
    if (n === 0) throw errors.invalidRequest(`'${param}' must not be empty.`, param);
    if (n > m.config.maxInputs)
      throw errors.invalidRequest(`'${param}' has ${n} items; the maximum for model '${m.config.id}' is ${m.config.maxInputs}.`, param);
  }
}
