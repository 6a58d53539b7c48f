// Usage records over the admin API (same admin token): routers POST batches here in the embedded
// default (no Redis); with Redis the records are in the stream and this only reads them.
// GET /v1/admin/usage?tenant=&key=&tag=name=value&model=&day=YYYY-MM-DD&format=json|csv&limit=
import type { FastifyPluginAsync } from 'fastify';
import { z } from 'zod';
import { errors } from '../../common/errors.ts';
import { toCsv, usageQuerySchema, type UsageRecord, type UsageStore } from '../../common/store/usage.ts';

export interface UsageApiOptions {
  store: UsageStore;
}

const recordSchema = z
  .object({
    id: z.string(),
    ts: z.number(),
    tenantId: z.string().nullable(),
    keyId: z.string().nullable(),
    requestedModel: z.string(),
    model: z.string(),
    backend: z.string(),
    lane: z.string(),
    tags: z.record(z.string(), z.string()),
    promptTokens: z.number(),
    completionTokens: z.number(),
    costUsd: z.number(),
    ttftMs: z.number().nullable(),
    latencyMs: z.number(),
    outcome: z.enum(['ok', 'error', 'cancelled']),
    status: z.number(),
  })
  .strip();
const ingestBody = z.strictObject({ records: z.array(recordSchema).max(50_000) });

/** Registered inside the admin API's scope: its admin-token hook guards these routes too. */
export const usageApi: FastifyPluginAsync<UsageApiOptions> = async (app, { store }) => {
  app.post('/v1/admin/usage/records', { bodyLimit: 64 * 1024 * 1024 }, async (req, reply) => {
    const r = ingestBody.safeParse(req.body);
    if (!r.success) throw errors.invalidRequest(`records: ${r.error.issues[0]!.message}`, 'records');
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
