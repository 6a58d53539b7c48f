// Scheduling benchmark in virtual time (test/bench/cluster/): the router's real scheduling
// profiles and admission controller in front of simulated vLLM engines of speeds 1, 1, 0.6, 0.3
// (repeated for 16/64/256 nodes), fed the Azure LLM inference trace 2023 (conversation) time-scaled
// to a share of measured capacity, Poisson arrivals with the trace's length mix, a shared-prefix
// workload, and a 2x overload with lanes. Each cell: median of 3 seeds / trace windows.
// Usage: npx tsx test/bench/scheduling.ts   (BENCH_QUICK=1 for a smaller run)
import { buildProfile, DEFAULT_PROFILE, type ProfileConfig } from '../../router/scheduling/plugins.ts';
import { DEFAULT_ADMISSION } from '../../router/admission/controller.ts';
import { simulate, type SimRequest, type SimResult } from './cluster/virtual-cluster.ts';
import { loadTrace, traceWorkload, poissonWorkload, sharedPrefixWorkload, TRACE_FILE } from './cluster/workloads.ts';
import { percentile, printTable, writeResults } from './report.ts';
import type { Lane } from '../../common/contracts.ts';
import { liveWorkload, replay, startLiveStack, virtualTwin } from './cluster/live.ts';

const QUICK = process.env.BENCH_QUICK === '1';
/** BENCH_ONLY=policies,prefix,overload,scale,live: run only those sections. */
const ONLY = new Set((process.env.BENCH_ONLY ?? '').split(',').filter(Boolean));
const section = (name: string) => ONLY.size === 0 || ONLY.has(name);
const N = QUICK ? 800 : 2_000;
const SEEDS = [1, 2, 3];
const TTFT_SLO_MS = Number(process.env.TTFT_SLO_MS ?? 2_000);
const SPEEDS4 = [1, 1, 0.6, 0.3];
const speeds = (n: number) => Array.from({ length: n }, (_, i) => SPEEDS4[i % 4]!);

const base = { picker: 'max-score' as const, degradedScore: 0, affinity: DEFAULT_PROFILE.affinity };
const POLICIES: Record<string, ProfileConfig> = {
  'round-robin': { ...base, scorers: {}, picker: 'round-robin' },
  'least-outstanding': { ...base, scorers: { 'in-flight': 1 } },
  'least-predicted-wait': { ...base, scorers: { 'predicted-wait': 1 } },
  'full-profile': DEFAULT_PROFILE,
};
const LOAD_ONLY: ProfileConfig = { ...DEFAULT_PROFILE, scorers: { ...DEFAULT_PROFILE.scorers, 'prefix-affinity': 0 } };

const median = (xs: number[]) => percentile(xs, 50);

interface Summary {
  ttftP50: number;
  ttftP90: number;
  ttftP99: number;
  e2eP99: number;
  throughput: number;
  goodput: number;
  sloPct: number;
  decisionP50Us: number;
  decisionP99Us: number;
}

function summarise(results: SimResult[], reqs: SimRequest[], decisionUs: number[]): Summary {
  const done = results.filter((r) => r.e2eMs !== undefined);
  const ttft = done.map((r) => r.ttftMs!);
  const span = Math.max(...done.map((r) => r.req.at + r.e2eMs!)) - reqs[0]!.at;
  return {
    ttftP50: percentile(ttft, 50),
    ttftP90: percentile(ttft, 90),
    ttftP99: percentile(ttft, 99),
    e2eP99: percentile(
      done.map((r) => r.e2eMs!),
      99,
    ),
    throughput: (done.length / span) * 1000,
    // Requests meeting the TTFT SLO per second from the first arrival to the last completion.
    goodput: (done.filter((r) => r.ttftMs! <= TTFT_SLO_MS).length / span) * 1000,
    // Share of all offered requests that met the TTFT SLO.
    sloPct: (100 * done.filter((r) => r.ttftMs! <= TTFT_SLO_MS).length) / reqs.length,
    decisionP50Us: percentile(decisionUs, 50),
    decisionP99Us: percentile(decisionUs, 99),
  };
}

