// Control plane process: node registry API + watch stream. Never on the request path. Every
// route is behind the access table (api/access.ts): who may call it, with which credential.
import type { ControlPlaneProcessConfig } from './config.ts';
import { createLogger } from '../common/logger.ts';
import { createHttpServer, routesOf } from '../common/http.ts';
import { announceListening, onShutdown } from '../common/process.ts';
import { NodeRegistry } from './registry/node-registry.ts';
import { controlTokenFor, nodesApi } from './api/nodes.ts';
import { installAccessControl } from './api/access.ts';
import { RegistrationPolicy } from './registry/registration-policy.ts';
import { assertSecureListen, isLoopbackHost } from '../common/credentials.ts';
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

  registry.maxNodes = cfg.nodes.maxNodes;
  const tenants = new TenantRegistry(cfg.stateFile);
  const credentials = config.credentials;
  const missing = [
    !credentials.adminToken && 'no admin token',
    !credentials.routerToken && 'no router token',
    !credentials.nodeSecret && !cfg.tls?.caFile && 'no node credential (node secret or client CA)',
  ].filter((m): m is string => typeof m === 'string');
  for (const m of missing) logger.info(`${m}: the routes of that role refuse every caller (docs/security.md)`);
  if (!cfg.stateFile) logger.warn('controlPlane.stateFile not set: tenants and keys live in memory and a restart forgets them');
  // Secure or loopback only: on the network, every role must be able to prove itself.
  assertSecureListen('control plane', cfg.listen.host, missing, process.env, (m) => logger.warn(m));

  const app = createHttpServer({
    logger,
    limits: cfg.http,
    https: cfg.tls
      ? {
          cert: readFileSync(cfg.tls.certFile),
          key: readFileSync(cfg.tls.keyFile),
          ...(cfg.tls.caFile ? { ca: readFileSync(cfg.tls.caFile), requestCert: true } : {}),
        }
      : undefined,
  });
  const loopbackNames = isLoopbackHost(cfg.listen.host) ? ['localhost', '127.0.0.1', '[::1]', '::1'] : [];
  installAccessControl(app, {
    credentials,
    clientCertificates: Boolean(cfg.tls?.caFile),
    allowedHosts: [...cfg.allowedHosts, ...loopbackNames],
  });
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async () => ({ status: 'ok' }));
  await app.register(nodesApi, {
    registry,
    policy: new RegistrationPolicy(cfg.nodes),
    agentSecurity: agentChannelSecurity(cfg.agentTls),
    nodeSecret: credentials.nodeSecret,
    logger,
  });
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
        // The sampler follows each node's WatchStatus as the control plane (its TLS and token).
        agentSecurity: agentChannelSecurity(cfg.agentTls),
        controlToken: (id: string) => controlTokenFor(credentials.nodeSecret, id),
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
  await app.register(adminApi, { registry: tenants, usage, shadow });
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
