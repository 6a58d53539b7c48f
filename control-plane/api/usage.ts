// Usage records over the admin API (same admin token): routers POST batches here in the embedded
// default (no Redis); with Redis the records are in the stream and this only reads them.
// GET /v1/admin/usage?tenant=&key=&tag=name=value&model=&day=YYYY-MM-DD&format=json|csv&limit=
import type { FastifyPluginAsync } from 'fastify';
import { z } from 'zod';
import { errors } from '../../common/errors.ts';
import { USAGE_LIMITS, toCsv, usageQuerySchema, type UsageRecord, type UsageStore } from '../../common/store/usage.ts';

export interface UsageApiOptions {
  store: UsageStore;
}

// Routers cap these fields before sending (common/store/usage.ts boundUsageRecord); a record over
// a cap is refused here (400), so no client value is ever stored whole.
const L = USAGE_LIMITS;
const count = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const recordSchema = z
  .object({
    id: z.string().max(L.id),
    ts: count,
    tenantId: z.string().max(L.tenantId).nullable(),
    keyId: z.string().max(L.keyId).nullable(),
    requestedModel: z.string().max(L.requestedModel),
    model: z.string().max(L.model),
    backend: z.string().max(L.backend),
    lane: z.string().max(L.lane),
    tags: z
      .record(z.string().max(L.tagName), z.string().max(L.tagValue))
      .refine((t) => Object.keys(t).length <= L.tags, `at most ${L.tags} tags`),
    promptTokens: count,
    completionTokens: count,
    costUsd: z.number().min(0).max(1e12),
    ttftMs: z.number().min(0).max(1e12).nullable(),
    latencyMs: z.number().min(0).max(1e12),
    outcome: z.enum(['ok', 'error', 'cancelled']),
    status: z.number().int().min(100).max(599),
    truncated: z.array(z.string().max(32)).max(16).optional(),
  })
  .strip();
/** Routers send chunks of at most 1 MiB (router/accounting/usage-sink.ts); the body limit leaves room. */
export const USAGE_INGEST_BODY_LIMIT = 8 * 1024 * 1024;
const ingestBody = z.strictObject({ records: z.array(recordSchema).max(10_000) });

/** Registered inside the admin API's scope: its admin-token hook guards these routes too. */
export const usageApi: FastifyPluginAsync<UsageApiOptions> = async (app, { store }) => {
  app.post('/v1/admin/usage/records', { bodyLimit: USAGE_INGEST_BODY_LIMIT }, async (req, reply) => {
    const r = ingestBody.safeParse(req.body);
    if (!r.success) {
      const i = r.error.issues[0]!;
      const path = i.path.length ? i.path.join('.') : 'records';
      throw errors.invalidRequest(`${path}: ${i.message}`, path);
    }
    await store.append(r.data.records as UsageRecord[]);
    reply.code(204);
  });

  app.get('/v1/admin/usage', async (req, reply) => {
    const r = usageQuerySchema.safeParse(req.query ?? {});
    if (!r.success) {
      const i = r.error.issues[0]!;
      throw errors.invalidRequest(`${i.path.join('.')}: ${i.message}`, i.path.join('.') || null);
    }
    const records = await store.query(r.data);
    if (r.data.format === 'csv') {
      reply.header('content-type', 'text/csv; charset=utf-8');
      return toCsv(records);
    }
    return { object: 'list', data: records, count: records.length };
  });
};
