// Admission: decides, before scheduling, whether a request goes to the GPU pool now, waits in its
// lane's queue, or is refused. Saturation comes from live node signals (the best predicted wait
// among the nodes that could serve the model) compared with the lane's budget.
//
// Rules (docs/scheduling.md):
// - Admitted at once when nothing waits in its lane or a higher one and the pool is under the
//   lane's budget. Otherwise:
// - sheddable (queue size 0 by default): refused at once, 429 + Retry-After;
// - standard: waits in a bounded queue until its queue deadline, then 503 + Retry-After (where a
//   hosted-provider fallback will plug in);
// - critical: the largest budget and the longest deadline; when the queues are full it evicts the
//   youngest waiting request of the lowest lane instead of being refused.
// Queued requests go out by lane, then fairly across tenants (FairQueue), oldest first per tenant.
// A refusal is a synchronous check and a thrown error: no queue slot, no timer, no promise chain.
import { ApiError, errors } from '../../common/errors.ts';
import { FairQueue, type Queued } from './fair-queue.ts';
import { AdmissionRefusal, type RefusalReason } from './refusal.ts';
import { LANES, type Lane } from '../../common/contracts.ts';
import { laneRank } from './lanes.ts';

export interface LaneSettings {
  /** The pool counts as saturated for this lane when the best predicted wait exceeds this. */
  maxPredictedWaitSeconds: number;
  /** How long a request may wait in the queue (bounded by its own deadline too). */
  queueTimeoutMs: number;
  /** Queue bound; 0 = never queue (refuse when saturated). */
  maxQueue: number;
}

export interface AdmissionSettings {
  lanes: Record<Lane, LaneSettings>;
  /** Bound on all queues together; critical may take a lower lane's slot when it is reached. */
  maxQueuedTotal: number;
}

export const DEFAULT_ADMISSION: AdmissionSettings = {
  lanes: {
    critical: { maxPredictedWaitSeconds: 0, queueTimeoutMs: 60_000, maxQueue: 1_000 },
    standard: { maxPredictedWaitSeconds: 0, queueTimeoutMs: 15_000, maxQueue: 500 },
    sheddable: { maxPredictedWaitSeconds: 0, queueTimeoutMs: 0, maxQueue: 0 },
  },
  maxQueuedTotal: 1_000,
};

export interface AdmissionRequest {
  lane: Lane;
  /** Who is asking (API key or tenant): the unit of fairness within a lane. */
  tenant: string;
  model: string;
  /** Absolute deadline of the whole request, on the controller's clock. */
  deadline: number;
  signal?: AbortSignal;
}

export type { RefusalReason } from './refusal.ts';

/** Metrics and stats hook: every stage says what it did (Envoy-style). */
export interface AdmissionObserver {
  onAdmitted?(lane: Lane, queuedMs: number): void;
  onRefused?(lane: Lane, reason: RefusalReason): void;
}

/** Best predicted wait in seconds among nodes that may serve `model` (Infinity when none). */
export type SaturationProbe = (model: string) => number;

interface Entry extends Queued {
  req: AdmissionRequest;
  start: () => void;
  reject: (e: ApiError) => void;
  onAbort?: () => void;
}

