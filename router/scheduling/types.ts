// The scheduler's vocabulary, after llm-d's inference scheduler: filters drop nodes that must not
// serve a request, scorers rate the rest in [0,1] (higher is better), a picker chooses.
import type { Lane } from '../../common/contracts.ts';
import type { NodeStatus__Output } from '../../common/grpc.ts';

/** What the scheduler may read about a node: a view, so scorers can be tested without gRPC. */
export interface Candidate {
  id: string;
  status: NodeStatus__Output | undefined;
  statusAgeMs: number;
  connected: boolean;
  cordoned: boolean;
  /** Generations this router has in flight on the node (its own view; no lag). */
  inFlight: number;
  dispatchedSinceStatus: number;
  /** This router's in-flight count when the last status was taken (tells other routers' work apart). */
  inFlightAtStatus?: number;
  /** Mean seconds one of this router's sequences held a batch slot on the node (ServiceTimes). */
  serviceSeconds?: number;
}

export interface SchedulingRequest {
  model: string;
  /** Nodes already tried for this request (failed before the first token). */
  exclude: ReadonlySet<string>;
  /** Estimated prompt length in tokens (0 when unknown): for the KV-fit filter and scorer. */
  promptTokens?: number;
  /** Chained hashes of the prompt's leading blocks, first block first (prefix affinity). */
  prefixHashes?: readonly string[];
  lane?: Lane;
}

export interface Filter {
  readonly name: string;
  /** True when the node may serve the request. */
  keep(c: Candidate, req: SchedulingRequest): boolean;
}

export interface Scorer {
  readonly name: string;
  score(c: Candidate, req: SchedulingRequest): number;
  /**
   * Optional: score every candidate at once, for scorers whose answer depends on the others
   * (prefix affinity yields to a clearly less loaded peer). Same order as `cs`.
   */
  scoreAll?(cs: readonly Candidate[], req: SchedulingRequest): number[];
}

export interface Picker {
  pick(scored: { candidate: Candidate; score: number }[]): Candidate | undefined;
}

/** Told about every pick: lets stateful plugins (prefix index, round-robin) learn. */
export interface PickObserver {
  onPicked(node: Candidate, req: SchedulingRequest): void;
}
