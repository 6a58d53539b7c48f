// Node agent process: wires the engine adapter, engine watcher, readiness, status publisher,
// gRPC service (+ standard health service), HTTP liveness/readiness/metrics and registration.
import { HealthImplementation } from 'grpc-health-check';
import type { AgentConfig, AgentProcessConfig } from './config.ts';
import { createLogger } from '../common/logger.ts';
import { createHttpServer } from '../common/http.ts';
import { announceListening, onShutdown, sleep } from '../common/process.ts';
import { grpc, NodeAgentService, NODE_AGENT_SERVICE_NAME } from '../common/grpc.ts';
import { agentServerCredentials } from '../common/tls.ts';
import { assertSecureListen, nodeIdOfToken } from '../common/credentials.ts';
import { callerAuthorizer } from './caller-auth.ts';
import { VllmAdapter } from './engines/vllm.ts';
import { TgiAdapter } from './engines/tgi.ts';
import type { EngineAdapter } from './engines/engine.ts';
import { EngineWatcher } from './engine-watcher.ts';
import { Readiness } from './readiness.ts';
import { StatusPublisher } from './status-publisher.ts';
import { createNodeAgentHandlers, type AgentState } from './grpc-service.ts';
import { Registration } from './registration.ts';
import { GpuMonitor } from './gpu/monitor.ts';
import { registerGpuMetrics } from './gpu/metrics.ts';
import { createAgentMetrics } from './metrics.ts';
import { startTelemetry } from '../common/telemetry.ts';
import { accessSync, constants } from 'node:fs';
import { delimiter, isAbsolute, join } from 'node:path';

export interface RunningAgent {
  id: string;
  grpcAddress: string;
  httpUrl: string | undefined;
  readonly ready: boolean;
  /** Stop taking new work; resolves when in-flight generations ended or `graceMs` passed. */
  drain(graceMs?: number): Promise<void>;
  close(): Promise<void>;
}

