export { EmbeddingService, type EmbedOptions, type ServedModelInfo } from './service.ts';
export {
  embeddingModelConfigSchema,
  embeddingsConfigSchema,
  defaultEmbeddingsConfig,
  type EmbeddingModelConfig,
  type EmbeddingsConfig,
  type EmbeddingsConfigInput,
} from './config.ts';
export type { EmbedResult, RerankResult, InputType } from './model.ts';