function medianSummary(ss: Summary[]): Summary {
  const keys = Object.keys(ss[0]!) as (keyof Summary)[];
  return Object.fromEntries(keys.map((k) => [k, median(ss.map((s) => s[k]))])) as unknown as Summary;
}

function run(reqs: SimRequest[], policy: ProfileConfig, nodes: number, seed: number): Summary {
  const { results, decisionUs } = simulate(reqs, { speeds: speeds(nodes), profile: buildProfile(policy, 2_000, rngFor(seed)) });
  return summarise(results, reqs, decisionUs);
}
function rngFor(seed: number): () => number {
  let a = (seed * 2654435761) >>> 0;
  return () => (a = (a * 1664525 + 1013904223) >>> 0) / 4294967296;
}

const t0 = performance.now();
const rows = loadTrace();
console.log(`trace ${TRACE_FILE}: ${rows.length} requests`);

// 1. Capacity: the trace's requests all but at once; completions per second while every node is
// still busy (up to the moment the first node runs dry), so the slow node's tail does not count.
function busyThroughput(results: SimResult[]): number {
  const lastByNode = new Map<string, number>();
  for (const r of results) if (r.e2eMs !== undefined) lastByNode.set(r.node!, Math.max(lastByNode.get(r.node!) ?? 0, r.req.at + r.e2eMs));
  const until = Math.min(...lastByNode.values());
  return (results.filter((r) => r.e2eMs !== undefined && r.req.at + r.e2eMs <= until).length / until) * 1000;
}
const capacity = (nodes: number) => {
  const reqs = traceWorkload(rows, (N * nodes) / 4, 1_000 * nodes);
  const { results } = simulate(reqs, { speeds: speeds(nodes), profile: buildProfile(POLICIES['least-predicted-wait']!, 2_000, rngFor(1)) });
  return busyThroughput(results);
};
const cap4 = capacity(4);
console.log(`measured capacity, 4 nodes (1, 1, 0.6, 0.3): ${cap4.toFixed(2)} req/s`);

// 2. Policies x loads x workloads, 4 nodes.
const policyRows: Record<string, unknown>[] = [];
for (const wl of section('policies') ? ['azure-trace', 'poisson'] : []) {
  for (const load of [0.5, 0.8, 1.0, 1.2]) {
    for (const [name, policy] of Object.entries(POLICIES)) {
      const ss = SEEDS.map((seed) => {
        const rate = cap4 * load;
        const reqs = wl === 'azure-trace' ? traceWorkload(rows, N, rate, (seed - 1) * 5_000) : poissonWorkload(rows, N, rate, seed);
        return run(reqs, policy, 4, seed);
      });
      const m = medianSummary(ss);
      policyRows.push({
        workload: wl,
        load: `${load * 100}%`,
        policy: name,
        ttft_p50_ms: m.ttftP50,
        ttft_p99_ms: m.ttftP99,
        e2e_p99_ms: m.e2eP99,
        throughput_rps: m.throughput,
        goodput_rps: m.goodput,
        slo_pct: m.sloPct,
      });
    }
  }
}
printTable(`Policies, 4 nodes, ${N} requests per run, TTFT SLO ${TTFT_SLO_MS} ms (median of 3)`, policyRows);

// 3. Shared prefix: 100 groups x 4k-token prefix, 64-token suffixes, at 80% of load-only capacity.
const spCapReqs = sharedPrefixWorkload(N, 1_000);
const spCap = busyThroughput(simulate(spCapReqs, { speeds: SPEEDS4, profile: buildProfile(LOAD_ONLY, 2_000, rngFor(1)) }).results);
const prefixRows: Record<string, unknown>[] = [];
for (const [name, policy] of section('prefix')
  ? ([
      ['load-only', LOAD_ONLY],
      ['with-affinity', DEFAULT_PROFILE],
      ['round-robin', POLICIES['round-robin']!],
    ] as const)
  : []) {
  const m = medianSummary(SEEDS.map((seed) => run(sharedPrefixWorkload(N, spCap * 0.8, 100, 4_096, 64, 64, seed), policy, 4, seed)));
  prefixRows.push({
    policy: name,
    rate_rps: spCap * 0.8,
    ttft_p50_ms: m.ttftP50,
    ttft_p90_ms: m.ttftP90,
    throughput_rps: m.throughput,
    goodput_rps: m.goodput,
  });
}
if (section('prefix'))
  printTable(`Shared prefix (100 groups x 4096-token prefix), 4 nodes, 80% of load-only capacity ${spCap.toFixed(1)} req/s`, prefixRows);

