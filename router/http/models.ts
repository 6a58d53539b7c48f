// GET /v1/models: models served by ready nodes, plus aliases that resolve to one, in OpenAI's shape.
import type { FastifyPluginAsync } from 'fastify';
import type { Scheduler } from '../scheduling/scheduler.ts';
import type { ModelResolver } from '../models/model-resolver.ts';

export interface ModelsRoutesOptions {
  scheduler: Scheduler;
  resolver: ModelResolver;
  statusStaleMs: number;
  /** Extra models served by the router itself (embedders, rerankers). */
  localModels?: () => { id: string; kind: string }[];
}

const CREATED = Math.floor(Date.now() / 1000);

export const modelsRoutes: FastifyPluginAsync<ModelsRoutesOptions> = async (app, opts) => {
  app.get('/v1/models', async () => {
    const served = opts.scheduler.servedModels(opts.statusStaleMs);
    const ids = [...served, ...opts.resolver.servedAliases(served)];
    const data = ids.sort().map((id) => ({ id, object: 'model', created: CREATED, owned_by: 'gpu-pool' }));
    for (const m of opts.localModels?.() ?? []) data.push({ id: m.id, object: 'model', created: CREATED, owned_by: `router-${m.kind}` });
    return { object: 'list', data };
  });
};
