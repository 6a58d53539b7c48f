// Scenario 5: overload at 3x capacity. One simulated vLLM node with a small batch (capacity is
// measured first, unloaded: batch slots / mean time a request holds one), then open-loop load at
// three times that for the fault phase, lanes mixed (1/6 critical, 2/6 standard, 3/6 sheddable),
// then load drops to a third of capacity. Promises checked: the critical lane keeps its SLO (p99
// time to first token within 1 s of the unloaded p99), refusals are fast (a shed is answered in
// milliseconds with Retry-After), the router's memory stays bounded (peak RSS from /proc), and the
// lane queues drain once load drops (router_queue_depth back to 0, nothing left in flight).
import { startStack, DEFAULT_MODEL, type Stack } from '../../helpers/stack.ts';
import { sleep } from '../../../common/process.ts';
import { CrashWatch, phases, waitServing } from '../harness.ts';
import { chaosAudit, auditStack } from '../secrets.ts';
import { startLoad, summarise, type ChaosRecord, type Lane, type LoadTenant } from '../load.ts';
import { histogramQuantile, mb, quantile, sampleRss, scrape, sumOf } from '../probes.ts';
import type { Scenario, ScenarioOptions, ScenarioResult } from '../types.ts';

const NAME = 'overload';
const MAX_NUM_SEQS = 4;
const MAX_TOKENS = 16;
const TENANTS: LoadTenant[] = [
  { name: 'tenant-a', apiKey: 'sk-chaos-overload-a-3f9d1e07' },
  { name: 'tenant-b', apiKey: 'sk-chaos-overload-b-c24b7a95' },
];
const MIX: Lane[] = ['critical', 'standard', 'standard', 'sheddable', 'sheddable', 'sheddable'];
/**
 * The critical lane's SLO: p99 TTFT at most this much above the unloaded p99, plus the health
 * check p99 measured meanwhile (on this shared machine, scheduling noise alone reaches a second).
 */
const CRITICAL_SLO_SLACK_MS = 1_000;
/**
 * A shed refusal is a synchronous check: its p99 may exceed the p99 of a health check taken at
 * the same time (the same router, client and loaded machine) by at most this.
 */
const FAST_REFUSAL_MS = 250;
/** Growth of the router's RSS over its unloaded level that counts as unbounded here. */
const RSS_GROWTH_LIMIT_MB = 200;
const MAX_LOG_LINES = 500_000;

const ttfts = (rs: ChaosRecord[]) =>
  rs.filter((r) => r.stream && r.outcome.kind === 'completed' && r.ttftMs !== undefined).map((r) => r.ttftMs!);

