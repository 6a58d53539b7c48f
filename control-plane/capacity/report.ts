// The capacity report: a pure function of the history (docs/capacity-planning.md explains every
// number). Per pool (served model): demand over the window, each node's throughput while meeting
// the TTFT SLO, headroom, nodes needed for a growth factor, what sick and slow nodes cost, and
// what-ifs. Unit: requests/s when agents' /metrics counters were sampled; otherwise concurrent
// sequences (running + waiting), with max_num_seqs as a node's capacity.
import { toBucket } from './history.ts';
import { worstVerdict, type NodeBucket, type NodeSample, type Verdict } from './types.ts';

export interface ReportParams {
  windowMs: number;
  growth: number;
  sloTtftSeconds: number;
  /** Slot length the raw samples are grouped into (rates over a 2 s sample are too noisy). */
  slotMs: number;
  whatIf: WhatIf[];
  model?: string;
}
export interface WhatIf {
  delta: number;
  kind?: string;
}

export interface ReportInput {
  now: number;
  /** Raw samples when they cover the window, else undefined. */
  raw?: NodeSample[];
  buckets: NodeBucket[];
  latest: Map<string, NodeSample>;
}

interface Point {
  t: number;
  durMs: number;
  node: string;
  models: string[];
  ready: number; // share
  draining: number;
  verdict: Verdict;
  running: number;
  waiting: number;
  ttft: number; // busy mean, 0 = no measurement
  rps?: number;
  inTps?: number;
  outTps?: number;
  maxNumSeqs: number;
}

const r3 = (x: number) => Math.round(x * 1000) / 1000;
const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
const mean = (xs: number[]) => (xs.length ? sum(xs) / xs.length : 0);
export function percentile(xs: number[], p: number): number {
  if (!xs.length) return 0;
  const s = [...xs].sort((a, b) => a - b);
  // nearest-rank
  return s[Math.max(0, Math.ceil((p / 100) * s.length) - 1)]!;
}
const median = (xs: number[]) => percentile(xs, 50);

function bucketToPoint(b: NodeBucket): Point {
  return {
    t: b.t,
    durMs: b.durationMs,
    node: b.node,
    models: b.models,
    ready: Math.min(b.ready, 1 - b.cordoned),
    draining: b.draining,
    verdict: b.gpuVerdict,
    running: b.mean.running ?? 0,
    waiting: b.mean.waiting ?? 0,
    ttft: b.ttftSecondsBusy ?? 0,
    rps: b.mean.requestsPerSecond,
    inTps: b.mean.promptTokensPerSecond,
    outTps: b.mean.generationTokensPerSecond,
    maxNumSeqs: b.maxNumSeqs,
  };
}

function toPoints(input: ReportInput, params: ReportParams): Point[] {
  const from = input.now - params.windowMs;
  if (input.raw) {
    const groups = new Map<string, NodeSample[]>();
    for (const s of input.raw) {
      if (s.t < from) continue;
      const key = `${Math.floor(s.t / params.slotMs) * params.slotMs}\u0000${s.node}`;
      let g = groups.get(key);
      if (!g) groups.set(key, (g = []));
      g.push(s);
    }
    return [...groups.entries()].map(([k, g]) => bucketToPoint(toBucket(g, Number(k.split('\u0000')[0]), params.slotMs)));
  }
  return input.buckets.filter((b) => b.t + b.durationMs > from).map(bucketToPoint);
}

export interface NodeCapacity {
  node: string;
  kind: string;
  state: { connected: boolean; ready: boolean; draining: boolean; cordoned: boolean; gpuVerdict: Verdict; gpuReasons: string[] };
  /** Throughput the node sustained while meeting the SLO (unit of the pool); undefined = no data. */
  capacity?: number;
  capacityBasis: 'measured-at-saturation' | 'extrapolated-littles-law' | 'overloaded-throughput' | 'max-num-seqs' | 'no-data';
  capacityOutputTokensPerSecond?: number;
  observed: {
    meanDemand: number;
    maxDemandWithinSlo: number;
    meanRunning: number;
    meanWaiting: number;
    meanTtftSeconds: number;
    slotsOverSlo: number;
    slots: number;
  };
  /** Capacity relative to the pool's reference node (median). */
  relativeCapacity?: number;
  slow: boolean;
  unhealthyShare: number;
  degradedShare: number;
}

export interface PoolReport {
  model: string;
  unit: 'requests/s' | 'concurrent sequences';
  demand: {
    mean: number;
    peak: number;
    p95: number;
    inputTokensPerSecond?: { mean: number; peak: number; p95: number };
    outputTokensPerSecond?: { mean: number; peak: number; p95: number };
  };
  nodes: NodeCapacity[];
  referenceNodeCapacity?: number;
  capacity: { usable: number; nominal: number };
  headroom: { absolute: number; ratio: number } | undefined;
  nodesNeeded:
    | { growth: number; forP95: number; forPeak: number; exactForP95: number; have: number; haveEffective: number; toAdd: number }
    | undefined;
  costs: { node: string; why: string[]; capacityLost: number }[];
  slowNodes: string[];
  whatIf: { change: string; usable: number; headroom: number; meetsP95TimesGrowth: boolean }[];
  series: { t: number; demand: number; usableCapacity: number }[];
}

