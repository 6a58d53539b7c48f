// Admin API for tenants and keys (the operator's admin token; there is no default token: without
// one no operator can call), and the policy watch stream routers follow (the router token).
import type { FastifyPluginAsync } from 'fastify';
import { z } from 'zod';
import { errors } from '../../common/errors.ts';
import { policySchema, type PolicySnapshot } from '../../common/contracts.ts';
import type { TenantRegistry } from '../tenants/tenant-registry.ts';
import { snapshotStreamRoute } from './snapshot-stream.ts';
import type { UsageStore } from '../../common/store/usage.ts';
import { usageApi } from './usage.ts';
import { shadowApi, type ShadowStore } from '../shadow/index.ts';

export interface AdminApiOptions {
  registry: TenantRegistry;
  keepAliveMs?: number;
  /** Usage records (GET /v1/admin/usage, POST /v1/admin/usage/records). */
  usage?: UsageStore;
  /** Shadow-traffic records (POST /v1/admin/shadow/records, GET /v1/admin/shadow/summary). */
  shadow?: ShadowStore;
}

const tenantBody = z.strictObject({
  name: z.string().min(1).max(200),
  policy: policySchema.optional(),
  tags: z.record(z.string().max(64), z.string().max(256)).optional(),
});
const tenantPatch = z.strictObject({
  name: z.string().min(1).max(200).optional(),
  policy: policySchema.optional(),
  tags: z.record(z.string().max(64), z.string().max(256)).optional(),
  disabled: z.boolean().optional(),
});
const keyBody = z.strictObject({ name: z.string().max(200).optional(), policy: policySchema.optional() });
const idParams = z.object({ id: z.string().min(1).max(64) });

function parse<T extends z.ZodType>(schema: T, v: unknown): z.infer<T> {
  const r = schema.safeParse(v ?? {});
  if (!r.success) {
    const i = r.error.issues[0]!;
    throw errors.invalidRequest(`${i.path.join('.') || 'body'}: ${i.message}`, i.path.join('.') || null);
  }
  return r.data;
}

/** Never echo a secret: the key list and the watch carry hashes only. */
export const adminApi: FastifyPluginAsync<AdminApiOptions> = async (app, { registry, keepAliveMs = 5_000, usage, shadow }) => {
  // Who may call each route (operator; routers for usage and shadow records, the policy watch): access.ts.
  await app.register(async (scope) => {
    if (usage) await scope.register(usageApi, { store: usage });
    if (shadow) await scope.register(shadowApi, { store: shadow });

    scope.post('/v1/admin/tenants', async (req, reply) => {
      const t = registry.createTenant(parse(tenantBody, req.body));
      reply.code(201);
      return t;
    });
    scope.get('/v1/admin/tenants', async () => ({ data: registry.listTenants() }));
    scope.patch('/v1/admin/tenants/:id', async (req) => {
      const { id } = idParams.parse(req.params);
      const t = registry.updateTenant(id, parse(tenantPatch, req.body));
      if (!t) throw errors.notFound(`tenant '${id}' not found`);
      return t;
    });
    scope.post('/v1/admin/tenants/:id/keys', async (req, reply) => {
      const { id } = idParams.parse(req.params);
      const created = registry.createKey(id, parse(keyBody, req.body));
      if (!created) throw errors.notFound(`tenant '${id}' not found`);
      reply.code(201);
      const { hash: _hash, ...record } = created.record;
      return { ...record, key: created.key, note: 'Store this key now: it is not shown again.' };
    });
    scope.get('/v1/admin/keys', async (req) => {
      const q = z.object({ tenant: z.string().optional() }).parse(req.query);
      return { data: registry.listKeys(q.tenant).map(({ hash: _hash, ...k }) => k) };
    });
    scope.delete('/v1/admin/keys/:id', async (req) => {
      const { id } = idParams.parse(req.params);
      const k = registry.revokeKey(id);
      if (!k) throw errors.notFound(`key '${id}' not found`);
      const { hash: _hash, ...record } = k;
      return record;
    });

    // Routers follow this: the whole policy on connect and on every change.
    snapshotStreamRoute<PolicySnapshot>(scope, '/v1/policy/watch', registry, keepAliveMs);
  });
};
