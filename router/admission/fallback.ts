// Where hosted-provider fallback plugs into admission: when admission refuses a request (queue
// deadline passed, queue full), the route offers it here before answering 429/503.
import type { ApiError } from '../../common/errors.ts';
import type { AdmissionRequest } from './controller.ts';

export interface FallbackHook<T> {
  /** A promise of the fallback's answer, or undefined to let the refusal stand. */
  take(req: AdmissionRequest, refusal: ApiError): Promise<T> | undefined;
}

export { isAdmissionRefusal } from './refusal.ts';