/** True when `cmd` is an executable path, or found on PATH. */
function executableExists(cmd: string): boolean {
  const candidates = isAbsolute(cmd) || cmd.includes('/') ? [cmd] : (process.env.PATH ?? '').split(delimiter).map((d) => join(d, cmd));
  return candidates.some((p) => {
    try {
      accessSync(p, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

function createGpuMonitor(cfg: AgentConfig): GpuMonitor | undefined {
  const g = cfg.gpu;
  const enabled = g.enabled === 'auto' ? executableExists(g.nvidiaSmiPath) : g.enabled;
  if (!enabled) return undefined;
  return new GpuMonitor({
    nvidiaSmiPath: g.nvidiaSmiPath,
    queryIntervalMs: g.queryIntervalMs,
    xmlIntervalMs: g.xmlIntervalMs,
    timeoutMs: g.timeoutMs,
    failuresBeforeUnhealthy: g.failuresBeforeUnhealthy,
    kernelLog: { enabled: g.kernelLog },
    thresholds: g.thresholds,
  });
}

function createEngine(cfg: AgentConfig): EngineAdapter {
  switch (cfg.engine.kind) {
    case 'vllm':
      return new VllmAdapter({ url: cfg.engine.url, requestTimeoutMs: cfg.engine.requestTimeoutMs });
    case 'tgi':
      return new TgiAdapter({ url: cfg.engine.url, requestTimeoutMs: cfg.engine.requestTimeoutMs });
  }
}

export async function startAgent(config: AgentProcessConfig, cfg: AgentConfig): Promise<RunningAgent> {
  const logger = createLogger(`node-agent`, config.logging.level).child({ node: cfg.id });
  const nodeToken = config.credentials?.nodeToken;
  if (nodeToken && nodeIdOfToken(nodeToken) !== cfg.id)
    throw new Error(
      `the node token is for node '${nodeIdOfToken(nodeToken) ?? '?'}', not '${cfg.id}': mint one with \`icp credentials node-token --id ${cfg.id}\``,
    );
  const callers = callerAuthorizer({ nodeToken, tls: cfg.tls });
  assertSecureListen(
    `node agent ${cfg.id}`,
    cfg.listen.host,
    callers.open ? ['no caller authentication (no node token, no tls with requireClientCert)'] : [],
    process.env,
    (m) => logger.warn(m),
  );
  const engine = createEngine(cfg);
  const watcher = new EngineWatcher(engine, cfg.scrapeIntervalMs);
  const readiness = new Readiness(engine, watcher, cfg.warmup, cfg.engine.models, logger);
  const gpu = createGpuMonitor(cfg);
  if (!gpu) logger.info('GPU monitoring off (no nvidia-smi found, or gpu.enabled: false)');
  let draining = false;
  const state: AgentState = {
    get ready() {
      return readiness.ready;
    },
    get draining() {
      return draining;
    },
    inFlight: 0,
  };

  const publisher = new StatusPublisher(
    () => ({
      nodeId: cfg.id,
      ready: readiness.ready,
      notReadyReason: readiness.reason,
      draining,
      models: readiness.models.map((m) => ({ name: m.name, engineKind: engine.kind, maxContext: m.maxContext })),
      load: {
        running: watcher.load.running,
        waiting: watcher.load.waiting,
        kvCacheUsage: watcher.load.kvCacheUsage,
        ttftRecentSeconds: watcher.load.ttftRecentSeconds,
        prefixCacheHitRate: watcher.load.prefixCacheHitRate,
        maxNumSeqs: cfg.engine.maxNumSeqs ?? 0,
        kvCacheCapacityTokens: String(cfg.engine.kvCacheCapacityTokens ?? 0),
      },
      gpuVerdict: gpu?.snapshot().verdict ?? 'HEALTHY',
      gpus: gpu?.snapshot().gpus ?? [],
    }),
    cfg.heartbeatMs,
  );

  const health = new HealthImplementation({ '': 'NOT_SERVING', [NODE_AGENT_SERVICE_NAME]: 'NOT_SERVING' });
  const syncHealth = () => {
    const s = readiness.ready && !draining ? 'SERVING' : 'NOT_SERVING';
    health.setStatus('', s);
    health.setStatus(NODE_AGENT_SERVICE_NAME, s);
  };
  readiness.on('change', () => {
    logger.info({ ready: readiness.ready, reason: readiness.reason }, 'readiness changed');
    syncHealth();
    publisher.changed();
  });
  watcher.on('change', () => publisher.changed());
  gpu?.on('change', (h: { verdict: string; reasons: string[] }) => {
    logger.warn({ verdict: h.verdict, reasons: h.reasons }, 'GPU health changed');
    readiness.setGpuUnhealthy(h.verdict === 'UNHEALTHY');
    publisher.changed();
  });
  const metrics = createAgentMetrics({ watcher, readiness, state, nodeId: cfg.id });
  if (gpu) registerGpuMetrics(metrics.registry, gpu);

  let drainWaiters: (() => void)[] = [];
  const onInFlightChange = () => {
    if (state.inFlight === 0) {
      for (const w of drainWaiters) w();
      drainWaiters = [];
    }
  };
  const drain = async (graceMs = cfg.drainGraceMs) => {
    if (!draining) {
      draining = true;
      logger.info({ inFlight: state.inFlight, graceMs }, 'draining');
      syncHealth();
      publisher.changed();
    }
    if (state.inFlight === 0) return;
    await Promise.race([new Promise<void>((r) => drainWaiters.push(r)), sleep(graceMs)]);
  };

  const server = new grpc.Server({ 'grpc.keepalive_permit_without_calls': 1, 'grpc.http2.min_ping_interval_without_data_ms': 5_000 });
  server.addService(
    NodeAgentService,
    createNodeAgentHandlers({
      engine,
      publisher,
      state,
      logger,
      onDrain: (g) => void drain(g || cfg.drainGraceMs),
      onResume: () => {
        if (!draining) return;
        draining = false;
        logger.info('resumed: taking new work again');
        syncHealth();
        publisher.changed();
      },
      checkCaller: callers.check,
      onInFlightChange,
      onFinished: (outcome, usage) => {
        metrics.generations.inc({ outcome });
        if (usage) {
          metrics.promptTokens.inc(usage.promptTokens);
          metrics.generationTokens.inc(usage.completionTokens);
        }
      },
    }),
  );
  health.addToServer(server);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${cfg.listen.host}:${cfg.listen.port}`, agentServerCredentials(cfg.tls), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  const grpcAddress = cfg.advertiseAddress ?? `${cfg.listen.host}:${port}`;

  let httpUrl: string | undefined;
  const http = createHttpServer({ logger });
  http.get('/healthz', async () => ({ status: 'ok' })); // liveness: never calls the engine
  http.get('/readyz', async (_req, reply) => {
    const ok = readiness.ready && !draining;
    reply.code(ok ? 200 : 503);
    return { ready: ok, reason: draining ? 'draining' : readiness.reason };
  });
  http.get('/v1/status', async () => publisher.current());
  http.get('/metrics', async (_req, reply) => {
    reply.header('content-type', metrics.registry.contentType);
    return metrics.registry.metrics();
  });
  if (cfg.httpListen) httpUrl = await http.listen({ host: cfg.httpListen.host, port: cfg.httpListen.port });

  if (gpu) {
    // The first poll decides readiness: a node must not report ready before its GPUs were read.
    await gpu.start();
    readiness.setGpuUnhealthy(gpu.snapshot().verdict === 'UNHEALTHY');
  }
  watcher.start();
  publisher.start();
  const registration = config.controlPlaneUrl
    ? new Registration({
        controlPlaneUrl: config.controlPlaneUrl,
        nodeId: cfg.id,
        address: grpcAddress,
        heartbeatMs: cfg.heartbeatMs,
        models: () => readiness.models.map((m) => m.name),
        logger,
        nodeToken,
        tls: cfg.controlPlaneTls,
      })
    : undefined;
  registration?.start();
  logger.info({ grpcAddress, engine: cfg.engine.url }, 'node agent listening');

  return {
    id: cfg.id,
    grpcAddress,
    httpUrl,
    get ready() {
      return readiness.ready;
    },
    drain,
    async close() {
      watcher.stop();
      gpu?.stop();
      await registration?.stop();
      // Ends every WatchStatus stream (routers see it close and drop us), so that a graceful
      // shutdown only waits for the last Generate events to flush; bounded all the same.
      publisher.stop();
      await Promise.race([new Promise<void>((resolve) => server.tryShutdown(() => resolve())), sleep(2_000)]);
      server.forceShutdown();
      await http.close();
      await engine.close();
    },
  };
}

export async function runAgent(config: AgentProcessConfig, cfg: AgentConfig): Promise<void> {
  const telemetry = await startTelemetry('icp-node-agent', config.telemetry);
  const agent = await startAgent(config, cfg);
  announceListening('node-agent', agent.grpcAddress, { id: cfg.id, http: agent.httpUrl });
  const logger = createLogger('node-agent');
  // SIGTERM: report draining (routers stop sending), let in-flight streams finish, then exit.
  onShutdown(
    logger,
    async () => {
      await agent.drain();
      await agent.close();
      await telemetry.shutdown();
    },
    cfg.drainGraceMs + 5_000,
  );
}
