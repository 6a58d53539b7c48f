// Shadow records over the admin API (same admin token): routers POST batches of records; operators
// read the comparison per alias and target, or the records themselves.
// POST /v1/admin/shadow/records            {records: ShadowRecord[]}
// GET  /v1/admin/shadow/summary?window=1h&alias=&target=
// GET  /v1/admin/shadow/records?window=1h&alias=&target=&limit=100
import type { FastifyPluginAsync } from 'fastify';
import { z } from 'zod';
import { errors } from '../../common/errors.ts';
import { shadowRecordSchema, type ShadowRecord } from '../../common/shadow-record.ts';
import { parseDuration } from '../capacity/report.ts';
import type { ShadowStore } from './store.ts';
import { summarise } from './summary.ts';

export interface ShadowApiOptions {
  store: ShadowStore;
}

const ingestBody = z.strictObject({ records: z.array(shadowRecordSchema).max(10_000) });
const readQuery = z.object({
  window: z
    .string()
    .max(32)
    .optional()
    .transform((v, ctx) => {
      if (v === undefined) return 24 * 3_600_000;
      const ms = parseDuration(v);
      if (ms === undefined || ms <= 0) {
        ctx.addIssue({ code: 'custom', message: 'a duration like 90s, 15m, 1h, 7d' });
        return z.NEVER;
      }
      return ms;
    }),
  alias: z.string().max(256).optional(),
  target: z.string().max(300).optional(),
  limit: z.coerce.number().int().min(1).max(10_000).default(100),
});

/** Records summarised or listed per read; the store keeps more (controlPlane.shadow.maxRecords). */
const MAX_READ = 100_000;

/** Registered inside the admin API's scope: its admin-token hook guards these routes too. */
export const shadowApi: FastifyPluginAsync<ShadowApiOptions> = async (app, { store }) => {
  const query = (raw: unknown) => {
    const r = readQuery.safeParse(raw ?? {});
    if (!r.success) {
      const i = r.error.issues[0]!;
      throw errors.invalidRequest(`${i.path.join('.')}: ${i.message}`, i.path.join('.') || null);
    }
    return r.data;
  };
  const read = async (q: ReturnType<typeof query>, limit: number): Promise<ShadowRecord[]> => {
    const all = await store.list(Date.now() - q.window, q.alias || q.target ? MAX_READ : limit);
    const matching = all.filter((r) => (!q.alias || r.alias === q.alias) && (!q.target || r.target === q.target));
    return matching.length > limit ? matching.slice(matching.length - limit) : matching;
  };

  app.post('/v1/admin/shadow/records', { bodyLimit: 32 * 1024 * 1024 }, async (req, reply) => {
    const r = ingestBody.safeParse(req.body);
    if (!r.success) {
      const i = r.error.issues[0]!;
      throw errors.invalidRequest(`${i.path.join('.')}: ${i.message}`, i.path.join('.') || 'records');
    }
    await store.append(r.data.records);
    reply.code(204);
  });

  app.get('/v1/admin/shadow/summary', async (req) => {
    const q = query(req.query);
    const records = await read(q, MAX_READ);
    return { object: 'list', windowMs: q.window, data: summarise(records) };
  });

  app.get('/v1/admin/shadow/records', async (req) => {
    const q = query(req.query);
    const records = await read(q, q.limit);
    return { object: 'list', data: records, count: records.length };
  });
};