export interface CapacityReport {
  generatedAt: string;
  params: { windowMs: number; growth: number; sloTtftSeconds: number; slotMs: number; source: 'raw' | 'buckets' };
  pools: PoolReport[];
  notes: string[];
}

function stats(xs: number[]) {
  return { mean: r3(mean(xs)), peak: r3(xs.length ? Math.max(...xs) : 0), p95: r3(percentile(xs, 95)) };
}

/** L(c) = a + b·c by least squares over (running, latency) pairs; b clamped at >= 0. */
export function fitLatency(pairs: [number, number][]): { a: number; b: number } | undefined {
  if (!pairs.length) return undefined;
  const mx = mean(pairs.map((p) => p[0]));
  const my = mean(pairs.map((p) => p[1]));
  const sxx = sum(pairs.map((p) => (p[0] - mx) ** 2));
  if (sxx < 1e-9 || pairs.length < 3) return { a: my, b: 0 };
  const b = Math.max(0, sum(pairs.map((p) => (p[0] - mx) * (p[1] - my))) / sxx);
  return { a: Math.max(my - b * mx, 1e-6), b };
}

function nodeKind(s: NodeSample | undefined): string {
  const g = s?.gpus ?? [];
  if (!g.length) return 'no-gpu';
  return `${g.length}x ${g[0]!.name || 'gpu'}`;
}

export function buildCapacityReport(input: ReportInput, params: ReportParams): CapacityReport {
  const points = toPoints(input, params);
  const notes: string[] = [];
  const models = new Set<string>();
  for (const p of points) for (const m of p.models) models.add(m);
  for (const s of input.latest.values()) for (const m of s.models) models.add(m);
  const pools: PoolReport[] = [];
  for (const model of [...models].sort()) {
    if (params.model && model !== params.model) continue;
    pools.push(
      poolReport(
        model,
        points.filter((p) => p.models.includes(model)),
        input,
        params,
      ),
    );
  }
  if (!input.raw) notes.push('window longer than raw retention: computed from 1-minute buckets');
  if (pools.some((p) => p.unit === 'concurrent sequences'))
    notes.push(
      'no agent /metrics counters for some pools: demand and capacity are in concurrent sequences (running + waiting vs max_num_seqs); set controlPlane.capacity.metricsUrls or agents[].httpListen with a fixed port for requests/s',
    );
  return {
    generatedAt: new Date(input.now).toISOString(),
    params: {
      windowMs: params.windowMs,
      growth: params.growth,
      sloTtftSeconds: params.sloTtftSeconds,
      slotMs: input.raw ? params.slotMs : (input.buckets[0]?.durationMs ?? 60_000),
      source: input.raw ? 'raw' : 'buckets',
    },
    pools,
    notes,
  };
}