// 4. Overload: 2x capacity, 20% critical / 50% standard / 30% sheddable, full profile + admission.
const laneOf = (r: () => number): Lane => {
  const x = r();
  return x < 0.2 ? 'critical' : x < 0.7 ? 'standard' : 'sheddable';
};
const overloadRows: Record<string, unknown>[] = [];
const perLane: Record<Lane, { offered: number[]; slo: number[]; refused: number[]; served: number[]; p99: number[]; refusalUs: number[] }> =
  {
    critical: { offered: [], slo: [], refused: [], served: [], p99: [], refusalUs: [] },
    standard: { offered: [], slo: [], refused: [], served: [], p99: [], refusalUs: [] },
    sheddable: { offered: [], slo: [], refused: [], served: [], p99: [], refusalUs: [] },
  };
for (const seed of section('overload') ? SEEDS : []) {
  const reqs = traceWorkload(rows, N, cap4 * 2, (seed - 1) * 5_000, laneOf, seed);
  const { results } = simulate(reqs, {
    speeds: SPEEDS4,
    profile: buildProfile(DEFAULT_PROFILE, 2_000, rngFor(seed)),
    admission: DEFAULT_ADMISSION,
  });
  for (const lane of ['critical', 'standard', 'sheddable'] as Lane[]) {
    const rs = results.filter((r) => r.req.lane === lane);
    const served = rs.filter((r) => r.ttftMs !== undefined);
    perLane[lane].offered.push(rs.length);
    perLane[lane].served.push(served.length);
    perLane[lane].refused.push(rs.filter((r) => r.refused).length);
    perLane[lane].slo.push((100 * served.filter((r) => r.ttftMs! <= TTFT_SLO_MS).length) / Math.max(1, served.length));
    perLane[lane].p99.push(
      percentile(
        served.map((r) => r.ttftMs!),
        99,
      ),
    );
    perLane[lane].refusalUs.push(...rs.filter((r) => r.refused && Number.isFinite(r.refused.refusalUs)).map((r) => r.refused!.refusalUs));
  }
}
for (const lane of section('overload') ? (['critical', 'standard', 'sheddable'] as Lane[]) : []) {
  const p = perLane[lane];
  overloadRows.push({
    lane,
    offered: median(p.offered),
    served: median(p.served),
    refused: median(p.refused),
    served_slo_pct: median(p.slo),
    ttft_p99_ms: median(p.p99),
    refusal_p50_us: p.refusalUs.length ? percentile(p.refusalUs, 50) : 0,
    refusal_p99_us: p.refusalUs.length ? percentile(p.refusalUs, 99) : 0,
  });
}
if (section('overload'))
  printTable(
    `Overload at 2x capacity (${(cap4 * 2).toFixed(1)} req/s), lanes 20/50/30, full profile + admission (median of 3)`,
    overloadRows,
  );

