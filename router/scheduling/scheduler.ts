// Adapts the node pool to the scheduling profile: snapshots each NodeConnection as a Candidate.
import type { NodePool } from '../nodes/node-pool.ts';
import type { NodeConnection } from '../nodes/node-connection.ts';
import type { Candidate, SchedulingRequest } from './types.ts';
import { SchedulingProfile, type Decision } from './profile.ts';
import { available } from './filters/available.ts';
import { gpuHealthy } from './filters/gpu-healthy.ts';
import { bestWaitSeconds } from './saturation.ts';
import { ServiceTimes } from './service-times.ts';
import { buildProfile, DEFAULT_PROFILE, type ProfileConfig } from './plugins.ts';

export function toCandidate(n: NodeConnection, now = Date.now(), service?: ServiceTimes): Candidate {
  return {
    serviceSeconds: service?.get(n.id),
    id: n.id,
    status: n.status,
    statusAgeMs: n.statusReceivedAt ? now - n.statusReceivedAt : Infinity,
    connected: n.connected,
    cordoned: n.cordoned,
    inFlight: n.inFlight,
    dispatchedSinceStatus: n.dispatchedSinceStatus,
    inFlightAtStatus: n.inFlightAtStatus,
  };
}

export function defaultProfile(
  statusStaleMs: number,
  cfg: ProfileConfig = DEFAULT_PROFILE,
  random: () => number = Math.random,
): SchedulingProfile {
  return buildProfile(cfg, statusStaleMs, random);
}

export class Scheduler {
  /**
   * Per-node slot time of this router's finished requests: call `observeService(node, seconds
   * from first token to end)` when a generation ends; it gives the saturation estimator each
   * node's drain rate.
   */
  readonly serviceTimes = new ServiceTimes();

  constructor(
    private readonly pool: NodePool,
    private readonly profile: SchedulingProfile,
    /** The clock status ages are read on (a virtual-time driver passes its own). */
    private readonly now: () => number = Date.now,
  ) {}

  observeService(nodeId: string, seconds: number): void {
    this.serviceTimes.observe(nodeId, seconds);
  }

  schedule(req: SchedulingRequest): Decision & { connection: NodeConnection | undefined } {
    const now = this.now();
    const decision = this.profile.schedule(
      this.pool.list().map((n) => toCandidate(n, now, this.serviceTimes)),
      req,
    );
    return { ...decision, connection: decision.node ? this.pool.get(decision.node.id) : undefined };
  }

  /**
   * The shortest predicted wait for a batch slot among the nodes that may serve the request
   * (0 while any has a free slot, Infinity when none may serve it): the pool's saturation signal
   * for admission (saturation.ts).
   */
  bestPredictedWait(req: SchedulingRequest): number {
    const now = this.now();
    const { kept } = this.profile.filter(
      this.pool.list().map((n) => toCandidate(n, now, this.serviceTimes)),
      req,
    );
    return bestWaitSeconds(kept);
  }

  /**
   * Per node: whether it may take new work now, whatever the model (connected, fresh status, ready,
   * not draining or cordoned, no UNHEALTHY GPU): the `router_node_routable_state` gauge, so operators and
   * tests can see this router's own view of the pool instead of inferring it from where requests went.
   */
  routableNodes(statusStaleMs: number): [string, boolean][] {
    const now = this.now();
    const avail = available(statusStaleMs);
    const anyModel = { model: '', exclude: new Set<string>() };
    return this.pool.list().map((n) => {
      const c = toCandidate(n, now);
      return [n.id, avail.keep(c, anyModel) && gpuHealthy.keep(c, anyModel)];
    });
  }

  /** Models served by at least one node that is usable now (for /v1/models and 404 vs 503). */
  servedModels(statusStaleMs: number): Set<string> {
    const now = this.now();
    const out = new Set<string>();
    const avail = available(statusStaleMs);
    for (const n of this.pool.list()) {
      const c = toCandidate(n, now);
      if (!avail.keep(c, { model: '', exclude: new Set() })) continue;
      for (const m of c.status?.models ?? []) out.add(m.name);
    }
    return out;
  }

  /**
   * Engine kinds of the nodes that report `model` (usable or not: a cold node may serve it soon)
   * and the largest context among them; undefined when none reports it or one reports 0 (unknown),
   * so a request is only refused for its length when every node's context is known.
   */
  modelContext(model: string): { engineKinds: Set<string>; maxContext: number | undefined } {
    const engineKinds = new Set<string>();
    let max = 0;
    let unknown = false;
    for (const n of this.pool.list())
      for (const m of n.status?.models ?? []) {
        if (m.name !== model) continue;
        if (m.engineKind) engineKinds.add(m.engineKind);
        if (!(m.maxContext > 0)) unknown = true;
        else max = Math.max(max, m.maxContext);
      }
    return { engineKinds, maxContext: unknown || max === 0 ? undefined : max };
  }

  /** Models any known node reports, usable or not (a cold or draining node's model is known: 503, not 404). */
  knownModels(): Set<string> {
    const out = new Set<string>();
    for (const n of this.pool.list()) for (const m of n.status?.models ?? []) out.add(m.name);
    return out;
  }
}
