// Router lane reports (router/admission/lane-report.ts): each router replica posts its lane
// queues and admitted/refused counters every few seconds; the dashboard reads them back with
// rates computed between consecutive reports. Kept in memory: it is live state, not history
// (the routers' Prometheus metrics are the history).
import type { FastifyPluginAsync } from 'fastify';
import { z } from 'zod';
import { errors } from '../../common/errors.ts';
import { LANES } from '../../common/contracts.ts';

const count = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const laneState = z.strictObject({
  queued: count,
  admitted: count,
  refused: z.record(z.string().regex(/^[a-z_]{1,32}$/), count).refine((r) => Object.keys(r).length <= 16, 'at most 16 reasons'),
});
const reportBody = z.strictObject({
  lanes: z.strictObject(Object.fromEntries(LANES.map((l) => [l, laneState])) as Record<(typeof LANES)[number], typeof laneState>),
});
const idParams = z.object({
  id: z
    .string()
    .min(1)
    .max(128)
    .regex(/^[A-Za-z0-9._:-]+$/, 'letters, digits, dot, colon, dash and underscore only'),
});
type Report = z.infer<typeof reportBody>;

interface Entry {
  report: Report;
  at: number;
  prev?: { report: Report; at: number };
}

export interface RouterLaneView {
  router: string;
  ageMs: number;
  lanes: {
    lane: string;
    queued: number;
    admitted: number;
    refused: Record<string, number>;
    admittedPerSecond: number | null;
    refusedPerSecond: number | null;
  }[];
}

export interface RoutersApiOptions {
  /** A router not heard from for this long is dropped from the view. */
  ttlMs?: number;
  /** At most this many routers are kept (a bound against a flood of made-up ids). */
  maxRouters?: number;
  now?: () => number;
}

export const routersApi: FastifyPluginAsync<RoutersApiOptions> = async (app, { ttlMs = 15_000, maxRouters = 256, now = Date.now }) => {
  const routers = new Map<string, Entry>();
  const prune = () => {
    for (const [id, e] of routers) if (now() - e.at > ttlMs) routers.delete(id);
  };

  app.post('/v1/routers/:id/report', async (req, reply) => {
    const params = idParams.safeParse(req.params);
    if (!params.success) throw errors.invalidRequest(`router id: ${params.error.issues[0]!.message}`);
    const parsed = reportBody.safeParse(req.body);
    if (!parsed.success) throw errors.invalidRequest(parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '));
    prune();
    const old = routers.get(params.data.id);
    if (!old && routers.size >= maxRouters) throw errors.rateLimited(`more than ${maxRouters} routers are reporting`, 15);
    routers.set(params.data.id, { report: parsed.data, at: now(), prev: old && { report: old.report, at: old.at } });
    reply.code(204);
  });

  app.get('/v1/routers', async () => {
    prune();
    const data: RouterLaneView[] = [...routers]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([router, e]) => ({
        router,
        ageMs: now() - e.at,
        lanes: LANES.map((lane) => {
          const cur = e.report.lanes[lane];
          const before = e.prev?.report.lanes[lane];
          const dt = e.prev ? (e.at - e.prev.at) / 1000 : 0;
          const total = (r: Record<string, number>) => Object.values(r).reduce((a, b) => a + b, 0);
          // A restarted router's counters start again from zero: no rate for that interval.
          const rate = (a: number, b: number) => (dt > 0 && a >= b ? (a - b) / dt : null);
          return {
            lane,
            queued: cur.queued,
            admitted: cur.admitted,
            refused: cur.refused,
            admittedPerSecond: before ? rate(cur.admitted, before.admitted) : null,
            refusedPerSecond: before ? rate(total(cur.refused), total(before.refused)) : null,
          };
        }),
      }));
    return { data };
  });
};