export const overload: Scenario = {
  name: NAME,
  description: 'open-loop load at 3x measured capacity, lanes mixed; then load drops to a third of capacity',
  async run(opts: ScenarioOptions): Promise<ScenarioResult> {
    for (const t of TENANTS) chaosAudit.addSecret(`${t.name} api key`, t.apiKey!);
    const crashes = new CrashWatch();
    let stack: Stack | undefined;
    try {
      stack = await startStack({
        sims: [{ id: 'sim-a', args: ['--max-num-seqs', String(MAX_NUM_SEQS), '--decode-step-ms', '25', '--decode-step-ms-per-seq', '0'] }],
        agents: [{ id: 'node-a', sim: 'sim-a', engine: { maxNumSeqs: MAX_NUM_SEQS } }],
        withControlPlane: false,
        logLevel: 'info',
        maxLogLines: MAX_LOG_LINES,
        router: {
          requestTimeoutMs: 10_000,
          // Both tenants may ask for any lane; the header picks it (auth is off: no key ids to cap by).
          lanes: { defaultMaxLane: 'critical' },
          admission: { lanes: { critical: { queueTimeoutMs: 8_000 }, standard: { queueTimeoutMs: 3_000 }, sheddable: {} } },
          // A queueing overload is not a node failure (docs/architecture.md, known gaps).
          fallback: { breaker: { nodes: false } },
        },
      });
      crashes.watchStack(stack);
      const s = stack;
      await waitServing(s.routerUrl, DEFAULT_MODEL, 30_000, TENANTS[0]!.apiKey);
      const timing = phases(opts, { baseMs: 3_000, faultMs: 12_000, afterMs: 6_000 }, 5);
      const common = {
        targets: [s.routerUrl],
        model: DEFAULT_MODEL,
        tenants: TENANTS,
        maxTokens: MAX_TOKENS,
        deadlineMs: 10_000,
        streamShare: 0.5,
      };
      const rss = sampleRss(s.router.child.pid!, 100);

      // 1. Unloaded: two closed-loop critical clients measure TTFT and how long a request holds a slot.
      const base = await startLoad({ ...common, lanes: ['critical'], workers: 2, durationMs: timing.baseMs }).done;
      const done = base.filter((r) => r.outcome.kind === 'completed');
      const serviceMs = done.reduce((a, r) => a + (r.endedAt - r.startedAt), 0) / Math.max(1, done.length);
      const capacityPerSec = (MAX_NUM_SEQS * 1000) / serviceMs;
      const unloadedTtftP99 = quantile(ttfts(base), 0.99);
      const rssUnloaded = rss.current();
      const overloadMark = rss.elapsed();

      // 2. 3x capacity, then 3. a third of capacity; the queue must drain after the drop.
      const heavy = startLoad({ ...common, lanes: MIX, ratePerSec: 3 * capacityPerSec, durationMs: timing.faultMs });
      // The yardstick for "fast": what a trivial request to the same router takes meanwhile.
      const healthz: number[] = [];
      const until = Date.now() + timing.faultMs;
      while (Date.now() < until) {
        const t = Date.now();
        await fetch(`${s.routerUrl}/healthz`)
          .then((r) => r.arrayBuffer())
          .catch(() => undefined);
        healthz.push(Date.now() - t);
        await sleep(50);
      }
      const dropAt = Date.now();
      const light = startLoad({ ...common, lanes: MIX, ratePerSec: capacityPerSec / 3, durationMs: timing.afterMs });
      let drainMs: number | null = null;
      let peakQueue = 0;
      while (Date.now() - dropAt < timing.afterMs + 10_000) {
        const depth = sumOf(await scrape(s.routerUrl), 'router_queue_depth');
        peakQueue = Math.max(peakQueue, depth);
        if (depth === 0) {
          drainMs = Date.now() - dropAt;
          break;
        }
        await sleep(100);
      }
      const heavyRecords = await heavy.done;
      const lightRecords = await light.done;
      rss.stop();
      // Idle now: nothing may be left queued or in flight.
      await sleep(500);
      const after = await scrape(s.routerUrl);
      const leftQueued = sumOf(after, 'router_queue_depth');
      const leftInFlight = sumOf(after, 'router_node_in_flight_depth');
      const refusals = sumOf(after, 'router_refusals_total');
      // The router's own view of the critical lane's wait for a slot (client-side TTFT adds this machine's noise).
      const criticalQueueWaitP99 = histogramQuantile(after, 'router_queue_wait_seconds', 0.99, { lane: 'critical' });
      const criticalQueueWaitP50 = histogramQuantile(after, 'router_queue_wait_seconds', 0.5, { lane: 'critical' });

      const records = [...base, ...heavyRecords, ...lightRecords];
      const result = summarise(NAME, records, dropAt);
      const errLatency = (code: string) =>
        heavyRecords.filter((r) => r.outcome.kind === 'typed_error' && r.outcome.code === code).map((r) => r.endedAt - r.startedAt);
      const critical = heavyRecords.filter((r) => r.lane === 'critical');
      const criticalTtftP99 = quantile(ttfts(critical), 0.99);
      const shedP99 = quantile(errLatency('lane_shed'), 0.99);
      const violations: string[] = [];
      if (critical.some((r) => r.outcome.kind !== 'completed'))
        violations.push(
          `critical lane: ${critical.filter((r) => r.outcome.kind !== 'completed').length} of ${critical.length} requests not completed under overload`,
        );
      const healthzP99 = quantile(healthz, 0.99);
      const sloMs = unloadedTtftP99 + healthzP99 + CRITICAL_SLO_SLACK_MS;
      if (criticalTtftP99 > sloMs)
        violations.push(
          `critical p99 TTFT ${criticalTtftP99} ms > SLO ${sloMs} ms (unloaded p99 ${unloadedTtftP99} + health check p99 ${healthzP99} + ${CRITICAL_SLO_SLACK_MS})`,
        );
      if (errLatency('lane_shed').length === 0) violations.push('no request was shed: the load did not overload the pool');
      if (shedP99 > healthzP99 + FAST_REFUSAL_MS)
        violations.push(`shed refusals p99 ${shedP99} ms > health check p99 ${healthzP99} ms + ${FAST_REFUSAL_MS} ms`);
      const rssGrowth = mb(rss.peakSince(overloadMark) - rssUnloaded);
      if (rssGrowth > RSS_GROWTH_LIMIT_MB) violations.push(`router RSS grew ${rssGrowth} MB under overload (limit ${RSS_GROWTH_LIMIT_MB})`);
      if (drainMs === null) violations.push('the lane queues did not drain after the load dropped');
      if (leftQueued !== 0 || leftInFlight !== 0)
        violations.push(`idle router still shows ${leftQueued} queued and ${leftInFlight} in flight`);
      return {
        ...result,
        extra: {
          ...result.extra,
          capacityPerSec: Math.round(capacityPerSec * 10) / 10,
          offeredPerSec: Math.round(3 * capacityPerSec * 10) / 10,
          overloadRequests: heavyRecords.length,
          unloadedCriticalTtftP99Ms: unloadedTtftP99,
          overloadCriticalTtftP99Ms: criticalTtftP99,
          criticalSloMs: sloMs,
          criticalQueueWaitP50S: `<= ${criticalQueueWaitP50}`,
          criticalQueueWaitP99S: `<= ${criticalQueueWaitP99}`,
          unloadedCriticalTtftP50Ms: quantile(ttfts(base), 0.5),
          overloadCriticalTtftP50Ms: quantile(ttfts(critical), 0.5),
          overloadStandardTtftP99Ms: quantile(ttfts(heavyRecords.filter((r) => r.lane === 'standard')), 0.99),
          criticalCompleted: `${critical.filter((r) => r.outcome.kind === 'completed').length}/${critical.length}`,
          shedRefusalP50Ms: quantile(errLatency('lane_shed'), 0.5),
          shedRefusalP99Ms: shedP99,
          healthzP99MsMeanwhile: healthzP99,
          shedRefusals: errLatency('lane_shed').length,
          queueTimeoutP99Ms: quantile(errLatency('lane_queue_timeout'), 0.99),
          routerRefusalsTotal: refusals,
          peakQueueDepthAfterDrop: peakQueue,
          queueDrainMs: drainMs ?? 'never',
          routerRssUnloadedMb: mb(rssUnloaded),
          routerRssPeakMb: mb(rss.peakSince(overloadMark)),
          routerRssGrowthMb: rssGrowth,
        },
        crashed: crashes.close(),
        ...(violations.length ? { violations } : {}),
      };
    } finally {
      crashes.close();
      if (stack) {
        await auditStack(NAME, stack, MAX_LOG_LINES);
        await stack.stop();
      }
    }
  },
};
