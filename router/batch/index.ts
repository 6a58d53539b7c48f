// Wires batch jobs for the router: the store (Redis when configured, else files under dataDir),
// the API service and the worker. Items run through the router's own HTTP path (fastify inject)
// as the key that created the job, in the sheddable lane: tenancy, budgets, admission, dispatch
// and usage records apply to each item exactly as to an interactive request.
import { accessSync, constants, mkdirSync, readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { RouterProcessConfig } from '../config.ts';
import type { Logger } from '../../common/logger.ts';
import type { RouterMetrics } from '../metrics.ts';
import { onBehalfHeaders } from '../tenancy/on-behalf.ts';
import type { BatchConfig } from './config.ts';
import { FileBatchStore } from './file-store.ts';
import { RedisBatchStore } from './redis-store.ts';
import { BatchRunner, type ItemExecutor } from './runner.ts';
import { BatchService, longestWindowMs } from './service.ts';
import type { BatchStore } from './store.ts';
import { newId } from './lines.ts';

export interface BatchJobs {
  config: BatchConfig;
  service: BatchService;
  store: BatchStore;
  /** Starts the worker once the routes it calls are registered; it claims nothing while `canRun` is false. */
  start(app: FastifyInstance, canRun: () => boolean): void;
  close(graceMs: number): Promise<void>;
}

export async function startBatch(
  config: RouterProcessConfig,
  logger: Logger,
  metrics: RouterMetrics,
  routerId: string,
): Promise<BatchJobs | undefined> {
  const cfg = config.router.batch;
  if (!cfg.enabled) return undefined;
  const redisUrl = config.redis.batch;
  // File bytes always live under dataDir, with Redis too: where it cannot be written (a read-only
  // root file system without a volume for it) batch jobs are off, and the router still serves.
  try {
    mkdirSync(cfg.dataDir, { recursive: true });
    accessSync(cfg.dataDir, constants.W_OK);
  } catch (err) {
    logger.error(
      { dataDir: cfg.dataDir, err: (err as Error).message },
      'router.batch.dataDir is not writable: /v1/files and /v1/batches are off (mount a volume there; replicas on one Redis share it)',
    );
    return undefined;
  }
  let store: BatchStore;
  if (redisUrl) {
    // Metadata and item state only; the bytes stay under dataDir (a volume the replicas share).
    const retentionMs = cfg.batchRetentionSeconds * 1000;
    const redis = new RedisBatchStore(redisUrl, cfg.dataDir, { itemTtlMs: longestWindowMs(cfg) + retentionMs, retentionMs });
    await redis.ready(5_000).catch(() => logger.warn('Redis not reachable at start; batch jobs wait for it'));
    store = redis;
  } else {
    store = new FileBatchStore(cfg.dataDir);
  }
  const secret =
    process.env.ICP_BATCH_WEBHOOK_SECRET || (cfg.webhook.secretFile ? readFileSync(cfg.webhook.secretFile, 'utf8').trim() : undefined);
  if (cfg.webhook.url && !secret) logger.warn('router.batch.webhook.url is set without a secret: webhooks go out unsigned');
  const service = new BatchService(store, cfg);
  let runner: BatchRunner | undefined;
  // Expired files (records and bytes) and jobs past their retention go; every replica sweeps (deletes are idempotent).
  const sweep = () =>
    void service
      .sweep()
      .then((n) => n && logger.info({ files: n }, 'expired batch files deleted'))
      .catch((err: Error) => logger.warn({ err: err.message }, 'batch sweep failed'));
  const sweeper = setInterval(sweep, cfg.sweepMs);
  sweeper.unref();
  sweep();
  // A lease owner unique to this process, so a restarted router never mistakes an old lease for its own.
  const owner = `${routerId}:${randomBytes(4).toString('hex')}`;

  return {
    config: cfg,
    service,
    store,
    start(app, canRun) {
      const exec: ItemExecutor = async (item, keyId) => {
        const { stream: _s, stream_options: _o, ...body } = item.body;
        const requestId = newId('req_batch_');
        const res = await app.inject({
          method: 'POST',
          url: item.url,
          headers: {
            'content-type': 'application/json',
            'x-priority-lane': 'sheddable',
            'x-request-id': requestId,
            ...onBehalfHeaders(keyId),
          },
          payload: JSON.stringify(body),
        });
        let parsed: unknown;
        try {
          parsed = res.json();
        } catch {
          parsed = {
            error: {
              message: 'The server answered with a body that is not JSON.',
              type: 'server_error',
              param: null,
              code: 'internal_error',
            },
          };
        }
        const retryAfter = Number(res.headers['retry-after']);
        return { status: res.statusCode, body: parsed, requestId, retryAfterSeconds: Number.isFinite(retryAfter) ? retryAfter : undefined };
      };
      runner = new BatchRunner(
        store,
        cfg,
        exec,
        logger.child({ component: 'batch' }),
        owner,
        secret,
        {
          item: (outcome, n = 1) => metrics.batchItems.inc({ outcome }, n),
          job: (status) => metrics.batchJobs.inc({ status }),
          webhook: (result) => metrics.batchWebhooks.inc({ result }),
        },
        canRun,
      );
      runner.start();
    },
    async close(graceMs) {
      clearInterval(sweeper);
      await runner?.close(graceMs);
      await store.close();
    },
  };
}
