// GET /v1/models: models served by ready nodes, plus aliases that resolve to one, the router's own
// embedders, and models only a fallback chain serves, in OpenAI's shape.
import type { FastifyPluginAsync } from 'fastify';
import type { Scheduler } from '../scheduling/scheduler.ts';
import type { ModelResolver } from '../models/model-resolver.ts';

export interface ModelsRoutesOptions {
  scheduler: Scheduler;
  resolver: ModelResolver;
  statusStaleMs: number;
  /** Extra models served by the router itself (embedders, rerankers). */
  localModels?: () => { id: string; kind: string }[];
  /** Models a fallback chain serves (`ownedBy`: its first hosted backend, e.g. `openai:gpt-4o-mini`). */
  fallbackModels?: () => { id: string; ownedBy: string }[];
}

const CREATED = Math.floor(Date.now() / 1000);

export const modelsRoutes: FastifyPluginAsync<ModelsRoutesOptions> = async (app, opts) => {
  app.get('/v1/models', async () => {
    const served = opts.scheduler.servedModels(opts.statusStaleMs);
    const ids = [...served, ...opts.resolver.servedAliases(served)];
    const data = ids.sort().map((id) => ({ id, object: 'model', created: CREATED, owned_by: 'gpu-pool' }));
    for (const m of opts.localModels?.() ?? []) data.push({ id: m.id, object: 'model', created: CREATED, owned_by: `router-${m.kind}` });
    // A model no node or local embedder serves now is still callable through its chain.
    const listed = new Set(data.map((d) => d.id));
    for (const m of opts.fallbackModels?.() ?? [])
      if (!listed.has(m.id)) data.push({ id: m.id, object: 'model', created: CREATED, owned_by: m.ownedBy });
    return { object: 'list', data };
  });
};
