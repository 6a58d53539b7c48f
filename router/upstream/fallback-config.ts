// `router.fallback` in the config file: hosted providers, the fallback chain per model or alias,
// what triggers it, who may use it (lanes, data residency per key id or tenant), breaker and retry
// settings. docs/fallback.md is the reference.
import { z } from 'zod';
import { laneSchema } from '../../common/contracts.ts';
import { own } from '../../common/own.ts';
import { keyIdRecord, tenantIdRecord } from '../admission/lanes.ts';

const residencySchema = z.enum(['cluster', 'any']);

const credential = {
  /** Name of the environment variable holding the API key. */
  apiKeyEnv: z.string().min(1).optional(),
  /** A file whose content is the API key (e.g. a mounted Kubernetes secret). */
  apiKeyFile: z.string().min(1).optional(),
  /** Bound on the time to the provider's response headers. */
  firstByteTimeoutMs: z.number().int().positive().default(30_000),
};

export const providerConfigSchema = z
  .discriminatedUnion('kind', [
    z.strictObject({ kind: z.literal('openai'), baseUrl: z.url().default('https://api.openai.com/v1'), ...credential }),
    z.strictObject({
      kind: z.literal('azure-openai'),
      /** https://<resource>.openai.azure.com */
      endpoint: z.url(),
      apiVersion: z.string().min(1).default('2024-10-21'),
      /** model named in a chain -> Azure deployment name (default: the model name). */
      deployments: z.record(z.string(), z.string()).default({}),
      ...credential,
    }),
    z.strictObject({
      kind: z.literal('anthropic'),
      baseUrl: z.url().default('https://api.anthropic.com'),
      version: z.string().default('2023-06-01'),
      /** Anthropic requires max_tokens; used when the client sends none. */
      defaultMaxTokens: z.number().int().positive().default(4_096),
      ...credential,
    }),
  ])
  .refine((p) => Boolean(p.apiKeyEnv) !== Boolean(p.apiKeyFile), { message: 'set exactly one of apiKeyEnv or apiKeyFile' });

export const TRIGGERS = ['no_ready_node', 'lane_saturated', 'node_failed', 'breaker_open'] as const;
export type Trigger = (typeof TRIGGERS)[number];

export const breakerConfigSchema = z.strictObject({
  windowMs: z.number().int().positive().default(30_000),
  minRequests: z.number().int().positive().default(5),
  errorRate: z.number().gt(0).max(1).default(0.5),
  openMs: z.number().int().positive().default(10_000),
  halfOpenProbes: z.number().int().positive().default(1),
  closeAfterSuccesses: z.number().int().positive().default(2),
  /** A first token slower than this counts as a failure (a brownout), though it is still served. */
  slowFirstTokenMs: z.number().int().positive().default(10_000),
  /** Breakers per GPU node too (an open node is skipped by dispatch). */
  nodes: z.boolean().default(true),
});

export const retryConfigSchema = z.strictObject({
  /** Calls to one provider per request (1 = no retry). */
  maxAttempts: z.number().int().min(1).max(10).default(3),
  baseDelayMs: z.number().int().min(0).default(100),
  maxDelayMs: z.number().int().min(0).default(2_000),
  /** A paused provider (429 Retry-After) that is a request's last option is waited for up to this. */
  maxPauseWaitMs: z.number().int().min(0).default(5_000),
});

const CHAIN_STEP = /^(local|[A-Za-z0-9_-]+:.+)$/;

export const fallbackConfigSchema = z
  .strictObject({
    providers: z.record(z.string().regex(/^[A-Za-z0-9_-]+$/), providerConfigSchema).default({}),
    /** model or alias -> ordered backends: `local` (the GPU pool) or `<provider>:<model>`. */
    chains: z.record(z.string(), z.array(z.string().regex(CHAIN_STEP, 'expected local or <provider>:<model>')).min(1)).default({}),
    triggers: z.array(z.enum(TRIGGERS)).default([...TRIGGERS]),
    /** Lanes whose requests may leave the cluster. */
    lanes: z.array(laneSchema).default(['critical', 'standard']),
    /**
     * Data residency: `cluster` (never sent to a hosted provider) or `any`, by key id, then tenant
     * id (never raw API keys), else `default`; with auth off there are no key ids: `default` only.
     */
    residency: z
      .strictObject({
        keys: keyIdRecord(residencySchema).default({}),
        tenants: tenantIdRecord(residencySchema).default({}),
        default: residencySchema.default('any'),
      })
      .prefault({}),
    breaker: breakerConfigSchema.prefault({}),
    retry: retryConfigSchema.prefault({}),
  })
  .superRefine((f, ctx) => {
    for (const [model, chain] of Object.entries(f.chains)) {
      chain.forEach((step, i) => {
        if (step === 'local') return;
        const provider = step.slice(0, step.indexOf(':'));
        if (!own(f.providers, provider))
          ctx.addIssue({ code: 'custom', path: ['chains', model, i], message: `unknown provider '${provider}'` });
      });
    }
  });

export type FallbackConfig = z.infer<typeof fallbackConfigSchema>;
export type ProviderConfig = z.infer<typeof providerConfigSchema>;
