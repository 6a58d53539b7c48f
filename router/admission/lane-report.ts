// Sends this router's lane state (queue depth, admitted and refused counts by reason) to the
// control plane every few seconds, so the operator dashboard can show lanes and refusals across
// all router replicas without the control plane having to find and scrape each one.
import { request } from 'undici';
import type { Logger } from 'pino';
import { LANES, type Lane } from '../../common/contracts.ts';
import type { AdmissionController, RefusalReason } from './controller.ts';

export interface LaneState {
  queued: number;
  admitted: number;
  refused: Record<string, number>;
}

export interface LaneReport {
  lanes: Record<Lane, LaneState>;
}

export function laneReport(admission: AdmissionController): LaneReport {
  const lanes = {} as Record<Lane, LaneState>;
  for (const lane of LANES) lanes[lane] = { queued: admission.queueDepth(lane), admitted: admission.stats.admitted[lane], refused: {} };
  for (const [key, n] of Object.entries(admission.stats.refused)) {
    const [lane, reason] = key.split(':') as [Lane, RefusalReason];
    lanes[lane].refused[reason] = n;
  }
  return { lanes };
}

/** Starts reporting; returns a stop function. A control plane that is down only costs a debug line. */
export function startLaneReporter(
  controlPlaneUrl: string,
  routerId: string,
  admission: AdmissionController,
  logger: Logger,
  intervalMs: number,
  /** The router's credential (control-plane-auth.ts). */
  auth: Record<string, string> = {},
): () => void {
  const url = `${controlPlaneUrl}/v1/routers/${encodeURIComponent(routerId)}/report`;
  let inFlight = false;
  const send = async () => {
    if (inFlight) return;
    inFlight = true;
    try {
      const res = await request(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...auth },
        body: JSON.stringify(laneReport(admission)),
        headersTimeout: intervalMs,
        bodyTimeout: intervalMs,
      });
      await res.body.dump();
    } catch (err) {
      logger.debug({ err: (err as Error).message }, 'lane report not delivered');
    } finally {
      inFlight = false;
    }
  };
  const timer = setInterval(() => void send(), intervalMs);
  timer.unref();
  void send();
  return () => clearInterval(timer);
}
