// Scenario 1: node faults under load. Two simulated vLLM nodes behind one router; node A gets,
// one at a time: its agent SIGKILLed mid-stream and restarted, its engine hanging, its engine
// slowed to a tenth of its speed (brownout), its engine answering 5xx. Node B stays healthy.
import { startStack, setSimFaults, DEFAULT_MODEL, waitFor, type Stack } from '../../helpers/stack.ts';
import { CrashWatch, modelNodes, phases, runPhase, waitServing } from '../harness.ts';
import { mergeResults, neverRecovered } from '../load.ts';
import { auditStack } from '../secrets.ts';
import type { Scenario, ScenarioOptions, ScenarioResult } from '../types.ts';

/** The router answers within this (a typed timeout at worst). */
const ROUTER_TIMEOUT_MS = 6_000;
/** Every line the processes write is kept for the leak audit (secrets.ts). */
const MAX_LOG_LINES = 50_000;
/** The client gives up this much later: room for a loaded 2-core CI machine to schedule it. */
const CLIENT_MARGIN_MS = 8_000;

export const agentEngineFaults: Scenario = {
  name: 'agent-engine-faults',
  description: 'agent SIGKILL mid-stream + restart, engine hang, 10x brownout, engine 5xx, on one of two nodes',
  async run(opts: ScenarioOptions): Promise<ScenarioResult> {
    const crashes = new CrashWatch();
    // Streams of ~16 tokens x 25 ms: long enough to be cut mid-stream by the kill.
    const simArgs = ['--max-num-seqs', '64', '--decode-step-ms', '25', '--decode-step-ms-per-seq', '0'];
    let stack: Stack | undefined;
    try {
      stack = await startStack({
        sims: [
          { id: 'sim-a', args: simArgs },
          { id: 'sim-b', args: simArgs },
        ],
        agents: [
          { id: 'node-a', sim: 'sim-a' },
          { id: 'node-b', sim: 'sim-b' },
        ],
        router: { requestTimeoutMs: ROUTER_TIMEOUT_MS },
        maxLogLines: MAX_LOG_LINES,
      });
      crashes.watchStack(stack);
      const s = stack;
      await waitServing(s.routerUrl, DEFAULT_MODEL);
      // Both nodes in routing before the first fault.
      await waitFor(async () => (await modelNodes(s.routerUrl, DEFAULT_MODEL)) >= 2, 20_000, 200);
      const load = {
        targets: [s.routerUrl],
        model: DEFAULT_MODEL,
        ratePerSec: 6,
        deadlineMs: ROUTER_TIMEOUT_MS,
        deadlineMarginMs: CLIENT_MARGIN_MS,
        tenants: [{ name: 'team-a' }, { name: 'team-b' }],
        lanes: ['critical', 'standard'] as const,
        maxTokens: 16,
      };
      const timing = phases(opts, { baseMs: 2_000, faultMs: 3_000, afterMs: 5_000 });
      const simA = s.sims.get('sim-a')!.url;
      const parts: ScenarioResult[] = [];
      let warmups = 0;

      parts.push(
        await runPhase({
          name: 'agent-sigkill',
          load: { ...load, lanes: [...load.lanes] },
          timing,
          stack: s,
          inject: async () => {
            const a = s.agents.get('node-a')!;
            crashes.expect(a);
            a.kill('SIGKILL');
            await a.exited;
          },
          clear: async () => {
            crashes.watch(await s.startAgent('node-a'));
            warmups += 1;
          },
          extraGenerations: () => warmups,
        }),
      );
      parts.push(
        await runPhase({
          name: 'engine-hang',
          load: { ...load, lanes: [...load.lanes] },
          timing,
          stack: s,
          inject: () => setSimFaults(simA, { hang: true }),
          clear: () => setSimFaults(simA, { hang: false }),
        }),
      );
      parts.push(
        await runPhase({
          name: 'engine-brownout',
          load: { ...load, lanes: [...load.lanes] },
          timing,
          stack: s,
          inject: () => setSimFaults(simA, { slowdown: 10 }),
          clear: () => setSimFaults(simA, { slowdown: 1 }),
        }),
      );
      parts.push(
        await runPhase({
          name: 'engine-5xx',
          load: { ...load, lanes: [...load.lanes] },
          timing,
          stack: s,
          inject: () => setSimFaults(simA, { http5xx: true }),
          clear: () => setSimFaults(simA, { http5xx: false }),
        }),
      );
      const violations = neverRecovered(parts);
      return { ...mergeResults('agent-engine-faults', parts), crashed: crashes.close(), ...(violations.length ? { violations } : {}) };
    } finally {
      crashes.close();
      if (stack) await auditStack('agent-engine-faults', stack, MAX_LOG_LINES);
      await stack?.stop();
    }
  },
};
