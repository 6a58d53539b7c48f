// The router's section of the config file (`router:`), and what startRouter receives: its own
// section plus the shared bits cli/config.ts composes (control plane URL, logging, telemetry,
// the Redis URL of each store). Every default is written once, on its field; a section left out
// is parsed from `{}` (`.prefault({})`), so it gets exactly those field defaults.
import { z } from 'zod';
import { listenSchema, type LoggingConfig, type TelemetryConfig } from '../common/config.ts';
import { laneSchema } from '../common/contracts.ts';
import type { RedisUrls } from '../common/infrastructure.ts';
import { agentClientTlsSchema } from '../common/tls.ts';
import { httpLimitsSchema } from '../common/http-limits.ts';
// Each feature's schema lives beside its code.
import { embeddingsConfigSchema } from './embed/config.ts';
import { DEFAULT_PROFILE, SCORER_NAMES } from './scheduling/plugins.ts';
import { DEFAULT_ADMISSION } from './admission/controller.ts';
import { lanePolicySchema } from './admission/lanes.ts';
import { fallbackConfigSchema } from './upstream/fallback-config.ts';
import { catalogConfigSchema } from './models/catalog.ts';
import { budgetsConfigSchema } from './accounting/budgets.ts';
import { batchConfigSchema } from './batch/config.ts';
import { cacheConfigSchema } from './cache/config.ts';
import { idempotencyConfigSchema } from './idempotency/config.ts';
import { shadowConfigSchema } from './shadow/config.ts';
import { requestFieldsConfigSchema } from './http/request-fields.ts';

const laneSettingsSchema = (d: { maxPredictedWaitSeconds: number; queueTimeoutMs: number; maxQueue: number }) =>
  z
    .strictObject({
      /**
       * The pool counts as saturated for the lane when every node's predicted wait for a batch slot
       * is above this. 0 (the default): a request goes to an engine only when a slot is free there;
       * the backlog waits in the router's lane queues, where priority still applies.
       */
      maxPredictedWaitSeconds: z.number().min(0).default(d.maxPredictedWaitSeconds),
      queueTimeoutMs: z.number().int().min(0).default(d.queueTimeoutMs),
      maxQueue: z.number().int().min(0).default(d.maxQueue),
    })
    .prefault({});

// The lane defaults are the admission controller's own (one copy, there).
const LANE_DEFAULTS = DEFAULT_ADMISSION.lanes;

export const admissionSchema = z.strictObject({
  /** Off: every request goes straight to scheduling (no queues, no shedding). */
  enabled: z.boolean().default(true),
  maxQueuedTotal: z.number().int().min(0).default(1_000),
  /** How often queued requests are re-checked against the pool and their deadlines. */
  tickMs: z.number().int().positive().default(20),
  lanes: z
    .strictObject({
      critical: laneSettingsSchema(LANE_DEFAULTS.critical),
      standard: laneSettingsSchema(LANE_DEFAULTS.standard),
      sheddable: laneSettingsSchema(LANE_DEFAULTS.sheddable),
    })
    .prefault({}),
});

export const schedulingSchema = z.strictObject({
  /** scorer name -> weight (see docs/scheduling.md); a scorer left out is not run. */
  scorers: z.partialRecord(z.enum(SCORER_NAMES), z.number().min(0)).default(DEFAULT_PROFILE.scorers),
  picker: z.enum(['max-score', 'round-robin']).default('max-score'),
  /** Score a DEGRADED GPU node gets from the gpu-degraded scorer (healthy: 1). */
  degradedScore: z.number().min(0).max(1).default(0),
  affinity: z
    .strictObject({
      /** Affinity yields when the holder's predicted wait > best x (1 + yieldFactor) + yieldSlackSeconds. */
      yieldFactor: z.number().min(0).default(1),
      yieldSlackSeconds: z.number().min(0).default(0.5),
    })
    .prefault({}),
});

