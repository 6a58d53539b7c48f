// Router process: wires membership (control plane + static nodes), the node pool, the scheduler,
// the dispatcher and the HTTP routes. Route handlers only translate HTTP; decisions live in
// scheduling/ and upstream/.
import { hostname } from 'node:os';
import type { RouterProcessConfig } from './config.ts';
import { createLogger } from '../common/logger.ts';
import { createHttpServer, routesOf, type RouteEntry } from '../common/http.ts';
import { announceListening, onShutdown, sleep } from '../common/process.ts';
import { NodePool } from './nodes/node-pool.ts';
import { agentChannelSecurity } from '../common/tls.ts';
import { ControlPlaneWatch } from './nodes/membership.ts';
import { Scheduler, defaultProfile } from './scheduling/scheduler.ts';
import { NodeDispatcher } from './upstream/node-dispatch.ts';
import { ModelResolver } from './models/model-resolver.ts';
import { generationRoutes } from './http/generation.ts';
import { RequestFields } from './http/request-fields.ts';
import { createShadow } from './shadow/index.ts';
import { AdmissionController } from './admission/controller.ts';
import { startLaneReporter } from './admission/lane-report.ts';
import { modelsRoutes } from './http/models.ts';
import { createRouterMetrics } from './metrics.ts';
import { embeddingRoutes } from './http/embeddings.ts';
import { EmbeddingService } from './embed/index.ts';
import { REPO_ROOT } from '../common/paths.ts';
import { createFallback } from './upstream/fallback.ts';
import { startTenancy } from './tenancy/index.ts';
import { startTelemetry } from '../common/telemetry.ts';
import { startAccounting } from './accounting/index.ts';
import { startBatch } from './batch/index.ts';
import { batchRoutes } from './http/batches.ts';
import { createIdempotency } from './idempotency/index.ts';
import { ResponseCache } from './cache/index.ts';
import { controlPlaneAuthHeaders } from './control-plane-auth.ts';
import { assertSecureListen } from '../common/credentials.ts';

export interface RunningRouter {
  url: string;
  pool: NodePool;
  /** Every HTTP route (security tests enumerate them). */
  routes(): readonly RouteEntry[];
  close(): Promise<void>;
}

