// One YAML file configures every service; each service reads its own section. Validated with
// zod: a bad file names the field and the problem, and the service exits non-zero.
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
// The embedder's schema lives beside its code; the router's section embeds it.
import { embeddingsConfigSchema } from '../router/embed/config.ts';
import { HealthThresholdsSchema } from '../node-agent/gpu/health-policy.ts';
import { DEFAULT_PROFILE, SCORER_NAMES } from '../router/scheduling/plugins.ts';
import { DEFAULT_ADMISSION } from '../router/admission/controller.ts';
import { fallbackConfigSchema } from '../router/upstream/fallback-config.ts';
import { catalogConfigSchema } from '../router/models/catalog.ts';
import { budgetsConfigSchema } from '../router/accounting/budgets.ts';
import { batchConfigSchema } from '../router/batch/config.ts';
import { cacheConfigSchema } from '../router/cache/config.ts';
import { idempotencyConfigSchema } from '../router/idempotency/config.ts';
import { shadowConfigSchema } from '../router/shadow/config.ts';
import { agentClientTlsSchema, agentServerTlsSchema } from './tls.ts';
import { DEFAULT_HTTP_LIMITS, httpLimitsSchema } from './http-limits.ts';

const listenSchema = z.strictObject({
  host: z.string().default('127.0.0.1'),
  port: z.number().int().min(0).max(65535),
});

const laneSchema = z.enum(['critical', 'standard', 'sheddable']);

export const controlPlaneSchema = z.strictObject({
  listen: listenSchema.default({ host: '127.0.0.1', port: 8081 }),
  /** A registered node that misses heartbeats for this long is dropped. */
  nodeTtlMs: z.number().int().positive().default(3_000),
  /** Nodes known from config alone (never expire). */
  staticNodes: z.array(z.strictObject({ id: z.string().min(1), address: z.string().min(1) })).default([]),
  /** Admin token file (else env ICP_ADMIN_TOKEN); no default token: without one the admin API is off. */
  adminTokenFile: z.string().optional(),
  /** Tenants and keys survive a restart in this file (key hashes only); absent = memory only. */
  stateFile: z.string().optional(),
  /** TLS for the Drain call to agents (docs/security.md); absent = plaintext. */
  agentTls: agentClientTlsSchema.optional(),
  /** Receive timeouts, header size, JSON depth of the HTTP API (docs/security.md). */
  http: httpLimitsSchema.default(DEFAULT_HTTP_LIMITS),
  /** Node-metric history and the capacity report (docs/capacity-planning.md). */
  capacity: z.strictObject({
    enabled: z.boolean().default(true),
    /** How often every node's latest status (and agent /metrics, where known) is sampled. */
    sampleIntervalMs: z.number().int().min(100).default(2_000),
    /** Raw samples are kept this long, then only their 1-minute buckets. */
    rawRetentionMs: z.number().int().positive().default(3_600_000),
    bucketMs: z.number().int().positive().default(60_000),
    bucketRetentionMs: z.number().int().positive().default(7 * 24 * 3_600_000),
    /**
     * Where the history persists. `file`: the embedded default, a directory (relative to the working
     * directory). `redis`: a list in Redis at `redisUrl` (else REDIS_URL), for control planes without a disk.
     */
    store: z.strictObject({
      kind: z.enum(['file', 'redis']).default('file'),
      path: z.string().min(1).default('data/capacity'),
      redisUrl: z.string().optional(),
      key: z.string().min(1).default('icp:capacity:history'),
    }).default({ kind: 'file', path: 'data/capacity', key: 'icp:capacity:history' }),
    /** How often the file store is compacted (rewritten atomically) after appends. */
    compactEveryMs: z.number().int().positive().default(60_000),
    /** Agent HTTP base URLs (node id -> url) whose /metrics give request and token rates. Agents in this file's `agents:` with a fixed httpListen port are added automatically. */
    metricsUrls: z.record(z.string(), z.url()).default({}),
    /** Report defaults. */
    sloTtftSeconds: z.number().positive().default(1),
    defaultWindowMs: z.number().int().positive().default(3_600_000),
  }).default({ enabled: true, sampleIntervalMs: 2_000, rawRetentionMs: 3_600_000, bucketMs: 60_000, bucketRetentionMs: 7 * 24 * 3_600_000, store: { kind: 'file', path: 'data/capacity', key: 'icp:capacity:history' }, compactEveryMs: 60_000, metricsUrls: {}, sloTtftSeconds: 1, defaultWindowMs: 3_600_000 }),
  /** Shadow-traffic records from the routers (docs/shadow.md): Redis with REDIS_URL / router.auth.redisUrl, else this file store. */
  shadow: z.strictObject({
    /** The newest records kept; older ones are dropped. */
    maxRecords: z.number().int().positive().default(50_000),
    store: z.strictObject({ path: z.string().min(1).default('data/shadow') }).default({ path: 'data/shadow' }),
  }).default({ maxRecords: 50_000, store: { path: 'data/shadow' } }),
});

