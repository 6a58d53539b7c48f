// A discrete-event cluster simulator in virtual time: simulated vLLM engines (the very batching
// model of test/sim/vllm/batching.ts) behind the router's real scheduling profile and admission
// controller. No sockets and no wall clock, so 256 nodes run in seconds of CPU.
// Status lag is modelled as in production: each node's load is seen through a status pushed
// every `statusMs`; between two statuses only this router's own counters move.
import { BatchingEngine, type EngineConfig } from '../../sim/vllm/batching.ts';
import type { SchedulingProfile } from '../../../router/scheduling/profile.ts';
import type { Candidate } from '../../../router/scheduling/types.ts';
import { AdmissionController, type AdmissionSettings } from '../../../router/admission/controller.ts';
import { bestWaitSeconds } from '../../../router/scheduling/saturation.ts';
import { ServiceTimes } from '../../../router/scheduling/service-times.ts';
import type { Lane } from '../../../common/contracts.ts';
import type { ApiError } from '../../../common/errors.ts';

export interface SimRequest {
  id: number;
  at: number; // ms
  promptTokens: number;
  outputTokens: number;
  lane: Lane;
  tenant: string;
  /** engine prefix-cache block hashes (blockSize tokens each) */
  engineHashes: string[];
  /** the router's prefix hashes (what router/scheduling/prompt-prefix.ts would compute) */
  routerHashes: string[];
}

export interface SimResult {
  req: SimRequest;
  ttftMs?: number;
  e2eMs?: number;
  refused?: { status: number; code: string; refusalUs: number };
  node?: string;
}

export const ENGINE: Omit<EngineConfig, 'speed'> = {
  maxNumSeqs: 32,
  kvCacheTokens: 131_072,
  blockSize: 16,
  prefillMsPerToken: 0.04,
  decodeStepMs: 15,
  decodeStepMsPerSeq: 0.6,
  slowdown: 1,
};

class Heap {
  private a: { t: number; s: number; f: () => void }[] = [];
  private seq = 0;
  get size(): number {
    return this.a.length;
  }
  push(t: number, f: () => void): void {
    const a = this.a;
    a.push({ t, s: this.seq++, f });
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (this.less(a[i]!, a[p]!)) {
        [a[i], a[p]] = [a[p]!, a[i]!];
        i = p;
      } else break;
    }
  }
  pop(): { t: number; f: () => void } | undefined {
    const a = this.a;
    if (a.length === 0) return undefined;
    const top = a[0]!;
    const last = a.pop()!;
    if (a.length > 0) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1,
          r = l + 1;
        let m = i;
        if (l < a.length && this.less(a[l]!, a[m]!)) m = l;
        if (r < a.length && this.less(a[r]!, a[m]!)) m = r;
        if (m === i) break;
        [a[i], a[m]] = [a[m]!, a[i]!];
        i = m;
      }
    }
    return top;
  }
  private less(x: { t: number; s: number }, y: { t: number; s: number }): boolean {
    return x.t < y.t || (x.t === y.t && x.s < y.s);
  }
}

interface SimNode {
  id: string;
  engine: BatchingEngine;
  stepping: boolean;
  cand: Candidate;
  statusAt: number;
  ttfts: number[];
}

export interface ClusterOptions {
  speeds: number[];
  profile: SchedulingProfile;
  admission?: AdmissionSettings;
  statusMs?: number;
  model?: string;
  /** engine settings other than `ENGINE`'s (the live twin's simulators) */
  engine?: Partial<Omit<EngineConfig, 'speed'>>;
  /**
   * Router signals the production router may not feed yet (see docs/scheduling.md): per-node slot
   * times (Scheduler.observeService) and the in-flight count at status time. Default: both on.
   */
  signals?: { serviceTimes?: boolean; inFlightAtStatus?: boolean };
}