export const routerSchema = z.strictObject({
  id: z.string().min(1).optional(),
  listen: listenSchema.prefault({ port: 8080 }),
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
  bodyLimitBytes: z
    .number()
    .int()
    .positive()
    .default(4 * 1024 * 1024),
  /** Receive timeouts, header size, JSON depth of the router's HTTP API (docs/security.md). */
  http: httpLimitsSchema.prefault({}),
  defaultLane: laneSchema.default('standard'),
  /** Lane caps by key id and tenant id (never raw API keys); others, and all when auth is off, get `defaultMaxLane`. */
  lanes: lanePolicySchema,
  admission: admissionSchema.prefault({}),
  /** How often this router sends its lane queues and refusal counts to the control plane (dashboard). */
  laneReportIntervalMs: z.number().int().min(100).default(2_000),
  scheduling: schedulingSchema.prefault({}),
  /** Graceful shutdown: how long in-flight streams may run after SIGTERM. */
  shutdownGraceMs: z.number().int().positive().default(10_000),
  /** ONNX embedders and rerankers served by the router itself; paths relative to the install dir. */
  embeddings: embeddingsConfigSchema.optional(),
  /** Batch jobs in OpenAI's Batch API shape: /v1/files, /v1/batches (docs/batch.md). */
  batch: batchConfigSchema.prefault({}),
  /**
   * Tenants, API keys and limits (docs/tenants.md). `off`: no keys needed (the laptop default).
   * `required`: every generation request needs a key issued by the control plane; its tenant's
   * RPM/TPM/concurrency limits hold across replicas through the limit store (Redis when one is
   * configured, common/infrastructure.ts; else memory).
   */
  auth: z
    .strictObject({
      mode: z.enum(['off', 'required']).default('off'),
      /** The Redis every store shares unless it has its own; REDIS_URL in the environment wins (common/infrastructure.ts); absent = in memory. */
      redisUrl: z.string().optional(),
      /** When the limit store cannot answer: serve without limits (open) or refuse (closed). */
      onStoreError: z.enum(['open', 'closed']).default('open'),
      /** A Redis call slower than this counts as a store error (a down Redis fails at once). */
      commandTimeoutMs: z.number().int().positive().default(1_000),
      leaseTtlMs: z.number().int().positive().default(30_000),
      defaultMaxTokens: z.number().int().positive().default(256),
    })
    .prefault({}),
  /** Hosted-provider fallback chains, breakers and retries: see docs/fallback.md. */
  fallback: fallbackConfigSchema.prefault({}),
  /** Model catalog: canary splits sticky per key, prices for cost accounting (docs/tenants.md). */
  catalog: catalogConfigSchema.optional(),
  /** Budgets per tenant, key and tag: warning at 80%, refuse or downgrade at 100% (docs/tenants.md). */
  budgets: budgetsConfigSchema.prefault({}),
  /** Response cache, exact and semantic (docs/idempotency-and-cache.md); absent = off. */
  cache: cacheConfigSchema.optional(),
  /** Idempotency-Key on generation requests: TTL, disconnect grace, owner lease (docs/idempotency-and-cache.md). */
  idempotency: idempotencyConfigSchema.prefault({}),
  /** Shadow traffic: mirror a share of an alias's requests to another model or provider (docs/shadow.md). */
  shadow: shadowConfigSchema.optional(),
  /** Request-field allow-list: engine extras per engine kind, n/best_of caps, media domains (docs/request-fields.md). */
  requestFields: requestFieldsConfigSchema.prefault({}),
  /** Mutual TLS to the agents' gRPC servers (docs/security.md); absent = plaintext. */
  agentTls: agentClientTlsSchema.optional(),
  /** The router's credential towards the control plane (else env ICP_ROUTER_TOKEN); never the admin token. */
  controlPlaneTokenFile: z.string().optional(),
  /** Hex SHA-256 of the admin token (else env ICP_ADMIN_TOKEN_SHA256): the router's operator routes (batch dead letters) check it without holding the token. */
  adminTokenSha256: z
    .string()
    .regex(/^[0-9a-fA-F]{64}$/, 'a hex SHA-256 (`icp credentials hash-token`)')
    .optional(),
});

export type RouterConfig = z.infer<typeof routerSchema>;

/** What a router process is started with (composed by cli/config.ts routerInputs). */
export interface RouterProcessConfig {
  /** How the router reaches the control plane; absent = static nodes only. */
  controlPlaneUrl?: string;
  router: RouterConfig;
  /** Resolved by cli/config.ts from the files named above or the environment. */
  credentials?: { controlPlaneToken?: string; adminTokenSha256?: string };
  logging: LoggingConfig;
  telemetry: TelemetryConfig;
  /** The Redis URL of each store, resolved once (common/infrastructure.ts); a role left out = memory or files. */
  redis: RedisUrls;
}
