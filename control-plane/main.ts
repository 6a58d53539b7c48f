// Control plane process: node registry API + watch stream. Never on the request path.
import type { ControlPlaneProcessConfig } from './config.ts';
import { createLogger } from '../common/logger.ts';
import { createHttpServer, routesOf } from '../common/http.ts';
import { announceListening, onShutdown } from '../common/process.ts';
import { NodeRegistry } from './registry/node-registry.ts';
import { nodesApi } from './api/nodes.ts';
import { agentChannelSecurity } from '../common/tls.ts';
import { capacityApi } from './api/capacity.ts';
import { CapacityService, metricsUrlResolver } from './capacity/service.ts';
import { adminApi } from './api/admin.ts';
import { createShadowStore } from './shadow/index.ts';
import { routersApi } from './api/routers.ts';
import { TenantRegistry } from './tenants/tenant-registry.ts';
import { readFileSync } from 'node:fs';
import type { UsageStore } from '../common/store/usage.ts';
import { MemoryUsageStore } from '../common/store/memory-usage.ts';
import { RedisUsageStore } from '../common/store/redis-usage.ts';

export async function startControlPlane(config: ControlPlaneProcessConfig) {
  const cfg = config.controlPlane;
  const logger = createLogger('control-plane', config.logging.level);
  const registry = new NodeRegistry(cfg.nodeTtlMs);
  for (const s of cfg.staticNodes) registry.addStatic(s.id, s.address);
  registry.on('expired', (n: { id: string }) => logger.warn({ node: n.id }, 'node expired: missed heartbeats'));
  registry.start();

  const tenants = new TenantRegistry(cfg.stateFile);
  const adminToken = cfg.adminTokenFile ? readFileSync(cfg.adminTokenFile, 'utf8').trim() : process.env.ICP_ADMIN_TOKEN || undefined;
  if (!adminToken) logger.info('admin API off: no ICP_ADMIN_TOKEN / controlPlane.adminTokenFile');

  const app = createHttpServer({ logger, limits: cfg.http });
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async () => ({ status: 'ok' }));
  await app.register(nodesApi, { registry, agentSecurity: agentChannelSecurity(cfg.agentTls), adminToken });
  // Routers' lane queues and refusals, for the dashboard (router/admission/lane-report.ts).
  await app.register(routersApi);
  // Node-metric history, capacity report and dashboard (docs/capacity-planning.md).
  const capacity = cfg.capacity.enabled
    ? new CapacityService({
        config: cfg.capacity,
        registry,
        logger,
        metricsUrl: metricsUrlResolver(cfg.capacity.metricsUrls, config.agentMetricsUrls),
        redisUrl: config.redis.capacityHistory,
      })
    : undefined;
  if (capacity) {
    await capacity.start();
    await app.register(capacityApi, { capacity, registry });
  }
  // Usage records: the routers' Redis stream when they share a Redis (same config file), else
  // the memory store routers ship their records to.
  const usage: UsageStore = config.redis.usage ? new RedisUsageStore(config.redis.usage) : new MemoryUsageStore();
  // Shadow-traffic records from the routers (docs/shadow.md).
  const shadow = await createShadowStore(cfg.shadow, config.redis.shadow);
  await app.register(adminApi, { registry: tenants, adminToken, usage, shadow });
  const address = await app.listen({ host: cfg.listen.host, port: cfg.listen.port });
  logger.info({ address }, 'control plane listening');
  return {
    url: address,
    registry,
    /** Every HTTP route (security tests enumerate them). */
    routes: () => routesOf(app),
    tenants,
    capacity,
    async close() {
      registry.stop();
      await capacity?.stop();
      await app.close();
      await usage.close();
      await shadow.close();
    },
  };
}

export async function runControlPlane(config: ControlPlaneProcessConfig): Promise<void> {
  const cp = await startControlPlane(config);
  announceListening('control-plane', cp.url);
  onShutdown(createLogger('control-plane'), () => cp.close());
}
