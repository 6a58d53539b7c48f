// The 4-node policy comparison on real processes over loopback (test/helpers/stack.ts: vLLM
// simulators of speeds 1, 1, 0.6, 0.3 with tens-of-ms steps, node agents, the router), and the
// same requests through the virtual-time cluster with the same engine settings: the two should
// rank the policies the same and agree on goodput.
// Outputs follow the simulator's own seeded plan (planOutput) capped by max_tokens from the
// trace, so the virtual twin knows every request's exact prompt and output length.
import { startStack, type Stack } from '../../helpers/stack.ts';
import { CHARS_PER_TOKEN, estimateTokens, planOutput } from '../../sim/vllm/text.ts';
import type { EngineConfig } from '../../sim/vllm/batching.ts';
import { buildProfile, type ProfileConfig } from '../../../router/scheduling/plugins.ts';
import { simulate, type SimRequest } from './virtual-cluster.ts';
import { rng, type TraceRow } from './workloads.ts';

export const LIVE_ENGINE: Partial<Omit<EngineConfig, 'speed'>> = {
  maxNumSeqs: 8,
  kvCacheTokens: 65_536,
  blockSize: 16,
  prefillMsPerToken: 0.05,
  decodeStepMs: 30,
  decodeStepMsPerSeq: 1,
  slowdown: 1,
};
const SPEEDS = [1, 1, 0.6, 0.3];
const SIM_SEED = 0;
const MAX_PROMPT = 2_000;
const MAX_OUTPUT = 64;

export interface LiveRequest {
  at: number;
  prompt: string;
  promptTokens: number;
  maxTokens: number;
  outputTokens: number;
}

/** Poisson arrivals at `rate`/s; prompt lengths from the trace, outputs capped to the simulator's plan. */
export function liveWorkload(rows: TraceRow[], count: number, rate: number, seed: number): LiveRequest[] {
  const rand = rng(seed * 7 + 3);
  let t = 0;
  return Array.from({ length: count }, (_, i) => {
    t += (-Math.log(1 - rand()) / rate) * 1000;
    const row = rows[Math.floor(rand() * rows.length)]!;
    const tokens = Math.min(row.prompt, MAX_PROMPT);
    const head = `r${seed}-${i} `;
    const prompt = head + 'x'.repeat(Math.max(0, tokens * CHARS_PER_TOKEN - head.length));
    const maxTokens = Math.min(row.output, MAX_OUTPUT);
    const plan = planOutput(SIM_SEED, prompt);
    return { at: t, prompt, promptTokens: estimateTokens(prompt), maxTokens, outputTokens: Math.min(plan.naturalTokens, maxTokens) };
  });
}

export interface RunSummary {
  ttftP50: number;
  ttftP99: number;
  goodput: number;
  completed: number;
}

function summarise(ttfts: (number | undefined)[], spanMs: number, sloMs: number): RunSummary {
  const done = ttfts.filter((x): x is number => x !== undefined).sort((a, b) => a - b);
  const pct = (p: number) => done[Math.min(done.length - 1, Math.floor((p / 100) * done.length))] ?? NaN;
  return { ttftP50: pct(50), ttftP99: pct(99), goodput: (done.filter((x) => x <= sloMs).length / spanMs) * 1000, completed: done.length };
}

/** The same requests in virtual time. */
export function virtualTwin(reqs: LiveRequest[], policy: ProfileConfig, sloMs: number, seed: number): RunSummary {
  const sim: SimRequest[] = reqs.map((r, i) => ({
    id: i,
    at: r.at,
    promptTokens: r.promptTokens,
    outputTokens: r.outputTokens,
    lane: 'standard',
    tenant: 't',
    engineHashes: Array.from({ length: Math.floor(r.promptTokens / 16) }, (_, b) => `u${i}:${b}`),
    routerHashes: [],
  }));
  let a = seed >>> 0;
  const random = () => (a = (a * 1664525 + 1013904223) >>> 0) / 4294967296;
  const { results } = simulate(sim, {
    speeds: SPEEDS,
    profile: buildProfile(policy, 2_000, random),
    statusMs: 250,
    engine: LIVE_ENGINE,
    // as the live router today: no slot times, no in-flight count at status time
    signals: { serviceTimes: false, inFlightAtStatus: false },
  });
  return summarise(
    results.map((r) => r.ttftMs),
    reqs.at(-1)!.at - reqs[0]!.at,
    sloMs,
  );
}

async function one(url: string, r: LiveRequest, t0: number): Promise<number | undefined> {
  const start = t0 + r.at;
  const res = await fetch(`${url}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'sim-model', prompt: r.prompt, max_tokens: r.maxTokens, stream: true }),
  });
  if (!res.ok || !res.body) {
    await res.body?.cancel();
    return undefined;
  }
  let ttft: number | undefined;
  const reader = res.body.getReader();
  for (;;) {
    const { done } = await reader.read();
    if (done) break;
    ttft ??= performance.now() - start;
  }
  return ttft;
}

/** Replays `reqs` against the live router on their schedule; TTFT measured from each scheduled arrival. */
export async function replay(stack: Stack, reqs: LiveRequest[], sloMs: number): Promise<RunSummary> {
  const t0 = performance.now() + 200;
  const ttfts = await Promise.all(
    reqs.map(async (r) => {
      const wait = t0 + r.at - performance.now();
      if (wait > 0) await new Promise((res) => setTimeout(res, wait));
      try {
        return await one(stack.routerUrl, r, t0);
      } catch {
        return undefined;
      }
    }),
  );
  return summarise(ttfts, reqs.at(-1)!.at - reqs[0]!.at, sloMs);
}

/** A stack for one policy: 4 simulators, 4 agents, a router with that scheduling profile and no admission. */
export function startLiveStack(policy: ProfileConfig): Promise<Stack> {
  const e = LIVE_ENGINE;
  return startStack({
    withControlPlane: false,
    sims: SPEEDS.map((speed, i) => ({
      id: `sim${i}`,
      args: [
        '--speed',
        String(speed),
        '--max-num-seqs',
        String(e.maxNumSeqs),
        '--kv-cache-tokens',
        String(e.kvCacheTokens),
        '--decode-step-ms',
        String(e.decodeStepMs),
        '--decode-step-ms-per-seq',
        String(e.decodeStepMsPerSeq),
        '--prefill-ms-per-token',
        String(e.prefillMsPerToken),
        '--seed',
        String(SIM_SEED),
      ],
    })),
    agents: SPEEDS.map((_, i) => ({ id: `node${i}`, sim: `sim${i}` })),
    router: {
      admission: { enabled: false },
      scheduling: { scorers: policy.scorers, picker: policy.picker },
    },
  });
}
