// One YAML file configures every service; each service owns the schema of its section
// (router/config.ts, node-agent/config.ts, control-plane/config.ts) and this module composes
// the whole file, then hands each service the inputs it needs: its own section and the shared
// bits (control plane URL, logging, telemetry, the Redis URL of each store). Validated with zod:
// a bad file names the field and the problem, and the service exits non-zero.
import { resolve } from 'node:path';
import { z } from 'zod';
import { ConfigError, describeIssues, loggingSchema, readYamlFile, telemetrySchema } from '../common/config.ts';
import { resolveRedisUrls, type RedisRole } from '../common/infrastructure.ts';
import { REPO_ROOT } from '../common/paths.ts';
import { controlPlaneSchema, type ControlPlaneProcessConfig } from '../control-plane/config.ts';
import { agentSchema, type AgentConfig, type AgentProcessConfig } from '../node-agent/config.ts';
import { readSecret } from '../common/credentials.ts';
import { routerSchema, type RouterProcessConfig } from '../router/config.ts';

export const simulatorSchema = z.strictObject({
  id: z.string().min(1),
  kind: z.enum(['vllm']).default('vllm'),
  port: z.number().int().min(0).max(65535),
  model: z.string().min(1),
  speed: z.number().positive().default(1),
  maxNumSeqs: z.number().int().positive().optional(),
  loadTimeMs: z.number().int().min(0).optional(),
});

export const configSchema = z.strictObject({
  /** How routers and agents reach the control plane; omit to run without one. */
  controlPlaneUrl: z.url().optional(),
  controlPlane: controlPlaneSchema.prefault({}),
  router: routerSchema.prefault({}),
  agents: z.array(agentSchema).default([]),
  /** Simulated engines that `start` launches (the laptop default); empty on real GPU hosts. */
  simulators: z.array(simulatorSchema).default([]),
  logging: loggingSchema.prefault({}),
  telemetry: telemetrySchema.prefault({}),
});

export type Config = z.infer<typeof configSchema>;

export const DEFAULT_CONFIG_PATH = resolve(REPO_ROOT, 'config/local.yaml');

export function parseConfig(raw: unknown, file = '(inline)'): Config {
  const result = configSchema.safeParse(raw ?? {});
  if (!result.success) throw new ConfigError(file, describeIssues(result.error));
  const config = result.data;
  const ids = new Set<string>();
  for (const a of config.agents) {
    if (ids.has(a.id)) throw new ConfigError(file, [`agents: duplicate agent id '${a.id}'`]);
    ids.add(a.id);
  }
  return config;
}

export function loadConfig(file: string): Config {
  return parseConfig(readYamlFile(file), file);
}

/**
 * The Redis URL of every store (precedence: common/infrastructure.ts). Routers and the control
 * plane read the same file, so they agree on it: usage records and budgets use Redis only with
 * router.auth.mode `required` (without keys there is nothing to account to).
 */
export function redisUrlsOf(config: Config, env: NodeJS.ProcessEnv = process.env) {
  const r = config.router;
  const off: RedisRole[] = r.auth.mode === 'required' ? [] : ['usage'];
  return resolveRedisUrls(
    {
      shared: r.auth.redisUrl,
      own: { batch: r.batch.redisUrl, cache: r.cache?.redisUrl, capacityHistory: config.controlPlane.capacity.store.redisUrl },
      off,
    },
    env,
  );
}

export function routerInputs(config: Config, env: NodeJS.ProcessEnv = process.env): RouterProcessConfig {
  const r = config.router;
  return {
    controlPlaneUrl: config.controlPlaneUrl,
    router: r,
    credentials: {
      controlPlaneToken: readSecret(r.controlPlaneTokenFile, env.ICP_ROUTER_TOKEN),
      adminTokenSha256: r.adminTokenSha256 ?? (env.ICP_ADMIN_TOKEN_SHA256?.trim() || undefined),
    },
    logging: config.logging,
    telemetry: config.telemetry,
    redis: redisUrlsOf(config, env),
  };
}

export function controlPlaneInputs(config: Config, env: NodeJS.ProcessEnv = process.env): ControlPlaneProcessConfig {
  return {
    controlPlane: config.controlPlane,
    logging: config.logging,
    redis: redisUrlsOf(config, env),
    agentMetricsUrls: agentMetricsUrls(config.agents),
    credentials: {
      adminToken: readSecret(config.controlPlane.adminTokenFile, env.ICP_ADMIN_TOKEN),
      routerToken: readSecret(config.controlPlane.routerTokenFile, env.ICP_ROUTER_TOKEN),
      nodeSecret: readSecret(config.controlPlane.nodeSecretFile, env.ICP_NODE_SECRET),
    },
  };
}

export function agentInputs(config: Config, agent: AgentConfig, env: NodeJS.ProcessEnv = process.env): AgentProcessConfig {
  return {
    controlPlaneUrl: config.controlPlaneUrl,
    logging: config.logging,
    telemetry: config.telemetry,
    credentials: { nodeToken: readSecret(agent.nodeTokenFile, env.ICP_NODE_TOKEN) },
  };
}

/** Agent HTTP base URLs from agents whose httpListen has a fixed port (host 0.0.0.0/:: -> the advertised gRPC host). */
export function agentMetricsUrls(agents: readonly AgentConfig[]): Record<string, string> {
  const urls: Record<string, string> = {};
  for (const a of agents) {
    if (!a.httpListen || a.httpListen.port === 0) continue;
    let host = a.httpListen.host;
    if (host === '0.0.0.0' || host === '::') host = (a.advertiseAddress ?? '').replace(/:\d+$/, '') || '127.0.0.1';
    urls[a.id] = `http://${host.includes(':') && !host.startsWith('[') ? `[${host}]` : host}:${a.httpListen.port}`;
  }
  return urls;
}
