// Scenario 2: GPU faults under load. Two nodes, each agent reading its own fake nvidia-smi; node
// A's GPU turns unhealthy mid-run (an uncorrected ECC error), later its nvidia-smi hangs (what a
// GPU fallen off the bus does). Promise: no request lost, and once the agent has said UNHEALTHY
// (plus one status interval) no new request is routed to node A.
import { startStack, DEFAULT_MODEL, waitFor, type Stack } from '../../helpers/stack.ts';
import { createFakeNvidiaSmi, type FakeNvidiaSmi, type FakeNvidiaSmiFault } from '../../sim/nvidia-smi/control.ts';
import { CrashWatch, modelNodes, phases, runPhaseRecords, waitServing } from '../harness.ts';
import { mergeResults, neverRecovered } from '../load.ts';
import { auditStack } from '../secrets.ts';
import type { Scenario, ScenarioOptions, ScenarioResult } from '../types.ts';

const ROUTER_TIMEOUT_MS = 6_000;
/** Every line the processes write is kept for the leak audit (secrets.ts). */
const MAX_LOG_LINES = 50_000;
const CLIENT_MARGIN_MS = 8_000;
/**
 * The agent pushes a status change at once; the router must apply it within this. Generous: on a
 * 2-core machine shared by several test runs the agent's push and the router's read lag seconds.
 */
const REACT_MS = 3_000;

async function gpuVerdict(stack: Stack, agent: string): Promise<string> {
  const res = await fetch(`${String(stack.agents.get(agent)!.info.http)}/v1/status`);
  return ((await res.json()) as { gpuVerdict: string }).gpuVerdict;
}

export const gpuFaults: Scenario = {
  name: 'gpu-faults',
  description: 'a GPU turning unhealthy mid-run (uncorrected ECC), and nvidia-smi hanging, on one of two nodes',
  async run(opts: ScenarioOptions): Promise<ScenarioResult> {
    const crashes = new CrashWatch();
    const smi: FakeNvidiaSmi[] = [];
    let stack: Stack | undefined;
    try {
      const smiA = createFakeNvidiaSmi({ fixture: 'a10g-driver515.105.01.xml' });
      const smiB = createFakeNvidiaSmi({ fixture: 'a10g-driver515.105.01.xml' });
      smi.push(smiA, smiB);
      // Fast polls; a hung nvidia-smi is given up after 1 s, and two failures in a row mean unhealthy.
      const gpu = (f: FakeNvidiaSmi) => ({
        gpu: {
          enabled: true,
          nvidiaSmiPath: f.path,
          queryIntervalMs: 200,
          xmlIntervalMs: 200,
          timeoutMs: 1_000,
          failuresBeforeUnhealthy: 2,
          thresholds: { risingHoldMs: 60_000 },
        },
        httpListen: { host: '127.0.0.1', port: 0 },
      });
      const simArgs = ['--max-num-seqs', '64', '--decode-step-ms', '25', '--decode-step-ms-per-seq', '0'];
      stack = await startStack({
        sims: [
          { id: 'sim-a', args: simArgs },
          { id: 'sim-b', args: simArgs },
        ],
        agents: [
          { id: 'node-a', sim: 'sim-a', extra: gpu(smiA), env: smiA.env },
          { id: 'node-b', sim: 'sim-b', extra: gpu(smiB), env: smiB.env },
        ],
        router: { requestTimeoutMs: ROUTER_TIMEOUT_MS },
        maxLogLines: MAX_LOG_LINES,
      });
      crashes.watchStack(stack);
      const s = stack;
      await waitServing(s.routerUrl, DEFAULT_MODEL);
      await waitFor(async () => (await modelNodes(s.routerUrl, DEFAULT_MODEL)) >= 2, 30_000, 200);
      const load = {
        targets: [s.routerUrl],
        model: DEFAULT_MODEL,
        ratePerSec: 6,
        deadlineMs: ROUTER_TIMEOUT_MS,
        deadlineMarginMs: CLIENT_MARGIN_MS,
        tenants: [{ name: 'team-a' }, { name: 'team-b' }],
        lanes: ['critical', 'standard'] as ('critical' | 'standard')[],
        maxTokens: 16,
      };
      const timing = phases(opts, { baseMs: 2_000, faultMs: 5_000, afterMs: 5_000 });

      const phase = async (name: string, fault: FakeNvidiaSmiFault): Promise<ScenarioResult> => {
        let injectedAt = 0;
        let sickAt = 0;
        let clearedAt = 0;
        let healedAt = 0;
        let watching = true;
        // Samples the agent's verdict while the fault lasts: when it turned, and when it came back.
        const watcher = (async () => {
          while (watching) {
            const v = await gpuVerdict(s, 'node-a').catch(() => 'unreachable');
            if (injectedAt && !sickAt && v === 'UNHEALTHY') sickAt = Date.now();
            await new Promise((r) => setTimeout(r, 100));
          }
        })();
        const { result: r, records } = await runPhaseRecords({
          name,
          load,
          timing,
          stack: s,
          inject: async () => {
            injectedAt = Date.now();
            smiA.setFault(fault);
          },
          clear: async () => {
            clearedAt = Date.now();
            smiA.setFault(null);
            await waitFor(async () => (await gpuVerdict(s, 'node-a')) !== 'UNHEALTHY', 20_000, 100).catch(() => undefined);
            healedAt = Date.now();
          },
        });
        watching = false;
        await watcher;
        const violations: string[] = [];
        if (!sickAt) violations.push(`${name}: the agent never said UNHEALTHY`);
        // Requests served by node A after the agent said UNHEALTHY and before the fault was
        // cleared (after that the agent may say HEALTHY again before our poll sees it): the last
        // one's start, from the verdict, is how long the router took to stop routing there.
        const toSick = records.filter((x) => sickAt && x.startedAt > sickAt && x.startedAt < clearedAt && x.backend === 'node:node-a');
        const routerReactMs = toSick.length ? Math.max(...toSick.map((x) => x.startedAt)) - sickAt : 0;
        const routedToSick = toSick.filter((x) => x.startedAt > sickAt + REACT_MS).length;
        if (routedToSick)
          violations.push(
            `${name}: ${routedToSick} requests routed to node-a more than ${REACT_MS} ms after its GPU was unhealthy (last ${routerReactMs} ms after)`,
          );
        const servedByA = records.filter((x) => x.startedAt > healedAt + REACT_MS && x.backend === 'node:node-a').length;
        return {
          ...r,
          extra: {
            ...r.extra,
            detectMs: sickAt ? sickAt - injectedAt : 'never',
            routerReactMs,
            routedToSick,
            servedByAAfterRecovery: servedByA,
          },
          ...(violations.length ? { violations } : {}),
        };
      };

      const parts = [await phase('gpu-ecc-unhealthy', 'ecc_uncorrected'), await phase('nvidia-smi-hang', 'hang')];
      const merged = mergeResults('gpu-faults', parts);
      const violations = [...parts.flatMap((p) => p.violations ?? []), ...neverRecovered(parts)];
      return { ...merged, crashed: crashes.close(), ...(violations.length ? { violations } : {}) };
    } finally {
      crashes.close();
      if (stack) await auditStack('gpu-faults', stack, MAX_LOG_LINES);
      await stack?.stop();
      for (const f of smi) f.cleanup();
    }
  },
};
