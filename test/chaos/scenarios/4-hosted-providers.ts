// Scenario 4: hosted providers misbehave under load. A model served only by a fallback chain
// (OpenAI-compatible first, Anthropic second; the simulators of test/sim/providers) while the
// OpenAI one (a) answers every call 429 with Retry-After, (b) answers 5xx, (c) sends its first
// byte too late; and (d) both fail at once, where every client must still get a typed error.
// Beside the load's counts it reports who answered, how many calls the 429 storm cost the
// provider (Retry-After pauses it router-wide: calls must not scale with requests) and how long
// the preferred provider took to serve again once its fault ended.
import { startStack, type Stack } from '../../helpers/stack.ts';
import { sleep } from '../../../common/process.ts';
import { CrashWatch, phases, waitServing } from '../harness.ts';
import { chaosAudit, auditStack } from '../secrets.ts';
import { mergeResults, startLoad, summarise, type ChaosRecord, type LoadOptions, type LoadTenant } from '../load.ts';
import type { Scenario, ScenarioOptions, ScenarioResult } from '../types.ts';

const NAME = 'hosted-providers';
const MODEL = 'chaos-hosted';
const OPENAI_KEY = 'sk-chaos-openai-7d41c2e98ab3';
const ANTHROPIC_KEY = 'sk-ant-chaos-0b5fe8d2c117';
const TENANTS: LoadTenant[] = [
  { name: 'tenant-a', apiKey: 'sk-chaos-tenant-a-51c0de7f' },
  { name: 'tenant-b', apiKey: 'sk-chaos-tenant-b-9e2ab44d' },
];
const RETRY_AFTER_S = 1;
const FIRST_BYTE_TIMEOUT_MS = 1_000;
const BREAKER_OPEN_MS = 1_500;
const WORKERS = 6;
const MAX_LOG_LINES = 500_000;

type SimRequest = { at: number; status: number };

async function setFaults(stack: Stack, id: string, faults: Record<string, unknown>): Promise<void> {
  const res = await fetch(`${stack.providerSims.get(id)!.url}/sim/faults`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(faults),
  });
  if (!res.ok) throw new Error(`${id} faults: ${res.status}`);
}

async function simRequests(stack: Stack, id: string): Promise<SimRequest[]> {
  const res = await fetch(`${stack.providerSims.get(id)!.url}/sim/state`);
  return ((await res.json()) as { requests: SimRequest[] }).requests;
}

/** Answers by the provider part of x-backend (openai, anthropic). */
function byBackend(records: ChaosRecord[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of records) {
    const b = r.backend?.split(':')[0];
    if (b && r.outcome.kind === 'completed') out[b] = (out[b] ?? 0) + 1;
  }
  return out;
}

interface Phase {
  name: string;
  inject(): Promise<void>;
  /** What the phase promises beyond no lost/duplicated answers; returns violations. */
  check(ctx: { result: ScenarioResult; records: ChaosRecord[]; faultAt: number; clearedAt: number; openai: SimRequest[] }): string[];
  extra?(ctx: { records: ChaosRecord[]; faultAt: number; clearedAt: number; openai: SimRequest[] }): Record<string, number | string>;
}