// 5. Scale: 16, 64, 256 nodes at 80% and 100% of capacity; scheduler decision time.
const scaleRows: Record<string, unknown>[] = [];
for (const nodes of !section('scale') ? [] : QUICK ? [16, 64] : [16, 64, 256]) {
  const cap = (cap4 * nodes) / 4;
  for (const load of [0.8, 1.0]) {
    for (const [name, policy] of Object.entries(POLICIES)) {
      const count = Math.round((N * nodes) / 8);
      const m = run(traceWorkload(rows, Math.min(count, rows.length), cap * load, 0), policy, nodes, 1);
      scaleRows.push({
        nodes,
        load: `${load * 100}%`,
        policy: name,
        ttft_p50_ms: m.ttftP50,
        ttft_p99_ms: m.ttftP99,
        goodput_rps: m.goodput,
        decision_p50_us: m.decisionP50Us,
        decision_p99_us: m.decisionP99Us,
      });
    }
  }
}
if (section('scale'))
  printTable("Virtual-time scale-out (one trace window each), decision time is the scheduler's own wall-clock cost", scaleRows);

// 6. Live loopback vs virtual time, 4 nodes: the same requests through real processes and
// through the simulator. The live router takes its profile from config, which knows no
// 'free-slots' yet, and feeds no slot times: the twin runs the same profile with the same signals.
const LIVE_POLICIES: Record<string, ProfileConfig> = {
  'round-robin': POLICIES['round-robin']!,
  'least-outstanding': POLICIES['least-outstanding']!,
  'full-profile': {
    ...DEFAULT_PROFILE,
    scorers: Object.fromEntries(Object.entries(DEFAULT_PROFILE.scorers).filter(([k]) => k !== 'free-slots')),
  },
};
const LIVE_N = Number(process.env.BENCH_LIVE_N ?? 120);
const LIVE_RATE = Number(process.env.BENCH_LIVE_RATE ?? 9);
const liveRows: Record<string, unknown>[] = [];
if (section('live') && process.env.BENCH_LIVE !== '0') {
  for (const [name, policy] of Object.entries(LIVE_POLICIES)) {
    const stack = await startLiveStack(policy);
    try {
      await new Promise((r) => setTimeout(r, 3_000)); // statuses from every node
      const live = [],
        virt = [];
      for (const seed of SEEDS) {
        const reqs = liveWorkload(rows, LIVE_N, LIVE_RATE, seed);
        virt.push(virtualTwin(reqs, policy, TTFT_SLO_MS, seed));
        live.push(await replay(stack, reqs, TTFT_SLO_MS));
        await new Promise((r) => setTimeout(r, 1_000));
      }
      const m = (xs: { goodput: number; ttftP50: number; ttftP99: number }[], k: 'goodput' | 'ttftP50' | 'ttftP99') =>
        median(xs.map((x) => x[k]));
      liveRows.push({
        policy: name,
        rate_rps: LIVE_RATE,
        live_goodput: m(live, 'goodput'),
        virtual_goodput: m(virt, 'goodput'),
        goodput_diff_pct: (100 * (m(live, 'goodput') - m(virt, 'goodput'))) / m(virt, 'goodput'),
        live_ttft_p50_ms: m(live, 'ttftP50'),
        virtual_ttft_p50_ms: m(virt, 'ttftP50'),
        live_ttft_p99_ms: m(live, 'ttftP99'),
        virtual_ttft_p99_ms: m(virt, 'ttftP99'),
      });
    } finally {
      await stack.stop();
    }
  }
  const rank = (k: string) =>
    [...liveRows]
      .sort((a, b) => (b[k] as number) - (a[k] as number))
      .map((r) => r.policy)
      .join(' > ');
  printTable(
    `Live loopback vs virtual time, 4 nodes (speeds 1, 1, 0.6, 0.3; 8 seqs, 30 + 1/seq ms steps), ${LIVE_N} requests at ${LIVE_RATE} req/s, median of 3`,
    liveRows,
  );
  console.log(`goodput ranking: live ${rank('live_goodput')}; virtual ${rank('virtual_goodput')}`);
}

const seconds = (performance.now() - t0) / 1000;
console.log(`\nscheduling bench: ${seconds.toFixed(1)} s`);
writeResults('scheduling', {
  ttftSloMs: TTFT_SLO_MS,
  capacity4: cap4,
  sharedPrefixCapacity: spCap,
  policies: policyRows,
  sharedPrefix: prefixRows,
  overload: overloadRows,
  scale: scaleRows,
  live: liveRows,
  seconds,
});
