// `router.shadow` in the config file: per alias (the model name clients send), mirror a share of
// the requests to another model on the GPU pool or to a hosted provider of `router.fallback`.
// docs/shadow.md is the reference.
import { z } from 'zod';

/** `local:<model>` (the GPU pool) or `<provider>:<model>` (a provider of router.fallback.providers). */
const TARGET = /^[A-Za-z0-9_-]+:.+$/;

export const shadowRuleSchema = z.strictObject({
  /** The requested model name (alias, catalog split or served model) whose requests are mirrored. */
  alias: z.string().min(1),
  target: z.string().regex(TARGET, 'expected local:<model> or <provider>:<model>'),
  /** Share of the alias's successful requests mirrored, 0-100; sampled by a hash of the request id. */
  percent: z.number().min(0).max(100),
  /** Tokens (prompt + completion) this rule may spend per UTC day; a shadow that would pass it is skipped. */
  dailyTokenBudget: z.number().int().positive().default(1_000_000),
  /** Shadow requests of this rule in flight at once, per router replica. */
  maxConcurrent: z.number().int().positive().default(4),
  /** A shadow that has not finished within this is cancelled and recorded as an error. */
  timeoutMs: z.number().int().positive().default(60_000),
});

export const shadowConfigSchema = z.strictObject({
  rules: z.array(shadowRuleSchema).default([]),
  /** Router embedding model (router.embeddings) for the similarity of the two answers; default: the first embedding model. */
  embeddingModel: z.string().min(1).optional(),
  /** Completion tokens reserved for a request that sets no max_tokens, until its real usage is known. */
  defaultMaxTokens: z.number().int().positive().default(256),
});

export type ShadowConfig = z.infer<typeof shadowConfigSchema>;
export type ShadowRule = z.infer<typeof shadowRuleSchema>;