/** One lane's waiting requests, a FairQueue per model, so a saturated model holds back only its own. */
class LaneQueue {
  private readonly byModel = new Map<string, FairQueue<Entry>>();
  private count = 0;
  constructor(readonly capacity: number) {}
  get size(): number {
    return this.count;
  }
  get full(): boolean {
    return this.count >= this.capacity;
  }
  waiting(model: string): boolean {
    return (this.byModel.get(model)?.size ?? 0) > 0;
  }
  models(): FairQueue<Entry>[] {
    return [...this.byModel.values()];
  }
  push(e: Entry): void {
    let q = this.byModel.get(e.req.model);
    if (!q) this.byModel.set(e.req.model, (q = new FairQueue<Entry>(Infinity)));
    q.push(e);
    this.count++;
  }
  take(q: FairQueue<Entry>): Entry | undefined {
    const e = q.shift();
    if (e) this.settle(e);
    return e;
  }
  shift(): Entry | undefined {
    for (const q of this.byModel.values()) if (q.size > 0) return this.take(q);
    return undefined;
  }
  remove(e: Entry): boolean {
    const q = this.byModel.get(e.req.model);
    if (!q || !q.remove(e)) return false;
    this.settle(e);
    return true;
  }
  youngest(): Entry | undefined {
    let y: Entry | undefined;
    for (const q of this.byModel.values()) {
      const c = q.youngest();
      if (c && (!y || c.enqueuedAt >= y.enqueuedAt)) y = c;
    }
    return y;
  }
  expire(now: number): Entry[] {
    const out: Entry[] = [];
    for (const q of this.byModel.values()) out.push(...q.expire(now));
    for (const e of out) this.settle(e);
    return out;
  }
  private settle(e: Entry): void {
    this.count--;
    const q = this.byModel.get(e.req.model);
    if (q && q.size === 0) this.byModel.delete(e.req.model);
  }
}

export class AdmissionController {
  private readonly queues: Record<Lane, LaneQueue>;
  readonly stats = {
    admitted: { critical: 0, standard: 0, sheddable: 0 } as Record<Lane, number>,
    /** `lane:reason` -> count; keys are built from the two closed sets only. */
    refused: {} as Partial<Record<`${Lane}:${RefusalReason}`, number>>,
  };

  constructor(
    private readonly settings: AdmissionSettings,
    private readonly probe: SaturationProbe,
    private readonly now: () => number = Date.now,
    private readonly observer: AdmissionObserver = {},
  ) {
    this.queues = {
      critical: new LaneQueue(settings.lanes.critical.maxQueue),
      standard: new LaneQueue(settings.lanes.standard.maxQueue),
      sheddable: new LaneQueue(settings.lanes.sheddable.maxQueue),
    };
  }

  queueDepth(lane: Lane): number {
    return this.queues[lane].size;
  }

  /**
   * Runs `start` when the request is admitted: synchronously when it can go now, later from
   * pump() otherwise. `start` must dispatch synchronously up to its first await, so the node's
   * load counters move before the next queued request is considered. Throws the refusal when the
   * request is refused at once.
   */
  run<T>(req: AdmissionRequest, start: () => Promise<T>): Promise<T> {
    let resolve!: (v: T) => void;
    let reject!: (e: unknown) => void;
    const p = new Promise<T>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    let now = true;
    let immediate: Promise<T> | undefined;
    this.admit(
      req,
      () => {
        if (now) {
          immediate = start();
          return;
        }
        try {
          start().then(resolve, reject);
        } catch (e) {
          reject(e);
        }
      },
      reject,
    );
    now = false;
    return immediate ?? p;
  }

  /**
   * The same without promises (a driver in virtual time has no event loop to settle them):
   * `start` runs when admitted, at once or from a later pump(); `refused` gets a later refusal
   * (queue deadline, eviction, client gone). A refusal at once is thrown.
   */
  admit(req: AdmissionRequest, start: () => void, refused: (e: ApiError) => void): void {
    const lane = req.lane;
    const ls = this.settings.lanes[lane];
    if (!this.waitingAtOrAbove(lane, req.model)) {
      if (this.probe(req.model) <= ls.maxPredictedWaitSeconds) {
        this.admitted(lane, 0);
        start();
        return;
      }
    }
    const q = this.queues[lane];
    if (ls.maxQueue === 0) throw this.refusal(req, 'shed');
    const totalFull = this.totalQueued() >= this.settings.maxQueuedTotal;
    if ((q.full || totalFull) && !(lane === 'critical' && this.evictBelow(lane))) throw this.refusal(req, 'queue_full');
    const now = this.now();
    const entry: Entry = {
      req,
      tenant: req.tenant,
      enqueuedAt: now,
      deadline: Math.min(req.deadline, now + ls.queueTimeoutMs),
      reject: refused,
      start: () => {
        if (entry.onAbort) req.signal?.removeEventListener('abort', entry.onAbort);
        this.admitted(lane, this.now() - entry.enqueuedAt);
        start();
      },
    };
    if (req.signal) {
      entry.onAbort = () => {
        if (this.queues[lane].remove(entry)) refused(errors.clientCancelled());
      };
      req.signal.addEventListener('abort', entry.onAbort, { once: true });
    }
    q.push(entry);
  }