const laneSettingsSchema = (d: { maxPredictedWaitSeconds: number; queueTimeoutMs: number; maxQueue: number }) =>
  z.strictObject({
    /**
     * The pool counts as saturated for the lane when every node's predicted wait for a batch slot
     * is above this. 0 (the default): a request goes to an engine only when a slot is free there;
     * the backlog waits in the router's lane queues, where priority still applies.
     */
    maxPredictedWaitSeconds: z.number().min(0).default(d.maxPredictedWaitSeconds),
    queueTimeoutMs: z.number().int().min(0).default(d.queueTimeoutMs),
    maxQueue: z.number().int().min(0).default(d.maxQueue),
  }).default(d);

const LANE_DEFAULTS = DEFAULT_ADMISSION.lanes;

const admissionSchema = z.strictObject({
  /** Off: every request goes straight to scheduling (no queues, no shedding). */
  enabled: z.boolean().default(true),
  maxQueuedTotal: z.number().int().min(0).default(1_000),
  /** How often queued requests are re-checked against the pool and their deadlines. */
  tickMs: z.number().int().positive().default(20),
  lanes: z.strictObject({
    critical: laneSettingsSchema(LANE_DEFAULTS.critical),
    standard: laneSettingsSchema(LANE_DEFAULTS.standard),
    sheddable: laneSettingsSchema(LANE_DEFAULTS.sheddable),
  }).default(LANE_DEFAULTS),
});

const schedulingSchema = z.strictObject({
  /** scorer name -> weight (see docs/scheduling.md); a scorer left out is not run. */
  scorers: z.partialRecord(z.enum(SCORER_NAMES), z.number().min(0)).default(DEFAULT_PROFILE.scorers),
  picker: z.enum(['max-score', 'round-robin']).default('max-score'),
  /** Score a DEGRADED GPU node gets from the gpu-degraded scorer (healthy: 1). */
  degradedScore: z.number().min(0).max(1).default(0),
  affinity: z.strictObject({
    /** Affinity yields when the holder's predicted wait > best x (1 + yieldFactor) + yieldSlackSeconds. */
    yieldFactor: z.number().min(0).default(1),
    yieldSlackSeconds: z.number().min(0).default(0.5),
  }).default({ yieldFactor: 1, yieldSlackSeconds: 0.5 }),
});

