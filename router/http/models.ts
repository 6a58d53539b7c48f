// GET /v1/models: models served by ready nodes, plus aliases that resolve to one, the router's own
// embedders, and models only a fallback chain serves, in OpenAI's shape. GET /v1/models/{model}:
// one of those (the spec's Model object), 404 `model_not_found` for any other.
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import { errors } from '../../common/errors.ts';
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
  /** The caller's `allowedModels` (tenant and key), when its key limits it; undefined = no limit. */
  allowedModelsOf?: (req: FastifyRequest) => readonly string[] | undefined;
}

export interface ModelObject {
  id: string;
  object: 'model';
  created: number;
  owned_by: string;
}

const CREATED = Math.floor(Date.now() / 1000);

export const modelsRoutes: FastifyPluginAsync<ModelsRoutesOptions> = async (app, opts) => {
  /** Every model the caller may see, by id (the list and the lookup share it, so they never disagree). */
  const visible = (req: FastifyRequest): Map<string, ModelObject> => {
    const served = opts.scheduler.servedModels(opts.statusStaleMs);
    const ids = [...served, ...opts.resolver.servedAliases(served)].sort();
    const out = new Map<string, ModelObject>();
    for (const id of ids) out.set(id, { id, object: 'model', created: CREATED, owned_by: 'gpu-pool' });
    for (const m of opts.localModels?.() ?? [])
      out.set(m.id, { id: m.id, object: 'model', created: CREATED, owned_by: `router-${m.kind}` });
    // A model no node or local embedder serves now is still callable through its chain.
    for (const m of opts.fallbackModels?.() ?? [])
      if (!out.has(m.id)) out.set(m.id, { id: m.id, object: 'model', created: CREATED, owned_by: m.ownedBy });
    const allowed = opts.allowedModelsOf?.(req);
    if (allowed) for (const id of [...out.keys()]) if (!allowed.includes(id)) out.delete(id);
    return out;
  };

  app.get('/v1/models', async (req) => ({ object: 'list', data: [...visible(req).values()] }));

  // The id may contain '/' (e.g. `meta-llama/Llama-3.1-8B`): a wildcard route takes the rest of the path.
  app.get('/v1/models/*', async (req) => {
    const id = (req.params as { '*': string })['*'];
    const model = visible(req).get(id);
    if (!model) throw errors.modelNotFound(id);
    return model;
  });
};
