// The node-metric history: raw samples for `rawRetentionMs`, then 1-minute (bucketMs) buckets
// for `bucketRetentionMs`. Kept in memory for queries, persisted through a HistoryStore so a
// control-plane restart loses nothing but the samples of the seconds it was down.
import type { HistoryStore } from './store.ts';
import {
  NUMERIC_FIELDS,
  worstVerdict,
  type GpuSample,
  type NodeBucket,
  type NodeSample,
  type NumericField,
  type Verdict,
} from './types.ts';

export interface HistoryOptions {
  rawRetentionMs: number;
  bucketMs: number;
  bucketRetentionMs: number;
  compactEveryMs: number;
}

export class History {
  private raw: NodeSample[] = [];
  private buckets: NodeBucket[] = [];
  /** Raw samples before this time are already in buckets. */
  private bucketedUntil = 0;
  private lastCompactAt = 0;

  constructor(
    private readonly store: HistoryStore,
    readonly opts: HistoryOptions,
    private readonly now: () => number = Date.now,
  ) {}

  async load(): Promise<void> {
    const records = await this.store.load();
    for (const r of records) (r.kind === 'raw' ? this.raw : this.buckets).push(r as never);
    this.raw.sort((a, b) => a.t - b.t);
    this.buckets.sort((a, b) => a.t - b.t);
    for (const b of this.buckets) this.bucketedUntil = Math.max(this.bucketedUntil, b.t + b.durationMs);
    this.lastCompactAt = this.now();
    await this.maintain(true);
  }

  async add(samples: NodeSample[]): Promise<void> {
    if (samples.length === 0) return;
    this.raw.push(...samples);
    await this.store.append(samples);
    await this.maintain(false);
  }

  /** Buckets every finished period, drops what is past retention, compacts the store now and then. */
  async maintain(forceCompact: boolean): Promise<void> {
    const now = this.now();
    const { bucketMs } = this.opts;
    const currentStart = Math.floor(now / bucketMs) * bucketMs;
    const made: NodeBucket[] = [];
    if (this.raw.length && this.raw[0]!.t < currentStart) {
      const groups = new Map<string, NodeSample[]>();
      for (const s of this.raw) {
        if (s.t >= currentStart) break;
        if (s.t < this.bucketedUntil) continue;
        const start = Math.floor(s.t / bucketMs) * bucketMs;
        const key = `${start}\u0000${s.node}`;
        let g = groups.get(key);
        if (!g) groups.set(key, (g = []));
        g.push(s);
      }
      for (const [key, g] of groups) made.push(toBucket(g, Number(key.split('\u0000')[0]), bucketMs));
      this.bucketedUntil = Math.max(this.bucketedUntil, currentStart);
    }
    if (made.length) {
      made.sort((a, b) => a.t - b.t);
      this.buckets.push(...made);
      await this.store.append(made);
    }
    const rawCut = now - this.opts.rawRetentionMs;
    const bucketCut = now - this.opts.bucketRetentionMs;
    const rawBefore = this.raw.length;
    const bucketsBefore = this.buckets.length;
    // Raw samples are dropped only once bucketed.
    this.raw = this.raw.filter((s) => s.t >= rawCut || s.t >= this.bucketedUntil);
    this.buckets = this.buckets.filter((b) => b.t + b.durationMs > bucketCut);
    const dropped = rawBefore !== this.raw.length || bucketsBefore !== this.buckets.length;
    if (
      forceCompact ||
      (dropped && now - this.lastCompactAt >= this.opts.compactEveryMs) ||
      now - this.lastCompactAt >= 10 * this.opts.compactEveryMs
    ) {
      this.lastCompactAt = now;
      await this.store.rewrite([...this.buckets, ...this.raw]);
    }
  }

  rawSamples(from: number, to = Infinity, node?: string): NodeSample[] {
    return this.raw.filter((s) => s.t >= from && s.t <= to && (!node || s.node === node));
  }

  bucketRecords(from: number, to = Infinity, node?: string): NodeBucket[] {
    return this.buckets.filter((b) => b.t + b.durationMs > from && b.t <= to && (!node || b.node === node));
  }

  /** Raw samples covering [from, now] in full? Otherwise a query must use buckets. */
  rawCovers(from: number): boolean {
    return from >= this.now() - this.opts.rawRetentionMs;
  }

  latest(): Map<string, NodeSample> {
    const m = new Map<string, NodeSample>();
    for (const s of this.raw) m.set(s.node, s);
    return m;
  }

  get sizes(): { raw: number; buckets: number } {
    return { raw: this.raw.length, buckets: this.buckets.length };
  }

  async close(): Promise<void> {
    await this.store.close();
  }
}

const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : undefined);
const share = (xs: NodeSample[], f: (s: NodeSample) => boolean) => xs.filter(f).length / xs.length;

export function toBucket(samples: NodeSample[], start: number, durationMs: number): NodeBucket {
  const last = samples[samples.length - 1]!;
  const m: Partial<Record<NumericField, number>> = {};
  const mx: Partial<Record<NumericField, number>> = {};
  for (const f of NUMERIC_FIELDS) {
    const xs = samples.map((s) => s[f]).filter((v): v is number => typeof v === 'number' && Number.isFinite(v));
    if (xs.length) {
      m[f] = mean(xs)!;
      mx[f] = Math.max(...xs);
    }
  }
  let verdict: Verdict = 'HEALTHY';
  const reasons = new Set<string>();
  for (const s of samples) {
    verdict = worstVerdict(verdict, s.gpuVerdict);
    for (const g of s.gpus) for (const r of g.reasons) reasons.add(r);
  }
  const gpus = new Map<number, GpuSample[]>();
  for (const s of samples)
    for (const g of s.gpus) {
      let l = gpus.get(g.index);
      if (!l) gpus.set(g.index, (l = []));
      l.push(g);
    }
  const busy = samples.map((s) => s.ttftSeconds).filter((v) => v > 0);
  return {
    kind: 'bucket',
    t: start,
    durationMs,
    node: last.node,
    models: last.models,
    samples: samples.length,
    connected: share(samples, (s) => s.connected),
    ready: share(samples, (s) => s.ready),
    draining: share(samples, (s) => s.draining),
    cordoned: share(samples, (s) => s.cordoned),
    gpuVerdict: verdict,
    gpuReasons: [...reasons].sort(),
    maxNumSeqs: last.maxNumSeqs,
    mean: m,
    max: mx,
    ...(busy.length ? { ttftSecondsBusy: mean(busy)! } : {}),
    gpus: [...gpus.values()].map((gs) => {
      const g0 = gs[gs.length - 1]!;
      const avg = (f: 'utilization' | 'memoryUsedBytes' | 'memoryTotalBytes' | 'temperatureC' | 'powerW') =>
        mean(gs.map((g) => g[f]).filter((v): v is number => typeof v === 'number'));
      const out: GpuSample = {
        index: g0.index,
        uuid: g0.uuid,
        name: g0.name,
        verdict: gs.reduce<Verdict>((v, g) => worstVerdict(v, g.verdict), 'HEALTHY'),
        reasons: [...new Set(gs.flatMap((g) => g.reasons))].sort(),
      };
      for (const f of ['utilization', 'memoryUsedBytes', 'memoryTotalBytes', 'temperatureC', 'powerW'] as const) {
        const v = avg(f);
        if (v !== undefined) out[f] = v;
      }
      return out;
    }),
  };
}
