// Implements admission's FallbackHook: when a lane refuses a request (saturated past its
// deadline, queue full, shed), the fallback chain's hosted providers may take it instead.
import type { ApiError } from '../../common/errors.ts';
import type { AdmissionRequest } from '../admission/controller.ts';
import type { FallbackHook } from '../admission/fallback.ts';
import type { DispatchRequest } from './node-dispatch.ts';
import type { FallbackDispatcher } from './fallback-dispatch.ts';
import type { UpstreamDispatch } from './providers/types.ts';

/** The admission request as generation.ts hands it over: with the dispatch it would have run. */
export type AdmissionWithDispatch = AdmissionRequest & { dispatch?: DispatchRequest };

export class ProviderFallbackHook implements FallbackHook<UpstreamDispatch> {
  constructor(private readonly fallback: FallbackDispatcher) {}

  take(req: AdmissionWithDispatch, refusal: ApiError): Promise<UpstreamDispatch> | undefined {
    if (!req.dispatch) return undefined;
    return this.fallback.afterRefusal(req.dispatch, refusal);
  }
}
