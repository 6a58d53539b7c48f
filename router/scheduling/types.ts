// The scheduler's vocabulary, after llm-d's inference scheduler: filters drop nodes that must not
// serve a request, scorers rate the rest in [0,1] (higher is better), a picker chooses.
import type { NodeStatus__Output } from '../../common/grpc.ts';

/** What the scheduler may read about a node: a view, so scorers can be tested without gRPC. */
export interface Candidate {
  id: string;
  status: NodeStatus__Output | undefined;
  statusAgeMs: number;
  connected: boolean;
  cordoned: boolean;
  inFlight: number;
  dispatchedSinceStatus: number;
}

export interface SchedulingRequest {
  model: string;
  /** Nodes already tried for this request (failed before the first token). */
  exclude: ReadonlySet<string>;
}

export interface Filter {
  readonly name: string;
  /** True when the node may serve the request. */
  keep(c: Candidate, req: SchedulingRequest): boolean;
}

export interface Scorer {
  readonly name: string;
  score(c: Candidate, req: SchedulingRequest): number;
}

export interface Picker {
  pick(scored: { candidate: Candidate; score: number }[]): Candidate | undefined;
}