  /** Admit what the pool can take now: lanes by priority, fair across tenants within a lane. */
  pump(): void {
    for (const lane of LANES) {
      const q = this.queues[lane];
      const budget = this.settings.lanes[lane].maxPredictedWaitSeconds;
      // Models take turns within the lane; a saturated model is skipped, not waited on.
      for (let progressed = true; progressed;) {
        progressed = false;
        for (const mq of q.models()) {
          const e = mq.peek();
          if (!e || this.probe(e.req.model) > budget) continue;
          q.take(mq);
          e.start();
          progressed = true;
        }
      }
    }
  }

  /** Refuse what waited past its deadline, then pump. Call it on a short interval. */
  tick(): void {
    const now = this.now();
    for (const lane of LANES) {
      for (const e of this.queues[lane].expire(now)) this.drop(e, 'queue_timeout');
    }
    this.pump();
  }

  /** Refuse everything still queued (shutdown). */
  close(): void {
    for (const lane of LANES) for (let e = this.queues[lane].shift(); e; e = this.queues[lane].shift()) this.drop(e, 'queue_timeout');
  }

  private totalQueued(): number {
    return this.queues.critical.size + this.queues.standard.size + this.queues.sheddable.size;
  }

  private waitingAtOrAbove(lane: Lane, model: string): boolean {
    for (const l of LANES) {
      if (this.queues[l].waiting(model)) return true;
      if (l === lane) break;
    }
    return false;
  }

  /** Makes room for a higher lane by refusing the youngest waiting request of the lowest lane. */
  private evictBelow(lane: Lane): boolean {
    for (const l of [...LANES].reverse()) {
      if (laneRank(l) <= laneRank(lane)) break;
      const victim = this.queues[l].youngest();
      if (victim && this.queues[l].remove(victim)) {
        this.drop(victim, 'evicted');
        return !this.queues[lane].full;
      }
    }
    return false;
  }

  private drop(e: Entry, reason: RefusalReason): void {
    if (e.onAbort) e.req.signal?.removeEventListener('abort', e.onAbort);
    e.reject(this.refusal(e.req, reason));
  }

  private admitted(lane: Lane, queuedMs: number): void {
    this.stats.admitted[lane]++;
    this.observer.onAdmitted?.(lane, queuedMs);
  }

  /** 429 for sheddable (come back later, politely), 503 for the others (the pool is full). */
  private refusal(req: AdmissionRequest, reason: RefusalReason): ApiError {
    const key = `${req.lane}:${reason}` as const;
    this.stats.refused[key] = (this.stats.refused[key] ?? 0) + 1;
    this.observer.onRefused?.(req.lane, reason);
    const wait = this.probe(req.model);
    const retryAfter = Math.min(60, Math.max(1, Math.ceil(Number.isFinite(wait) ? wait : 1)));
    const why =
      reason === 'shed'
        ? 'the GPU pool is saturated'
        : reason === 'queue_full'
          ? 'the queue is full'
          : reason === 'evicted'
            ? 'a higher-priority request took its place'
            : 'it waited its whole queue deadline';
    const msg = `Request in lane '${req.lane}' was not admitted: ${why}. Retry after ${retryAfter}s.`;
    return new AdmissionRefusal(req.lane, reason, msg, retryAfter);
  }
}
