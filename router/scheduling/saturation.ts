// The saturation estimator: how full a node's batch is and how long a new request would wait for
// a batch slot, from signals that do not lag (this router's own in-flight count) corrected by the
// node's status (work other routers sent). vLLM runs at most max_num_seqs sequences at once; a
// request beyond that waits in the engine's FIFO queue until sequences finish. A full node frees
// slots at its drain rate: max_num_seqs / (mean time a sequence holds its slot), which this router
// measures from its own requests (first token -> end, `Candidate.serviceSeconds`).
import type { Candidate } from './types.ts';

/** vLLM's default max_num_seqs, for nodes that do not report theirs. */
export const DEFAULT_MAX_NUM_SEQS = 256;
/** Fallback per-request cost when a node has not reported a TTFT yet. */
const DEFAULT_TTFT_SECONDS = 0.05;

export interface NodeLoad {
  /** max_num_seqs: sequences the engine runs at once */
  slots: number;
  /** sequences on the node now: this router's in flight + what other routers sent (from status) */
  occupied: number;
  /** batch slots free now; 0 or less: that many requests (negated) wait in the engine's queue */
  free: number;
  /** completions per second while the batch is full; undefined when not yet measured */
  drainPerSecond: number | undefined;
  /**
   * Predicted wait in seconds until a new request gets a batch slot: 0 while one is free;
   * otherwise (requests queued ahead + 1) / drain rate.
   */
  waitSeconds: number;
}

export function nodeLoad(c: Candidate): NodeLoad {
  const load = c.status?.load;
  const slots = load && load.maxNumSeqs > 0 ? load.maxNumSeqs : DEFAULT_MAX_NUM_SEQS;
  const reported = (load?.running ?? 0) + (load?.waiting ?? 0);
  // What the node held at its last status that this router did not send: other routers' work.
  // Without the in-flight count at status time, the dispatches since then are the best bound
  // (it over-counts the sequences that finished since the status, which errs on the safe side).
  const mineAtStatus = c.inFlightAtStatus ?? Math.max(0, c.inFlight - c.dispatchedSinceStatus);
  const foreign = Math.max(0, reported - mineAtStatus);
  const occupied = c.inFlight + foreign;
  // A queue in the engine at the last status means it was not admitting (batch or KV cache full):
  // no free slot, whatever the counts say, until a status shows the queue gone.
  const queuedAtStatus = (load?.waiting ?? 0) > 0 ? load!.waiting + c.dispatchedSinceStatus : 0;
  const free = queuedAtStatus > 0 ? Math.min(slots - occupied, -queuedAtStatus) : slots - occupied;
  const drainPerSecond = c.serviceSeconds && c.serviceSeconds > 0 ? slots / c.serviceSeconds : undefined;
  let waitSeconds = 0;
  if (free <= 0) {
    const ahead = 1 - free;
    if (drainPerSecond !== undefined) waitSeconds = ahead / drainPerSecond;
    else waitSeconds = ahead * (load && load.ttftRecentSeconds > 0 ? load.ttftRecentSeconds : DEFAULT_TTFT_SECONDS);
  }
  return { slots, occupied, free, drainPerSecond, waitSeconds };
}

/** The pool's saturation for admission: the shortest predicted slot wait among `cs` (Infinity when none). */
export function bestWaitSeconds(cs: readonly Candidate[]): number {
  let best = Infinity;
  for (const c of cs) best = Math.min(best, nodeLoad(c).waitSeconds);
  return best;
}