export const routerSchema = z.strictObject({
  id: z.string().min(1).optional(),
  listen: listenSchema.default({ host: '127.0.0.1', port: 8080 }),
  /** Nodes to use without a control plane (or in addition to it). */
  staticNodes: z.array(z.strictObject({ id: z.string().min(1), address: z.string().min(1) })).default([]),
  /** Model aliases: requested name -> served model. */
  aliases: z.record(z.string(), z.string()).default({}),
  /** Upper bound for a whole request, queueing included. */
  requestTimeoutMs: z.number().int().positive().default(300_000),
  /** A node whose last status is older than this is not scheduled. */
  statusStaleMs: z.number().int().positive().default(2_000),
  /** Attempts on other nodes when one fails before the first token. */
  maxAttempts: z.number().int().min(1).max(5).default(2),
  bodyLimitBytes: z.number().int().positive().default(4 * 1024 * 1024),
  /** Receive timeouts, header size, JSON depth of the router's HTTP API (docs/security.md). */
  http: httpLimitsSchema.default(DEFAULT_HTTP_LIMITS),
  defaultLane: laneSchema.default('standard'),
  /** Lane caps: API key -> highest lane it may ask for; other keys get `defaultMaxLane`. */
  lanes: z.strictObject({
    keys: z.record(z.string().min(1), laneSchema).default({}),
    defaultMaxLane: laneSchema.default('standard'),
  }).default({ keys: {}, defaultMaxLane: 'standard' }),
  admission: admissionSchema.default(admissionSchema.parse({})),
  /** How often this router sends its lane queues and refusal counts to the control plane (dashboard). */
  laneReportIntervalMs: z.number().int().min(100).default(2_000),
  scheduling: schedulingSchema.default(schedulingSchema.parse({})),
  /** Graceful shutdown: how long in-flight streams may run after SIGTERM. */
  shutdownGraceMs: z.number().int().positive().default(10_000),
  /** ONNX embedders and rerankers served by the router itself; paths relative to the install dir. */
  embeddings: embeddingsConfigSchema.optional(),
  /** Batch jobs in OpenAI's Batch API shape: /v1/files, /v1/batches (docs/batch.md). */
  batch: batchConfigSchema.optional(),
  /**
   * Tenants, API keys and limits (docs/tenants.md). `off`: no keys needed (the laptop default).
   * `required`: every generation request needs a key issued by the control plane; its tenant's
   * RPM/TPM/concurrency limits hold across replicas through the limit store (Redis with
   * REDIS_URL, else memory).
   */
  auth: z.strictObject({
    mode: z.enum(['off', 'required']).default('off'),
    /** Redis URL for shared limits; REDIS_URL in the environment wins; absent = in memory. */
    redisUrl: z.string().optional(),
    /** When the limit store cannot answer: serve without limits (open) or refuse (closed). */
    onStoreError: z.enum(['open', 'closed']).default('open'),
    /** A Redis call slower than this counts as a store error (a down Redis fails at once). */
    commandTimeoutMs: z.number().int().positive().default(1_000),
    leaseTtlMs: z.number().int().positive().default(30_000),
    defaultMaxTokens: z.number().int().positive().default(256),
  }).default({ mode: 'off', onStoreError: 'open', commandTimeoutMs: 1_000, leaseTtlMs: 30_000, defaultMaxTokens: 256 }),
  /** Hosted-provider fallback chains, breakers and retries: see docs/fallback.md. */
  fallback: fallbackConfigSchema.optional(),
  /** Model catalog: canary splits sticky per key, prices for cost accounting (docs/tenants.md). */
  catalog: catalogConfigSchema.optional(),
  /** Budgets per tenant, key and tag: warning at 80%, refuse or downgrade at 100% (docs/tenants.md). */
  budgets: budgetsConfigSchema.optional(),
  /** Response cache, exact and semantic (docs/idempotency-and-cache.md); absent = off. */
  cache: cacheConfigSchema.optional(),
  /** Idempotency-Key on generation requests: TTL, disconnect grace, owner lease (docs/idempotency-and-cache.md). */
  idempotency: idempotencyConfigSchema.default(idempotencyConfigSchema.parse({})),
  /** Shadow traffic: mirror a share of an alias's requests to another model or provider (docs/shadow.md). */
  shadow: shadowConfigSchema.optional(),
  /** Mutual TLS to the agents' gRPC servers (docs/security.md); absent = plaintext. */
  agentTls: agentClientTlsSchema.optional(),
});

