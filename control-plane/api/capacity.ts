// Capacity API (fastify plugin): the capacity report, the sampled history, a live cluster view
// for the dashboard, and the dashboard itself (static HTML + JS from control-plane/ui, no build).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyPluginAsync } from 'fastify';
import { z } from 'zod';
import { errors } from '../../common/errors.ts';
import { REPO_ROOT } from '../../common/paths.ts';
import type { NodeRegistry } from '../registry/node-registry.ts';
import type { CapacityService } from '../capacity/service.ts';
import { parseDuration, type WhatIf } from '../capacity/report.ts';
import { gpuSamples } from '../capacity/sampler.ts';
import { toVerdict } from '../capacity/types.ts';

const duration = (name: string) =>
  z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined) return undefined;
      const ms = parseDuration(v);
      if (ms === undefined || ms <= 0) {
        ctx.addIssue({ code: 'custom', message: `${name}: a duration like 90s, 15m, 1h, 7d` });
        return z.NEVER;
      }
      return ms;
    });
const whatIfList = (sign: 1 | -1) =>
  z
    .union([z.string(), z.array(z.string())])
    .optional()
    .transform((v, ctx) => {
      const out: WhatIf[] = [];
      for (const item of v === undefined ? [] : Array.isArray(v) ? v : [v]) {
        const m = /^(\d{1,4})(?::(.+))?$/.exec(item);
        if (!m) {
          ctx.addIssue({ code: 'custom', message: `'${item}': N or N:kind` });
          return z.NEVER;
        }
        out.push({ delta: sign * Number(m[1]), ...(m[2] ? { kind: m[2] } : {}) });
      }
      return out;
    });

const reportQuery = z.object({
  window: duration('window'),
  growth: z.coerce.number().positive().max(1_000).optional(),
  sloTtftSeconds: z.coerce.number().positive().max(3_600).optional(),
  slot: duration('slot'),
  model: z.string().max(256).optional(),
  add: whatIfList(1),
  remove: whatIfList(-1),
});
const historyQuery = z.object({
  window: duration('window'),
  node: z.string().max(128).optional(),
  resolution: z.enum(['raw', 'bucket']).optional(),
});

// From the install root, not next to this module: compiled code runs from dist/.
const UI_DIR = join(REPO_ROOT, 'control-plane/ui');
const ASSETS: Record<string, { file: string; type: string }> = {
  '/dashboard': { file: 'dashboard.html', type: 'text/html; charset=utf-8' },
  '/dashboard/dashboard.js': { file: 'dashboard.js', type: 'text/javascript; charset=utf-8' },
  '/dashboard/dashboard.css': { file: 'dashboard.css', type: 'text/css; charset=utf-8' },
};

export interface CapacityApiOptions {
  capacity: CapacityService;
  registry: NodeRegistry;
}

export const capacityApi: FastifyPluginAsync<CapacityApiOptions> = async (app, { capacity, registry }) => {
  const bad = (e: z.ZodError) => errors.invalidRequest(e.issues.map((i) => `${i.path.join('.') || 'query'}: ${i.message}`).join('; '));

  app.get('/v1/capacity', async (req) => {
    const q = reportQuery.safeParse(req.query);
    if (!q.success) throw bad(q.error);
    const d = capacity.defaults();
    return capacity.report({
      windowMs: q.data.window ?? d.windowMs,
      growth: q.data.growth ?? d.growth,
      sloTtftSeconds: q.data.sloTtftSeconds ?? d.sloTtftSeconds,
      slotMs: q.data.slot ?? d.slotMs,
      whatIf: [...(q.data.add ?? []), ...(q.data.remove ?? [])],
      ...(q.data.model ? { model: q.data.model } : {}),
    });
  });

  app.get('/v1/capacity/history', async (req) => {
    const q = historyQuery.safeParse(req.query);
    if (!q.success) throw bad(q.error);
    const from = Date.now() - (q.data.window ?? 15 * 60_000);
    const raw = q.data.resolution === 'raw' || (q.data.resolution === undefined && capacity.history.rawCovers(from));
    return raw
      ? { resolution: 'raw', data: capacity.history.rawSamples(from, Infinity, q.data.node) }
      : { resolution: 'bucket', data: capacity.history.bucketRecords(from, Infinity, q.data.node) };
  });

  // Live view: the registry and each node's latest status as the control plane's stream has it.
  app.get('/v1/cluster', async () => {
    const now = Date.now();
    return {
      at: now,
      nodes: registry.list().map((n) => {
        const c = capacity.sampler.connections.get(n.id);
        const s = c?.status;
        const fresh = !!c?.connected && !!s && now - c.statusReceivedAt < 3 * Math.max(s.heartbeatIntervalMs || 500, 250) + 1_000;
        return {
          id: n.id,
          address: n.address,
          models: s?.models.length ? s.models.map((m) => m.name) : n.models,
          cordoned: n.cordoned,
          connected: fresh,
          ready: fresh && !!s?.ready,
          notReadyReason: s?.notReadyReason ?? (fresh ? '' : 'no status'),
          draining: !!s?.draining,
          gpuVerdict: s ? (s.gpus.length ? toVerdict(s.gpuVerdict) : 'HEALTHY') : 'UNKNOWN',
          gpus: gpuSamples(s),
          load: s?.load
            ? {
                running: s.load.running,
                waiting: s.load.waiting,
                kvCacheUsage: s.load.kvCacheUsage,
                ttftSeconds: s.load.ttftRecentSeconds,
                maxNumSeqs: s.load.maxNumSeqs,
              }
            : undefined,
          statusAgeMs: c?.statusReceivedAt ? now - c.statusReceivedAt : undefined,
        };
      }),
    };
  });

  const assets = new Map(Object.entries(ASSETS).map(([path, a]) => [path, { body: readFileSync(join(UI_DIR, a.file)), type: a.type }]));
  for (const [path, a] of assets) {
    app.get(path, async (_req, reply) => {
      reply
        .header('content-type', a.type)
        .header('cache-control', 'no-cache')
        .header(
          'content-security-policy',
          "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'",
        );
      return reply.send(a.body);
    });
  }
  app.get('/dashboard/', async (_req, reply) => reply.redirect('/dashboard'));
};
