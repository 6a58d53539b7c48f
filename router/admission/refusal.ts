// Admission's refusals as one typed error: the route, the fallback chain, shadow traffic and batch
// items tell "the lane is busy" from an upstream failure by its class, not by a code prefix.
import { ApiError } from '../../common/errors.ts';
import type { Lane } from '../../common/contracts.ts';

export const REFUSAL_REASONS = ['shed', 'queue_full', 'queue_timeout', 'evicted'] as const;
export type RefusalReason = (typeof REFUSAL_REASONS)[number];

/** The wire codes of admission refusals, for callers that see only the HTTP answer (batch items). */
const REFUSAL_CODES: ReadonlySet<string> = new Set(REFUSAL_REASONS.map((r) => `lane_${r}`));

/** 429 for sheddable (come back later, politely), 503 for the other lanes (the pool is full). */
export class AdmissionRefusal extends ApiError {
  constructor(
    readonly lane: Lane,
    readonly reason: RefusalReason,
    message: string,
    retryAfterSeconds: number,
  ) {
    super(
      lane === 'sheddable' ? 429 : 503,
      message,
      lane === 'sheddable' ? 'rate_limit_error' : 'server_error',
      `lane_${reason}`,
      null,
      retryAfterSeconds,
    );
    this.name = 'AdmissionRefusal';
  }
}

export function isAdmissionRefusal(e: unknown): e is AdmissionRefusal {
  return e instanceof AdmissionRefusal;
}

/** True for an OpenAI error body's `code` that admission wrote (`lane_shed`, `lane_queue_full`, ...). */
export function isRefusalCode(code: unknown): boolean {
  return typeof code === 'string' && REFUSAL_CODES.has(code);
}
