// The contract between the chaos runner (test/chaos/run.ts), its load generator and the
// scenarios (test/chaos/scenarios/*.ts). A scenario starts real processes on loopback, runs the
// shared load generator against them, injects its fault mid-run, ends the fault, and returns what
// the load generator counted plus how long the system took to recover.

/** How one request ended, as the client saw it. */
export type Outcome =
  | { kind: 'completed' }
  /** A typed OpenAI-shaped error: HTTP status + `error.type`/`error.code` (or an SSE error event). */
  | { kind: 'typed_error'; status: number; type: string; code: string | null }
  /** No answer, an untyped answer, a stream that stopped without [DONE] or an error event, or a
   * request past its deadline: the promise is broken. */
  | { kind: 'lost'; why: string };

export interface LoadRecord {
  id: number;
  tenant: string;
  lane: 'critical' | 'standard' | 'sheddable';
  stream: boolean;
  startedAt: number;
  endedAt: number;
  outcome: Outcome;
  /** The engine-side request ids seen for this client request (x-request-id / response id), to
   * count duplicates: one client request answered twice, or generated twice where the scenario can tell. */
  responseIds: string[];
}

export interface ScenarioResult {
  scenario: string;
  sent: number;
  completed: number;
  /** Typed errors by `status type/code`. */
  typedErrors: Record<string, number>;
  lost: number;
  duplicated: number;
  p99Ms: number;
  /** From the end of the fault to the first window in which requests succeed as before; null if it never recovered within the scenario. */
  recoveryMs: number | null;
  /** Free-form figures a scenario adds (peak RSS, refusal latency, critical-lane p99, ...). */
  extra?: Record<string, number | string>;
  /** What the scenario could not do here, said plainly (e.g. no tc netem). */
  notes?: string[];
  /** Processes that exited without the scenario stopping them (name + exit code or signal). */
  crashed?: string[];
  /** Promises the scenario checked and found broken (e.g. "critical p99 3 s > SLO 1 s"); CI asserts none. */
  violations?: string[];
}

export interface ScenarioOptions {
  /** CI runs the short form (seconds per phase); the soak runs by hand with longer phases. */
  mode: 'short' | 'long';
}

export interface Scenario {
  name: string;
  /** One line for the report. */
  description: string;
  run(opts: ScenarioOptions): Promise<ScenarioResult>;
}