export const hostedProviders: Scenario = {
  name: NAME,
  description:
    'fallback chain (OpenAI-compatible, then Anthropic) under a 429 storm with Retry-After, 5xx, a slow first byte, and both providers failing',
  async run(opts: ScenarioOptions): Promise<ScenarioResult> {
    chaosAudit.addSecret('openai provider key', OPENAI_KEY);
    chaosAudit.addSecret('anthropic provider key', ANTHROPIC_KEY);
    for (const t of TENANTS) chaosAudit.addSecret(`${t.name} api key`, t.apiKey!);
    const crashes = new CrashWatch();
    let stack: Stack | undefined;
    try {
      stack = await startStack({
        sims: [],
        agents: [],
        withControlPlane: false,
        providerSims: [
          { id: 'openai-sim', apiKey: OPENAI_KEY },
          { id: 'anthropic-sim', apiKey: ANTHROPIC_KEY },
        ],
        routerEnv: { CHAOS_OPENAI_KEY: OPENAI_KEY, CHAOS_ANTHROPIC_KEY: ANTHROPIC_KEY },
        logLevel: 'info',
        maxLogLines: MAX_LOG_LINES,
        router: ({ providerSims }) => ({
          requestTimeoutMs: 8_000,
          // Auth is off: no key ids to cap by (lane caps name key ids, never raw keys), so the header decides.
          lanes: { defaultMaxLane: 'critical' },
          fallback: {
            providers: {
              openai: {
                kind: 'openai',
                baseUrl: `${providerSims.get('openai-sim')!.url}/v1`,
                apiKeyEnv: 'CHAOS_OPENAI_KEY',
                firstByteTimeoutMs: FIRST_BYTE_TIMEOUT_MS,
              },
              anthropic: {
                kind: 'anthropic',
                baseUrl: providerSims.get('anthropic-sim')!.url,
                apiKeyEnv: 'CHAOS_ANTHROPIC_KEY',
                firstByteTimeoutMs: FIRST_BYTE_TIMEOUT_MS,
              },
            },
            chains: { [MODEL]: ['openai:gpt-4o-mini', 'anthropic:claude-haiku-4-5'] },
            breaker: {
              windowMs: 5_000,
              minRequests: 5,
              errorRate: 0.5,
              openMs: BREAKER_OPEN_MS,
              halfOpenProbes: 1,
              closeAfterSuccesses: 2,
            },
            retry: { maxAttempts: 2, baseDelayMs: 20, maxDelayMs: 200, maxPauseWaitMs: 3_000 },
          },
        }),
      });
      crashes.watchStack(stack);
      const s = stack;
      await waitServing(s.routerUrl, MODEL, 30_000, TENANTS[1]!.apiKey);
      const timing = phases(opts, { baseMs: 2_000, faultMs: 4_000, afterMs: 4_000 }, 6);
      const load: Omit<LoadOptions, 'durationMs'> = {
        targets: [s.routerUrl],
        model: MODEL,
        tenants: TENANTS,
        lanes: ['critical', 'standard'],
        workers: WORKERS,
        deadlineMs: 10_000,
        maxTokens: 12,
      };
      /** From the end of the fault to the first answer by the preferred provider again. */
      const openaiBack = (records: ChaosRecord[], clearedAt: number) => {
        const first = records
          .filter((r) => r.startedAt >= clearedAt && r.backend?.startsWith('openai:'))
          .sort((a, b) => a.startedAt - b.startedAt)[0];
        return first ? first.startedAt - clearedAt : 'never';
      };

      const list: Phase[] = [
        {
          name: 'provider-429-storm',
          inject: () => setFaults(s, 'openai-sim', { rateLimit: { count: 1_000_000, retryAfterSeconds: RETRY_AFTER_S } }),
          extra: ({ records, faultAt, clearedAt, openai }) => {
            const calls429 = openai.filter((r) => r.status === 429 && r.at >= faultAt && r.at <= clearedAt).length;
            return {
              openai429Calls: calls429,
              requestsDuringStorm: records.filter((r) => r.startedAt >= faultAt && r.startedAt <= clearedAt).length,
              openaiBackMs: openaiBack(records, clearedAt),
            };
          },
          check: ({ faultAt, clearedAt, openai }) => {
            // Paused router-wide: at most one probe per worker per Retry-After window, whatever the request rate.
            const calls429 = openai.filter((r) => r.status === 429 && r.at >= faultAt && r.at <= clearedAt).length;
            const bound = (Math.ceil((clearedAt - faultAt) / (RETRY_AFTER_S * 1000)) + 1) * WORKERS;
            return calls429 > bound
              ? [`429 storm: ${calls429} calls to the rate-limited provider, more than ${bound} (Retry-After not honoured router-wide)`]
              : [];
          },
        },
        {
          name: 'provider-5xx',
          inject: () => setFaults(s, 'openai-sim', { serverError: { count: -1, status: 500 } }),
          extra: ({ records, clearedAt }) => ({ openaiBackMs: openaiBack(records, clearedAt) }),
          check: () => [],
        },
        {
          name: 'provider-slow-first-byte',
          inject: () => setFaults(s, 'openai-sim', { slowFirstTokenMs: FIRST_BYTE_TIMEOUT_MS * 3 }),
          extra: ({ records, clearedAt }) => ({ openaiBackMs: openaiBack(records, clearedAt) }),
          check: () => [],
        },
        {
          name: 'both-providers-failing',
          inject: async () => {
            await setFaults(s, 'openai-sim', { serverError: { count: -1, status: 503 } });
            await setFaults(s, 'anthropic-sim', { serverError: { count: -1, status: 529 } });
          },
          extra: ({ records, faultAt, clearedAt }) => {
            const during = records.filter((r) => r.startedAt >= faultAt + 500 && r.endedAt <= clearedAt);
            return {
              typedErrorsDuringOutage: during.filter((r) => r.outcome.kind === 'typed_error').length,
              answeredDuringOutage: during.filter((r) => r.outcome.kind === 'completed').length,
            };
          },
          // Nothing can serve: every request must end in a typed error (the load counts lost ones).
          check: ({ records, faultAt, clearedAt }) => {
            const during = records.filter((r) => r.startedAt >= faultAt + 500 && r.endedAt <= clearedAt);
            return during.some((r) => r.outcome.kind === 'typed_error') ? [] : ['both providers down: no typed error reached the clients'];
          },
        },
      ];

      const parts: ScenarioResult[] = [];
      const violations: string[] = [];
      for (const p of list) {
        const run = startLoad({ ...load, durationMs: timing.baseMs + timing.faultMs + timing.afterMs });
        await sleep(timing.baseMs);
        const faultAt = Date.now();
        await p.inject();
        await sleep(Math.max(0, timing.faultMs - (Date.now() - faultAt)));
        await Promise.all([setFaults(s, 'openai-sim', {}), setFaults(s, 'anthropic-sim', {})]);
        const clearedAt = Date.now();
        const records = await run.done;
        const openai = await simRequests(s, 'openai-sim');
        const result = summarise(p.name, records, clearedAt);
        const backends = Object.fromEntries(Object.entries(byBackend(records)).map(([k, v]) => [`servedBy.${k}`, v]));
        result.extra = { ...result.extra, ...backends, ...p.extra?.({ records, faultAt, clearedAt, openai }) };
        violations.push(...p.check({ result, records, faultAt, clearedAt, openai }).map((v) => `${p.name}: ${v}`));
        parts.push(result);
        // Let the breakers close and the pause end before the next fault.
        await sleep(BREAKER_OPEN_MS + 500);
      }
      const merged = mergeResults(NAME, parts);
      return { ...merged, crashed: crashes.close(), ...(violations.length ? { violations } : {}) };
    } finally {
      crashes.close();
      if (stack) {
        await auditStack(NAME, stack, MAX_LOG_LINES);
        await stack.stop();
      }
    }
  },
};