export function simulate(requests: SimRequest[], opts: ClusterOptions): { results: SimResult[]; endMs: number; decisionUs: number[] } {
  const model = opts.model ?? 'm';
  const statusMs = opts.statusMs ?? 500;
  const heap = new Heap();
  let now = 0;
  const clock = () => now;
  const decisionUs: number[] = [];
  const nodes: SimNode[] = opts.speeds.map((speed, i) => {
    const id = `n${String(i).padStart(3, '0')}`;
    const engine = new BatchingEngine({ ...ENGINE, ...opts.engine, speed }, clock);
    return {
      id,
      engine,
      stepping: false,
      statusAt: 0,
      ttfts: [],
      cand: { id, status: undefined, statusAgeMs: 0, connected: true, cordoned: false, inFlight: 0, dispatchedSinceStatus: 0 },
    };
  });
  const pushStatus = (n: SimNode) => {
    const s = n.engine.state();
    const ttft = n.ttfts.length ? n.ttfts.reduce((a, b) => a + b, 0) / n.ttfts.length : 0;
    n.ttfts = [];
    n.cand.status = {
      nodeId: n.id,
      seq: '0',
      timestampMs: String(now),
      ready: true,
      notReadyReason: '',
      draining: false,
      models: [{ name: model, engineKind: 'vllm', maxContext: 32_768 }],
      load: {
        running: s.running,
        waiting: s.waiting,
        kvCacheUsage: n.engine.kvCacheUsage(),
        ttftRecentSeconds: ttft / 1000,
        prefixCacheHitRate: 0,
        maxNumSeqs: opts.engine?.maxNumSeqs ?? ENGINE.maxNumSeqs,
        kvCacheCapacityTokens: String(s.kvCacheCapacityTokens),
      },
      gpuVerdict: 'HEALTHY',
      gpus: [],
      heartbeatIntervalMs: statusMs,
    };
    n.statusAt = now;
    n.cand.dispatchedSinceStatus = 0;
    if (opts.signals?.inFlightAtStatus !== false) n.cand.inFlightAtStatus = n.cand.inFlight;
  };
  nodes.forEach((n, i) => {
    pushStatus(n);
    // Statuses of different nodes arrive spread over the interval, as from independent agents.
    const first = ((i * 7919) % statusMs) + 1;
    const tick = () => {
      pushStatus(n);
      heap.push(now + statusMs, tick);
    };
    heap.push(first, tick);
  });
  const service = new ServiceTimes();
  const candidates = (): Candidate[] => {
    for (const n of nodes) {
      n.cand.statusAgeMs = now - n.statusAt;
      if (opts.signals?.serviceTimes !== false) n.cand.serviceSeconds = service.get(n.id);
    }
    return nodes.map((n) => n.cand);
  };
  const step = (n: SimNode) => {
    const d = n.engine.beginStep();
    if (d === null) {
      n.stepping = false;
      return;
    }
    n.stepping = true;
    heap.push(now + d, () => {
      n.engine.endStep();
      step(n);
    });
  };

  const results: SimResult[] = [];
  let pending = requests.length;
  const dispatch = (r: SimRequest, res: SimResult): Promise<void> => {
    const t0 = performance.now();
    const d = opts.profile.schedule(candidates(), {
      model,
      exclude: new Set(),
      promptTokens: r.promptTokens,
      prefixHashes: r.routerHashes,
      lane: r.lane,
    });
    decisionUs.push((performance.now() - t0) * 1000);
    const node = nodes.find((n) => n.id === d.node!.id)!;
    res.node = node.id;
    node.cand.inFlight++;
    node.cand.dispatchedSinceStatus++;
    node.engine.submit({
      id: String(r.id),
      promptTokens: r.promptTokens,
      naturalTokens: r.outputTokens,
      maxTokens: r.outputTokens,
      prefixHashes: r.engineHashes,
      nextWord: () => 'x',
      listener: {
        onToken: (index, _text, finish) => {
          if (index === 0) {
            res.ttftMs = now - r.at;
            node.ttfts.push(res.ttftMs);
          }
          if (finish) {
            res.e2eMs = now - r.at;
            service.observe(node.id, (res.e2eMs - res.ttftMs!) / 1000);
            node.cand.inFlight--;
            pending--;
            admission?.pump();
          }
        },
      },
    });
    if (!node.stepping) step(node);
    return Promise.resolve();
  };
  const probe = () => bestWaitSeconds(opts.profile.filter(candidates(), { model, exclude: new Set() }).kept);
  const admission = opts.admission ? new AdmissionController(opts.admission, probe, clock) : undefined;
  if (admission) {
    const tick = () => {
      admission.tick();
      if (pending > 0) heap.push(now + 20, tick);
    };
    heap.push(20, tick);
    // Statuses change saturation: re-check queues right after each status round.
    const pumpTick = () => {
      admission.pump();
      if (pending > 0) heap.push(now + statusMs / 4, pumpTick);
    };
    heap.push(statusMs / 4, pumpTick);
  }

  for (const r of requests) {
    heap.push(r.at, () => {
      const res: SimResult = { req: r };
      results.push(res);
      if (!admission) {
        void dispatch(r, res);
        return;
      }
      const t0 = performance.now();
      try {
        // Callbacks, not promises: this loop is synchronous, so promise reactions would only run
        // after simulate() returned (that was the "non-terminating loop": later refusals never
        // counted down `pending`, and the periodic ticks kept the loop alive).
        admission.admit(
          { lane: r.lane, tenant: r.tenant, model, deadline: now + 300_000 },
          () => void dispatch(r, res),
          (e) => {
            // Refused later (queue deadline, eviction): not a fast refusal; its cost is not timed.
            res.refused ??= { status: e.status, code: e.code ?? '', refusalUs: NaN };
            pending--;
          },
        );
      } catch (e) {
        const err = e as ApiError;
        res.refused ??= { status: err.status, code: err.code ?? '', refusalUs: (performance.now() - t0) * 1000 };
        pending--;
      }
    });
  }
  // Every request ends (served, or refused by its queue deadline at the latest): a run past
  // this bound is a simulator bug, not a slow policy.
  const hardStop = (requests.at(-1)?.at ?? 0) + 3_600_000;
  for (let ev = heap.pop(); ev; ev = heap.pop()) {
    now = ev.t;
    if (now > hardStop) throw new Error(`virtual cluster did not finish: ${pending} requests pending at ${now} ms`);
    ev.f();
    if (pending <= 0 && heap.size > 0 && now > (requests.at(-1)?.at ?? 0)) {
      // Only periodic ticks are left: stop.
      if (nodes.every((n) => !n.engine.hasWork())) break;
    }
  }
  return { results, endMs: now, decisionUs };
}
