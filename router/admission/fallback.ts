// The seam where a later issue plugs in hosted-provider fallback: when admission refuses a
// request (queue deadline passed, queue full), the route offers it here before answering 429/503.
import type { ApiError } from '../../common/errors.ts';
import type { AdmissionRequest } from './controller.ts';

export interface FallbackHook<T> {
  /** A promise of the fallback's answer, or undefined to let the refusal stand. */
  take(req: AdmissionRequest, refusal: ApiError): Promise<T> | undefined;
}

/** True for the errors admission raises (code `lane_*`), as opposed to upstream failures. */
export function isAdmissionRefusal(e: unknown): e is ApiError {
  return typeof (e as ApiError)?.code === 'string' && (e as ApiError).code!.startsWith('lane_');
}