export const agentSchema = z.strictObject({
  id: z.string().min(1),
  listen: listenSchema,
  /** Address routers dial; defaults to listen host:port. */
  advertiseAddress: z.string().optional(),
  /** Liveness/readiness/metrics HTTP endpoint of the agent. */
  httpListen: listenSchema.optional(),
  /** TLS on the gRPC server, client certificates required by default (docs/security.md); absent = plaintext. */
  tls: agentServerTlsSchema.optional(),
  engine: z.strictObject({
    kind: z.enum(['vllm', 'tgi']).default('vllm'),
    url: z.url(),
    /** Served model names; by default read from the engine's /v1/models. */
    models: z.array(z.string()).optional(),
    /**
     * The engine's batch size (vLLM --max-num-seqs, TGI --max-concurrent-requests) and KV-cache
     * size in tokens. Engines do not export these as metrics; the scheduler's saturation and
     * KV-fit signals and the capacity report use them when given.
     */
    maxNumSeqs: z.number().int().positive().optional(),
    kvCacheCapacityTokens: z.number().int().positive().optional(),
    requestTimeoutMs: z.number().int().positive().default(300_000),
  }),
  /** Engine /health and /metrics scrape interval (at most 500 ms by default). */
  scrapeIntervalMs: z.number().int().positive().default(500),
  /** Status heartbeat to routers and to the control plane. */
  heartbeatMs: z.number().int().positive().default(500),
  warmup: z.strictObject({
    enabled: z.boolean().default(true),
    prompt: z.string().default('Hello'),
    maxTokens: z.number().int().positive().default(1),
    timeoutMs: z.number().int().positive().default(60_000),
  }).default({ enabled: true, prompt: 'Hello', maxTokens: 1, timeoutMs: 60_000 }),
  drainGraceMs: z.number().int().positive().default(30_000),
  /**
   * GPU health from nvidia-smi (docs/gpu-health.md). `auto`: on when nvidia-smi is on PATH
   * (a laptop with simulated engines has none). `true` on a GPU host makes a missing or
   * failing nvidia-smi an unhealthy node, as it should.
   */
  gpu: z.strictObject({
    enabled: z.union([z.boolean(), z.literal('auto')]).default('auto'),
    nvidiaSmiPath: z.string().default('nvidia-smi'),
    queryIntervalMs: z.number().int().positive().default(5_000),
    xmlIntervalMs: z.number().int().positive().default(30_000),
    timeoutMs: z.number().int().positive().default(10_000),
    failuresBeforeUnhealthy: z.number().int().positive().default(3),
    kernelLog: z.boolean().default(false),
    thresholds: HealthThresholdsSchema.partial().default({}),
  }).default({ enabled: 'auto', nvidiaSmiPath: 'nvidia-smi', queryIntervalMs: 5_000, xmlIntervalMs: 30_000, timeoutMs: 10_000, failuresBeforeUnhealthy: 3, kernelLog: false, thresholds: {} }),
});

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
  controlPlane: controlPlaneSchema.default(controlPlaneSchema.parse({})),
  router: routerSchema.default(routerSchema.parse({})),
  agents: z.array(agentSchema).default([]),
  /** Simulated engines that `start` launches (the laptop default); empty on real GPU hosts. */
  simulators: z.array(simulatorSchema).default([]),
  logging: z.strictObject({
    level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    /** Log prompts and completions. Off unless an operator turns it on. */
    logContent: z.boolean().default(false),
  }).default({ level: 'info', logContent: false }),
  /** OpenTelemetry traces (docs/observability.md): off unless an endpoint is set here or in OTEL_EXPORTER_OTLP_ENDPOINT. */
  telemetry: z.strictObject({
    /** OTLP/HTTP base URL, e.g. http://otel-collector:4318 (spans go to <url>/v1/traces). */
    otlpEndpoint: z.url().optional(),
    /** Share of new traces kept, 0-1 (a sampled parent is always followed). */
    sampleRatio: z.number().min(0).max(1).default(1),
  }).default({ sampleRatio: 1 }),
});

export type Config = z.infer<typeof configSchema>;
export type AgentConfig = z.infer<typeof agentSchema>;
export type RouterConfig = z.infer<typeof routerSchema>;
export type ControlPlaneConfig = z.infer<typeof controlPlaneSchema>;
export type Lane = z.infer<typeof laneSchema>;
export const LANES: readonly Lane[] = laneSchema.options;

export class ConfigError extends Error {
  constructor(readonly file: string, readonly problems: string[]) {
    super(`invalid config ${file}:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

/** Formats zod issues as `field.path: problem`, one per line. */
export function describeIssues(error: z.ZodError): string[] {
  return error.issues.map((i) => `${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`);
}

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
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(file, [`cannot read file: ${(err as Error).message}`]);
  }
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    throw new ConfigError(file, [`not valid YAML: ${(err as Error).message}`]);
  }
  return parseConfig(raw, file);
}

export const DEFAULT_CONFIG_PATH = resolve(dirname(new URL(import.meta.url).pathname), '../config/local.yaml');