export async function startRouter(config: RouterProcessConfig): Promise<RunningRouter> {
  const cfg = config.router;
  const routerId = cfg.id ?? `router-${hostname()}-${process.pid}`;
  const logger = createLogger('router', config.logging.level).child({ router: routerId });

  // mTLS to the agents when router.agentTls is set (docs/security.md).
  const pool = new NodePool(routerId, logger, agentChannelSecurity(cfg.agentTls));
  pool.setStatic(cfg.staticNodes.map((n) => ({ ...n, cordoned: false })));
  let membershipSynced = !config.controlPlaneUrl;
  const cpAuth = controlPlaneAuthHeaders(config);
  if (config.controlPlaneUrl && !cpAuth.authorization)
    logger.warn('no router token (ICP_ROUTER_TOKEN / router.controlPlaneTokenFile): the control plane will refuse this router');
  // Tenant keys off beyond loopback would serve anyone who can reach the port.
  assertSecureListen('router', cfg.listen.host, cfg.auth.mode === 'off' ? ['router.auth.mode off (no API keys)'] : [], process.env, (m) =>
    logger.warn(m),
  );
  const watch = config.controlPlaneUrl ? new ControlPlaneWatch(config.controlPlaneUrl, logger, cpAuth) : undefined;
  watch?.on('members', (members) => {
    membershipSynced = true;
    pool.setMembers(members);
  });
  watch?.start();

  const scheduler = new Scheduler(pool, defaultProfile(cfg.statusStaleMs, cfg.scheduling));
  // The queue-depth gauge reads `admission` at scrape time, after it exists.
  const metrics = createRouterMetrics(
    (lane) => admission?.queueDepth(lane) ?? 0,
    () => pool.list().map((n): [string, number] => [n.id, n.inFlight]),
    () => scheduler.routableNodes(cfg.statusStaleMs),
  );
  const admission = cfg.admission.enabled
    ? new AdmissionController(
        cfg.admission,
        (model) => fallbackAwareWait(model, scheduler.bestPredictedWait({ model, exclude: new Set() })),
        Date.now,
        {
          onAdmitted: (lane, queuedMs) => metrics.queueWait.observe({ lane }, queuedMs / 1000),
          onRefused: (lane, reason) => metrics.refusals.inc({ lane, reason }),
        },
      )
    : undefined;
  // Queued requests are re-checked on every status (load changed) and on a short tick (deadlines).
  const admissionTick = admission ? setInterval(() => admission.tick(), cfg.admission.tickMs) : undefined;
  admissionTick?.unref();
  if (admission) pool.on('change', () => admission.pump());
  // Lanes and refusals on the operator dashboard.
  const stopLaneReport =
    admission && config.controlPlaneUrl
      ? startLaneReporter(config.controlPlaneUrl, routerId, admission, logger, cfg.laneReportIntervalMs, cpAuth)
      : undefined;
  // Breakers exist with or without fallback configured (defaults then); see docs/fallback.md.
  const fallback = createFallback(cfg, logger, metrics);
  const dispatcher = new NodeDispatcher(
    scheduler,
    cfg.maxAttempts,
    logger,
    {
      onAttempt: (node, outcome) => {
        metrics.picks.inc({ node });
        metrics.attempts.inc({ node, outcome });
      },
    },
    fallback.nodeBreakers,
    fallback.nodeRetry,
  );
  const upstream = fallback.wrap(dispatcher);
  const chainModels = upstream.chainModels?.() ?? new Set<string>();
  const resolver = new ModelResolver(cfg.aliases, scheduler, chainModels, cfg.catalog?.splits);
  // No node at all for a model with a fallback chain: admit at once and let the chain serve it,
  // rather than queue for nodes that do not exist (the `no_ready_node` trigger).
  function fallbackAwareWait(model: string, wait: number): number {
    return wait === Infinity && chainModels.has(model) ? 0 : wait;
  }

  const embeddings = cfg.embeddings?.models.length
    ? await EmbeddingService.load(cfg.embeddings, { baseDir: REPO_ROOT, logger })
    : undefined;

  const tenancy =
    cfg.auth.mode === 'required'
      ? await startTenancy(
          config,
          logger,
          () => metrics.limitStoreFailures.inc({ store: 'limits', policy: cfg.auth.onStoreError }),
          embeddings ? (model, texts, inputType) => embeddings.countTokens(model, texts, inputType) : undefined,
        )
      : undefined;
  // Budgets, cost and usage records (docs/tenants.md); after tenancy: it reads the principal.
  const accounting = await startAccounting(config, logger, metrics);
  // Batch jobs (docs/batch.md): files and job state in Redis or under router.batch.dataDir.
  const batch = await startBatch(config, logger, metrics, routerId);
  // Idempotency-Key: the outermost check of the generation routes (docs/idempotency-and-cache.md).
  const idempotency = await createIdempotency(config, logger, metrics.idempotent, metrics.idempotencyEvictions);
  // Response cache (docs/idempotency-and-cache.md): its semantic side uses the embedder above.
  const cache = cfg.cache
    ? await ResponseCache.create(cfg.cache, { redisUrl: config.redis.cache, embeddings, metrics, logger })
    : undefined;
  // Shadow traffic (docs/shadow.md): to the GPU pool directly, never through the fallback chain.
  const shadow = createShadow(config, logger, metrics, { nodes: dispatcher, admission, embeddings });

  const app = createHttpServer({ logger, bodyLimitBytes: cfg.bodyLimitBytes, limits: cfg.http });
  let closing = false;
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_req, reply) => {
    const usable = scheduler.servedModels(cfg.statusStaleMs).size;
    const ready = membershipSynced && !closing;
    reply.code(ready ? 200 : 503);
    return { ready, membershipSynced, nodes: pool.list().length, servedModels: usable, tenancy: tenancy?.status() };
  });
  app.get('/metrics', async (_req, reply) => {
    reply.header('content-type', metrics.registry.contentType);
    return metrics.registry.metrics();
  });
  await app.register(modelsRoutes, {
    scheduler,
    resolver,
    statusStaleMs: cfg.statusStaleMs,
    localModels: () => embeddings?.listModels() ?? [],
    fallbackModels: () => upstream.chains?.chainListing() ?? [],
    // The list stays open; a key limited to some models sees only those (no key or a bad one: the open list).
    allowedModelsOf: tenancy
      ? (req) => {
          try {
            return tenancy.directory.authenticate(req.headers.authorization).policy.allowedModels;
          } catch {
            return undefined;
          }
        }
      : undefined,
  });
  // Keys and limits (when on) guard every route that spends GPU or CPU: one encapsulated scope.
  await app.register(async (guarded) => {
    if (tenancy) guarded.addHook('preHandler', tenancy.hook);
    guarded.addHook('preHandler', accounting.hook);
    if (embeddings || upstream.chains)
      await guarded.register(embeddingRoutes, { service: embeddings, fallback: upstream.chains, requestTimeoutMs: cfg.requestTimeoutMs });
    await guarded.register(generationRoutes, {
      dispatcher: upstream.dispatcher,
      fallback: upstream.hook,
      resolver,
      requestTimeoutMs: cfg.requestTimeoutMs,
      defaultLane: cfg.defaultLane,
      lanePolicy: cfg.lanes,
      admission,
      metrics,
      logContent: config.logging.logContent,
      idempotency,
      cache,
      shadow,
      fields: new RequestFields(cfg.requestFields, (model) => scheduler.modelContext(model)),
    });
  });

  // Files and batches authenticate on their own (no limits or budgets on uploads); their items do not.
  if (batch)
    await app.register(batchRoutes, {
      service: batch.service,
      maxFileBytes: batch.config.maxFileBytes,
      directory: tenancy?.directory,
      adminTokenSha256: config.credentials?.adminTokenSha256,
    });
  const url = await app.listen({ host: cfg.listen.host, port: cfg.listen.port });
  // Items wait until keys and every node's models are known (else a restart would turn them into 404s).
  const startedAt = Date.now();
  batch?.start(
    app,
    () =>
      membershipSynced &&
      !closing &&
      (tenancy?.directory.version ?? 0) >= 0 &&
      (pool.list().every((n) => n.status) || Date.now() - startedAt > 10_000),
  );
  logger.info({ url }, 'router listening');

  return {
    url,
    pool,
    routes: () => routesOf(app),
    async close() {
      closing = true;
      if (admissionTick) clearInterval(admissionTick);
      stopLaneReport?.();
      admission?.close();
      await batch?.close(Math.min(5_000, cfg.shutdownGraceMs));
      // Stop admitting (fastify answers 503 while closing) and let in-flight streams finish,
      // within the grace period; then cut what is left.
      const closed = app.close();
      await Promise.race([closed, sleep(cfg.shutdownGraceMs)]);
      app.server.closeAllConnections();
      await closed;
      watch?.stop();
      pool.close();
      await shadow?.close();
      await embeddings?.close();
      await tenancy?.close();
      await accounting.close();
      await idempotency?.close();
      await cache?.close();
    },
  };
}

export async function runRouter(config: RouterProcessConfig): Promise<void> {
  const telemetry = await startTelemetry('icp-router', config.telemetry);
  const router = await startRouter(config);
  announceListening('router', router.url);
  onShutdown(
    createLogger('router'),
    async () => {
      await router.close();
      await telemetry.shutdown();
    },
    config.router.shutdownGraceMs + 5_000,
  );
}