function poolReport(model: string, points: Point[], input: ReportInput, params: ReportParams): PoolReport {
  const slo = params.sloTtftSeconds;
  const nodeIds = [
    ...new Set([...points.map((p) => p.node), ...[...input.latest.values()].filter((s) => s.models.includes(model)).map((s) => s.node)]),
  ].sort();
  const hasRates = points.some((p) => p.rps !== undefined);
  const unit: PoolReport['unit'] = hasRates ? 'requests/s' : 'concurrent sequences';
  // A node serving several models shares its throughput among them (an even split: assumption).
  const share = (p: Point) => 1 / Math.max(1, p.models.length);
  const demandOf = (p: Point) => (hasRates ? (p.rps ?? 0) : p.running + p.waiting) * share(p);

  const bySlot = new Map<number, Point[]>();
  for (const p of points) {
    let l = bySlot.get(p.t);
    if (!l) bySlot.set(p.t, (l = []));
    l.push(p);
  }
  const slots = [...bySlot.keys()].sort((a, b) => a - b);
  const demandSeries = slots.map((t) => sum(bySlot.get(t)!.map(demandOf)));
  const tokSeries = (f: 'inTps' | 'outTps') => slots.map((t) => sum(bySlot.get(t)!.map((p) => (p[f] ?? 0) * share(p))));

  const nodes: NodeCapacity[] = nodeIds.map((id) => {
    const ps = points.filter((p) => p.node === id);
    const last = input.latest.get(id);
    const busy = ps.filter((p) => p.ttft > 0);
    const good = ps.filter((p) => p.ready >= 0.5 && p.draining < 0.5 && p.ttft > 0 && p.ttft <= slo);
    const over = busy.filter((p) => p.ttft > slo);
    const saturated = over.length > 0 || good.some((p) => p.waiting >= 0.5);
    let capacity: number | undefined;
    let basis: NodeCapacity['capacityBasis'] = 'no-data';
    const maxSeqs = Math.max(0, ...ps.map((p) => p.maxNumSeqs), last?.maxNumSeqs ?? 0);
    if (!hasRates) {
      const c = maxSeqs || Math.max(0, ...good.map((p) => p.running));
      if (c > 0) {
        capacity = c;
        basis = 'max-num-seqs';
      }
    } else {
      const goodRates = good
        .map((p) => (p.rps ?? 0) * share(p))
        .filter((x) => x > 0)
        .sort((a, b) => b - a);
      const queued = good.filter((p) => p.waiting >= 0.5 && (p.rps ?? 0) > 0);
      if (queued.length) {
        // Requests waited in the engine and the SLO still held: it ran at its ceiling. Their mean rate.
        capacity = mean(queued.map((p) => p.rps! * share(p)));
        basis = 'measured-at-saturation';
      } else if (saturated && goodRates.length) {
        // Pushed over the SLO at times: the slots where it did the most within it (top quarter, at least 1).
        capacity = mean(goodRates.slice(0, Math.max(1, Math.ceil(goodRates.length / 4))));
        basis = 'measured-at-saturation';
      } else if (saturated && over.length) {
        capacity = median(over.map((p) => (p.rps ?? 0) * share(p)));
        basis = 'overloaded-throughput';
      } else {
        // Never saturated: Little's law per slot (latency = running / throughput), latency fitted
        // against concurrency, extrapolated to the engine's concurrency ceiling.
        const pairs = good
          .filter((p) => (p.rps ?? 0) > 0 && p.running > 0)
          .map((p): [number, number] => [p.running, p.running / (p.rps! * share(p))]);
        const fit = fitLatency(pairs);
        const ceiling = maxSeqs || Math.max(0, ...pairs.map((x) => x[0]));
        if (fit && ceiling > 0) {
          capacity = Math.max(ceiling / (fit.a + fit.b * ceiling), goodRates[0] ?? 0);
          basis = 'extrapolated-littles-law';
        }
      }
    }
    const rpsSum = sum(ps.map((p) => p.rps ?? 0));
    const outPerReq = rpsSum > 0 ? sum(ps.map((p) => p.outTps ?? 0)) / rpsSum : undefined;
    const tw = sum(ps.map((p) => p.durMs)) || 1;
    const unhealthyShare = sum(ps.filter((p) => p.verdict === 'UNHEALTHY').map((p) => p.durMs)) / tw;
    const degradedShare = sum(ps.filter((p) => p.verdict === 'DEGRADED').map((p) => p.durMs)) / tw;
    const reasons = [...new Set((last?.gpus ?? []).flatMap((g) => g.reasons))].sort();
    return {
      node: id,
      kind: nodeKind(last),
      state: {
        connected: last?.connected ?? false,
        ready: last?.ready ?? false,
        draining: last?.draining ?? false,
        cordoned: last?.cordoned ?? false,
        gpuVerdict: (last?.gpus ?? []).reduce<Verdict>((v, g) => worstVerdict(v, g.verdict), last?.gpuVerdict ?? 'UNKNOWN'),
        gpuReasons: reasons,
      },
      ...(capacity !== undefined ? { capacity: r3(capacity) } : {}),
      capacityBasis: basis,
      ...(capacity !== undefined && outPerReq !== undefined && hasRates ? { capacityOutputTokensPerSecond: r3(capacity * outPerReq) } : {}),
      observed: {
        meanDemand: r3(mean(ps.map(demandOf))),
        maxDemandWithinSlo: r3(Math.max(0, ...good.map(demandOf))),
        meanRunning: r3(mean(ps.map((p) => p.running))),
        meanWaiting: r3(mean(ps.map((p) => p.waiting))),
        meanTtftSeconds: r3(mean(busy.map((p) => p.ttft))),
        slotsOverSlo: over.length,
        slots: ps.length,
      },
      slow: false,
      unhealthyShare: r3(unhealthyShare),
      degradedShare: r3(degradedShare),
    };
  });

  // The reference node: the median capacity of the nodes that were healthy in the window.
  const healthyCaps = nodes
    .filter((n) => n.capacity !== undefined && n.unhealthyShare < 0.5 && n.degradedShare < 0.5)
    .map((n) => n.capacity!);
  const allCaps = nodes.filter((n) => n.capacity !== undefined).map((n) => n.capacity!);
  const ref = healthyCaps.length ? median(healthyCaps) : allCaps.length ? median(allCaps) : undefined;
  const capOf = (n: NodeCapacity) => n.capacity ?? ref ?? 0;
  const usableNow = (n: NodeCapacity) =>
    n.state.connected && n.state.ready && !n.state.draining && !n.state.cordoned && n.state.gpuVerdict !== 'UNHEALTHY';
  const slowNodes: string[] = [];
  const costs: PoolReport['costs'] = [];
  for (const n of nodes) {
    if (ref) n.relativeCapacity = n.capacity !== undefined ? r3(n.capacity / ref) : undefined;
    if (ref && n.capacity !== undefined && n.capacity < 0.75 * ref) {
      n.slow = true;
      slowNodes.push(n.node);
    }
    const why: string[] = [];
    let lost = 0;
    if (!usableNow(n)) {
      if (!n.state.connected) why.push('not connected');
      else if (!n.state.ready) why.push('not ready');
      if (n.state.draining) why.push('draining');
      if (n.state.cordoned) why.push('cordoned');
      if (n.state.gpuVerdict === 'UNHEALTHY')
        why.push(`GPU unhealthy${n.state.gpuReasons.length ? ` (${n.state.gpuReasons.join(', ')})` : ''}`);
      lost = capOf(n);
    } else {
      if (n.state.gpuVerdict === 'DEGRADED')
        why.push(`GPU degraded${n.state.gpuReasons.length ? ` (${n.state.gpuReasons.join(', ')})` : ''}`);
      if (n.slow) why.push(`slow: ${Math.round((n.relativeCapacity ?? 0) * 100)}% of the reference node`);
      if (why.length && ref) lost = Math.max(0, ref - capOf(n));
    }
    if (why.length) costs.push({ node: n.node, why, capacityLost: r3(lost) });
  }
  const usable = sum(nodes.filter(usableNow).map(capOf));
  const nominal = sum(nodes.map(capOf));
  const d = stats(demandSeries);
  const headroom = ref ? { absolute: r3(usable - d.p95), ratio: usable > 0 ? r3((usable - d.p95) / usable) : 0 } : undefined;
  const have = nodes.filter(usableNow).length;
  const nodesNeeded = ref
    ? {
        growth: params.growth,
        exactForP95: r3((d.p95 * params.growth) / ref),
        forP95: Math.max(1, Math.ceil((d.p95 * params.growth) / ref - 1e-9)),
        forPeak: Math.max(1, Math.ceil((d.peak * params.growth) / ref - 1e-9)),
        have,
        haveEffective: r3(usable / ref),
        toAdd: Math.max(0, Math.ceil((d.p95 * params.growth - usable) / ref - 1e-9)),
      }
    : undefined;

  const kindCap = (kind?: string) => {
    const caps = nodes.filter((n) => (!kind || n.kind === kind) && n.capacity !== undefined).map((n) => n.capacity!);
    return kind && caps.length ? median(caps) : (ref ?? 0);
  };
  const whatIfs = params.whatIf.length ? params.whatIf : [{ delta: 1 }, { delta: -1 }];
  const whatIf = ref
    ? whatIfs.map((w) => {
        const u = Math.max(0, usable + w.delta * kindCap(w.kind));
        return {
          change: `${w.delta >= 0 ? 'add' : 'remove'} ${Math.abs(w.delta)} x ${w.kind ?? `reference node (${r3(ref)} ${unit})`}`,
          usable: r3(u),
          headroom: r3(u - d.p95),
          meetsP95TimesGrowth: u >= d.p95 * params.growth,
        };
      })
    : [];

  const capAt = (t: number) =>
    sum(
      (bySlot.get(t) ?? [])
        .filter((p) => p.ready >= 0.5 && p.draining < 0.5 && p.verdict !== 'UNHEALTHY')
        .map((p) => capOf(nodes.find((n) => n.node === p.node)!)),
    );
  const step = Math.max(1, Math.ceil(slots.length / 240));
  const series = slots
    .filter((_, i) => i % step === 0)
    .map((t) => ({ t, demand: r3(demandSeries[slots.indexOf(t)]!), usableCapacity: r3(capAt(t)) }));

  return {
    model,
    unit,
    demand: {
      ...d,
      ...(hasRates ? { inputTokensPerSecond: stats(tokSeries('inTps')), outputTokensPerSecond: stats(tokSeries('outTps')) } : {}),
    },
    nodes,
    ...(ref !== undefined ? { referenceNodeCapacity: r3(ref) } : {}),
    capacity: { usable: r3(usable), nominal: r3(nominal) },
    headroom,
    nodesNeeded,
    costs,
    slowNodes,
    whatIf,
    series,
  };
}

/** "90s", "15m", "1h", "7d" or milliseconds. */
export function parseDuration(v: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(v.trim());
  if (!m) return undefined;
  const n = Number(m[1]);
  const mult = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }[(m[2] ?? 'ms') as 'ms'];
  return n * mult;
}
