// The node agent's entry in the config file (`agents:`), and what startAgent receives besides it:
// the shared bits cli/config.ts passes on (control plane URL, logging, telemetry). Every default
// is written once, on its field; a section left out is parsed from `{}` (`.prefault({})`).
import { z } from 'zod';
import { listenSchema, type LoggingConfig, type TelemetryConfig } from '../common/config.ts';
import { agentClientTlsSchema, agentServerTlsSchema } from '../common/tls.ts';
import { HealthThresholdsSchema } from './gpu/health-policy.ts';

export const agentSchema = z.strictObject({
  id: z.string().min(1),
  listen: listenSchema,
  /** Address routers dial; defaults to listen host:port. */
  advertiseAddress: z.string().optional(),
  /** Liveness/readiness/metrics HTTP endpoint of the agent. */
  httpListen: listenSchema.optional(),
  /** TLS on the gRPC server, client certificates required by default (docs/security.md); absent = plaintext. */
  tls: agentServerTlsSchema.optional(),
  /** This node's token (else env ICP_NODE_TOKEN): registers with the control plane, and callers' tokens derive from it. */
  nodeTokenFile: z.string().optional(),
  /** TLS to an https:// controlPlaneUrl: the CA to trust, and this node's client certificate (CN = node id) to register with instead of a token. */
  controlPlaneTls: agentClientTlsSchema.optional(),
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
  warmup: z
    .strictObject({
      enabled: z.boolean().default(true),
      prompt: z.string().default('Hello'),
      maxTokens: z.number().int().positive().default(1),
      timeoutMs: z.number().int().positive().default(60_000),
    })
    .prefault({}),
  drainGraceMs: z.number().int().positive().default(30_000),
  /**
   * GPU health from nvidia-smi (docs/gpu-health.md). `auto`: on when nvidia-smi is on PATH
   * (a laptop with simulated engines has none). `true` on a GPU host makes a missing or
   * failing nvidia-smi an unhealthy node, as it should.
   */
  gpu: z
    .strictObject({
      enabled: z.union([z.boolean(), z.literal('auto')]).default('auto'),
      nvidiaSmiPath: z.string().default('nvidia-smi'),
      queryIntervalMs: z.number().int().positive().default(5_000),
      xmlIntervalMs: z.number().int().positive().default(30_000),
      timeoutMs: z.number().int().positive().default(10_000),
      failuresBeforeUnhealthy: z.number().int().positive().default(3),
      kernelLog: z.boolean().default(false),
      thresholds: HealthThresholdsSchema.partial().prefault({}),
    })
    .prefault({}),
});

export type AgentConfig = z.infer<typeof agentSchema>;

/** The shared settings an agent process needs besides its own entry (cli/config.ts passes them). */
export interface AgentProcessConfig {
  /** Where the agent registers; absent = routers know it from their static nodes. */
  controlPlaneUrl?: string;
  logging: LoggingConfig;
  telemetry: TelemetryConfig;
  /** This node's token, resolved from nodeTokenFile or ICP_NODE_TOKEN (cli/config.ts agentInputs). */
  credentials?: { nodeToken?: string };
}
