// Shared by the embed integration tests: the project's default models, and a fastify app with
// the embedding routes and the same error rendering as the router.
import { fileURLToPath } from 'node:url';
import Fastify, { type FastifyInstance } from 'fastify';
import { ApiError } from '../../../common/errors.ts';
import { EmbeddingService, defaultEmbeddingsConfig, type EmbeddingsConfigInput } from '../../../router/embed/index.ts';
import { embeddingRoutes } from '../../../router/http/embeddings.ts';

export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

export function loadDefaultService(): Promise<EmbeddingService> {
  return EmbeddingService.load(defaultEmbeddingsConfig(), { baseDir: ROOT });
}

export function loadService(config: EmbeddingsConfigInput): Promise<EmbeddingService> {
  return EmbeddingService.load(config, { baseDir: ROOT });
}

export async function startApp(service: EmbeddingService): Promise<{ app: FastifyInstance; url: string }> {
  const app = Fastify({ bodyLimit: 32 * 1024 * 1024 });
  app.setErrorHandler((err, _req, reply) => {
    if (err instanceof ApiError) {
      if (err.retryAfterSeconds !== undefined) void reply.header('retry-after', String(err.retryAfterSeconds));
      return reply.status(err.status).send(err.toBody());
    }
    return reply.status(500).send({ error: { message: String(err), type: 'server_error', param: null, code: null } });
  });
  await app.register(embeddingRoutes, { service });
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  return { app, url };
}

export function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let dot = 0,
    na = 0,
    nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i]! * b[i]!;
    na += a[i]! ** 2;
    nb += b[i]! ** 2;
  }
  return dot / Math.sqrt(na * nb);
}
