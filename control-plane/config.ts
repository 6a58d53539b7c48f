// The control plane's section of the config file (`controlPlane:`), and what startControlPlane
// receives: its own section plus what cli/config.ts composes from the rest of the file (logging,
// the Redis URL of each store, the agents' metrics URLs). Every default is written once, on its
// field; a section left out is parsed from `{}` (`.prefault({})`).
import { z } from 'zod';
import { listenSchema, type LoggingConfig } from '../common/config.ts';
import type { RedisUrls } from '../common/infrastructure.ts';
import { agentClientTlsSchema } from '../common/tls.ts';
import { httpLimitsSchema } from '../common/http-limits.ts';
import type { ControlPlaneCredentials } from './api/access.ts';

export const controlPlaneSchema = z.strictObject({
  listen: listenSchema.prefault({ port: 8081 }),
  /** A registered node that misses heartbeats for this long is dropped. */
  nodeTtlMs: z.number().int().positive().default(3_000),
  /** Nodes known from config alone (never expire). */
  staticNodes: z.array(z.strictObject({ id: z.string().min(1), address: z.string().min(1) })).default([]),
  /** Admin token file (else env ICP_ADMIN_TOKEN); no default token: without one the admin API is off. */
  adminTokenFile: z.string().optional(),
  /** The routers' credential (else env ICP_ROUTER_TOKEN): watches, usage, shadow records, lane reports. */
  routerTokenFile: z.string().optional(),
  /** The secret node tokens are HMACs under (else env ICP_NODE_SECRET); `icp credentials node-token` mints them. */
  nodeSecretFile: z.string().optional(),
  /**
   * HTTPS on the control plane's own port. With `caFile`, clients may present a certificate that CA
   * signed: an agent's (CN = its node id) then registers without a node token.
   */
  tls: z.strictObject({ certFile: z.string().min(1), keyFile: z.string().min(1), caFile: z.string().min(1).optional() }).optional(),
  /** Host header values this control plane answers to (DNS-rebinding guard); empty = any. Loopback names are added when it listens on loopback. */
  allowedHosts: z.array(z.string().min(1).max(253)).default([]),
  /** What a node may register (docs/security.md). */
  nodes: z
    .strictObject({
      /** Addresses a node may register: CIDRs for IP hosts (`10.0.0.0/8`), names or `*.suffix` for DNS hosts; empty = any. */
      allowedAddresses: z.array(z.string().min(1).max(253)).default([]),
      /** Ports a node may register (single ports or `from-to`); empty = any. */
      allowedPorts: z.array(z.union([z.number().int().min(1).max(65535), z.string().regex(/^\d{1,5}-\d{1,5}$/)])).default([]),
      maxNodes: z.number().int().positive().default(1_024),
      maxModelsPerNode: z.number().int().positive().max(1_024).default(64),
      maxLabelsPerNode: z.number().int().min(0).max(256).default(32),
      /** Registrations accepted per node id per minute, and in all. */
      registrationsPerMinutePerNode: z.number().int().positive().default(30),
      registrationsPerMinute: z.number().int().positive().default(600),
    })
    .prefault({}),
  /** Tenants and keys survive a restart in this file (key hashes only); absent = memory only. */
  stateFile: z.string().optional(),
  /** TLS for the Drain call to agents (docs/security.md); absent = plaintext. */
  agentTls: agentClientTlsSchema.optional(),
  /** Receive timeouts, header size, JSON depth of the HTTP API (docs/security.md). */
  http: httpLimitsSchema.prefault({}),
  /** Node-metric history and the capacity report (docs/capacity-planning.md). */
  capacity: z
    .strictObject({
      enabled: z.boolean().default(true),
      /** How often every node's latest status (and agent /metrics, where known) is sampled. */
      sampleIntervalMs: z.number().int().min(100).default(2_000),
      /** Raw samples are kept this long, then only their 1-minute buckets. */
      rawRetentionMs: z.number().int().positive().default(3_600_000),
      bucketMs: z.number().int().positive().default(60_000),
      bucketRetentionMs: z
        .number()
        .int()
        .positive()
        .default(7 * 24 * 3_600_000),
      /**
       * Where the history persists. `file`: the embedded default, a directory (relative to the working
       * directory). `redis`: a list in Redis at `redisUrl` (else REDIS_URL, else router.auth.redisUrl:
       * common/infrastructure.ts), for control planes without a disk.
       */
      store: z
        .strictObject({
          kind: z.enum(['file', 'redis']).default('file'),
          path: z.string().min(1).default('data/capacity'),
          redisUrl: z.string().optional(),
          key: z.string().min(1).default('icp:capacity:history'),
        })
        .prefault({}),
      /** How often the file store is compacted (rewritten atomically) after appends. */
      compactEveryMs: z.number().int().positive().default(60_000),
      /** Agent HTTP base URLs (node id -> url) whose /metrics give request and token rates. Agents in this file's `agents:` with a fixed httpListen port are added automatically. */
      metricsUrls: z.record(z.string(), z.url()).default({}),
      /** Report defaults. */
      sloTtftSeconds: z.number().positive().default(1),
      defaultWindowMs: z.number().int().positive().default(3_600_000),
    })
    .prefault({}),
  /** Shadow-traffic records from the routers (docs/shadow.md): Redis when the routers have one (common/infrastructure.ts), else this file store. */
  shadow: z
    .strictObject({
      /** The newest records kept; older ones are dropped. */
      maxRecords: z.number().int().positive().default(50_000),
      store: z.strictObject({ path: z.string().min(1).default('data/shadow') }).prefault({}),
    })
    .prefault({}),
});

export type ControlPlaneConfig = z.infer<typeof controlPlaneSchema>;
export type CapacityConfig = ControlPlaneConfig['capacity'];

/** What a control plane process is started with (composed by cli/config.ts controlPlaneInputs). */
export interface ControlPlaneProcessConfig {
  controlPlane: ControlPlaneConfig;
  logging: LoggingConfig;
  /** The Redis URL of each store, resolved once (common/infrastructure.ts): `usage` (the routers' usage stream), `shadow`, `capacityHistory`. */
  redis: RedisUrls;
  /** Agent HTTP base URLs (node id -> url) known from the agents' own config entries; capacity.metricsUrls wins over them. */
  agentMetricsUrls: Record<string, string>;
  /** Resolved from the files named above or the environment (cli/config.ts); absent = that role cannot call. */
  credentials: ControlPlaneCredentials;
}
