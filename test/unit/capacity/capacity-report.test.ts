// The capacity report from synthetic history: demand statistics, per-node capacity (measured at
// saturation, or extrapolated with Little's law), the slow node, sick-node costs, nodes needed,
// what-ifs, and the concurrency fallback without counters.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { buildCapacityReport, fitLatency, parseDuration, percentile, type ReportParams } from '../../../control-plane/capacity/report.ts';
import type { NodeSample } from '../../../control-plane/capacity/types.ts';
import { sample } from './capacity-fixtures.ts';

const params: ReportParams = { windowMs: 600_000, growth: 1, sloTtftSeconds: 0.5, slotMs: 10_000, whatIf: [] };

function run(nodes: Record<string, (i: number) => Partial<NodeSample>>, slots = 30) {
  const raw: NodeSample[] = [];
  for (let i = 0; i < slots; i++) for (const [id, f] of Object.entries(nodes)) raw.push(sample(i * 10_000, id, f(i)));
  const latest = new Map<string, NodeSample>();
  for (const s of raw) latest.set(s.node, s);
  return { raw, latest, now: slots * 10_000 };
}

describe('capacity report', () => {
  it('helpers: percentile (nearest rank), durations, latency fit', () => {
    assert.equal(percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 95), 10);
    assert.equal(percentile([1, 2, 3, 4], 50), 2);
    assert.equal(parseDuration('15m'), 900_000);
    assert.equal(parseDuration('2h'), 7_200_000);
    assert.equal(parseDuration('x'), undefined);
    const f = fitLatency([
      [1, 1.1],
      [2, 1.2],
      [4, 1.4],
      [8, 1.8],
    ])!;
    assert.ok(Math.abs(f.a - 1) < 1e-9 && Math.abs(f.b - 0.1) < 1e-9);
  });

  it('measures saturated nodes, finds the slow one, sizes the pool', () => {
    // Three nodes: a and b saturate at 4 req/s within the SLO; c (slow) at 2. First half low load.
    const node = (capacity: number) => (i: number) =>
      i < 15
        ? { requestsPerSecond: capacity / 4, running: 1, waiting: 0, ttftSeconds: 0.1 }
        : { requestsPerSecond: capacity, running: 8, waiting: 2, ttftSeconds: 0.4 };
    const input = run({ a: node(4), b: node(4), c: node(2) });
    const r = buildCapacityReport({ ...input, buckets: [] }, { ...params, growth: 2, whatIf: [{ delta: 2 }, { delta: -1 }] });
    const p = r.pools[0]!;
    assert.equal(p.unit, 'requests/s');
    assert.equal(p.demand.peak, 10);
    assert.equal(p.demand.p95, 10);
    assert.equal(p.demand.mean, 6.25);
    assert.equal(p.demand.outputTokensPerSecond!.p95, 60);
    const a = p.nodes.find((n) => n.node === 'a')!;
    assert.equal(a.capacity, 4);
    assert.equal(a.capacityBasis, 'measured-at-saturation');
    assert.equal(p.referenceNodeCapacity, 4);
    assert.deepEqual(p.slowNodes, ['c']);
    assert.equal(p.nodes.find((n) => n.node === 'c')!.relativeCapacity, 0.5);
    assert.deepEqual(p.costs, [{ node: 'c', why: ['slow: 50% of the reference node'], capacityLost: 2 }]);
    assert.equal(p.capacity.usable, 10);
    assert.deepEqual(p.headroom, { absolute: 0, ratio: 0 });
    assert.equal(p.nodesNeeded!.forP95, 5); // 10 x 2 / 4
    assert.equal(p.nodesNeeded!.toAdd, 3); // (20 - 10) / 4 -> 3 reference nodes
    assert.deepEqual(
      p.whatIf.map((w) => [w.usable, w.meetsP95TimesGrowth]),
      [
        [18, false],
        [6, false],
      ],
    );
    assert.equal(p.series.length, 30);
  });

  it('an SLO breach caps capacity at what met the SLO; unhealthy nodes cost their capacity', () => {
    const input = run({
      a: (i) => (i < 20 ? { requestsPerSecond: 3, ttftSeconds: 0.3, waiting: 1 } : { requestsPerSecond: 5, ttftSeconds: 2 }),
      b: (i) => ({
        requestsPerSecond: 3,
        ttftSeconds: 0.3,
        waiting: 1,
        ...(i === 29
          ? {
              gpuVerdict: 'UNHEALTHY' as const,
              ready: false,
              gpus: [{ index: 0, uuid: 'u', name: 'A10G', verdict: 'UNHEALTHY' as const, reasons: ['ecc_uncorrected_rising'] }],
            }
          : {}),
      }),
    });
    const p = buildCapacityReport({ ...input, buckets: [] }, params).pools[0]!;
    const a = p.nodes.find((n) => n.node === 'a')!;
    assert.equal(a.capacity, 3);
    assert.equal(a.observed.slotsOverSlo, 10);
    const cost = p.costs.find((c) => c.node === 'b')!;
    assert.deepEqual(cost.why, ['not ready', 'GPU unhealthy (ecc_uncorrected_rising)']);
    assert.equal(cost.capacityLost, 3);
    assert.equal(p.capacity.usable, 3);
  });

  it("extrapolates an unsaturated node with Little's law to max_num_seqs", () => {
    // latency = 1 + 0.1 x running; rps = running / latency; max 8 -> capacity 8 / 1.8
    const input = run({
      a: (i) => {
        const c = 1 + (i % 4);
        return { running: c, requestsPerSecond: c / (1 + 0.1 * c), maxNumSeqs: 8, ttftSeconds: 0.1 };
      },
    });
    const n = buildCapacityReport({ ...input, buckets: [] }, params).pools[0]!.nodes[0]!;
    assert.equal(n.capacityBasis, 'extrapolated-littles-law');
    assert.ok(Math.abs(n.capacity! - 8 / 1.8) < 0.01, String(n.capacity));
  });

  it('without counters, demand and capacity are concurrent sequences', () => {
    const input = run({
      a: () => ({
        requestsPerSecond: undefined,
        promptTokensPerSecond: undefined,
        generationTokensPerSecond: undefined,
        running: 6,
        waiting: 2,
        maxNumSeqs: 8,
      }),
    });
    const r = buildCapacityReport({ ...input, buckets: [] }, { ...params, growth: 1.5 });
    const p = r.pools[0]!;
    assert.equal(p.unit, 'concurrent sequences');
    assert.equal(p.demand.p95, 8);
    assert.equal(p.nodes[0]!.capacity, 8);
    assert.equal(p.nodesNeeded!.forP95, 2);
    assert.ok(r.notes.some((n) => n.includes('concurrent sequences')));
  });
});
