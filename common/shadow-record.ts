// One shadow comparison: what the user got from the primary and what the shadow target did with
// the same request. Routers send these to the control plane (POST /v1/admin/shadow/records), which
// validates them with this schema. Never any prompt or completion text.
import { z } from 'zod';

const side = z.strictObject({
  /** Served model (primary) or target model (shadow). */
  model: z.string().max(256),
  /** `node:<id>` or `<provider>:<model>`; null when the shadow never reached a backend. */
  backend: z.string().max(256).nullable(),
  /** Time to the first content token; null for a non-streamed primary or a shadow without tokens. */
  ttftMs: z.number().min(0).nullable(),
  latencyMs: z.number().min(0),
  promptTokens: z.number().int().min(0).nullable(),
  completionTokens: z.number().int().min(0).nullable(),
});

export const shadowRecordSchema = z.strictObject({
  id: z.string().min(1).max(200),
  /** ms since the epoch, when the shadow finished. */
  ts: z.number().int().min(0),
  alias: z.string().min(1).max(256),
  /** The rule's target as configured (`local:<model>` or `<provider>:<model>`). */
  target: z.string().min(1).max(300),
  outcome: z.enum(['ok', 'error']),
  /** The error code (or a short reason) of a failed shadow. */
  error: z.string().max(200).nullable(),
  primary: side,
  shadow: side,
  /** Cosine similarity of the two answers' embeddings (router embedder); null without one. */
  similarity: z.number().min(-1.0001).max(1.0001).nullable(),
});

export type ShadowRecord = z.infer<typeof shadowRecordSchema>;
export type ShadowSide = ShadowRecord['primary'];
