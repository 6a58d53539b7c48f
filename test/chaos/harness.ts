// Small pieces the chaos scenarios share: a crash watch over the processes a scenario started,
// counting engine generations on the simulators, and phase lengths per mode.
import type { ServiceProcess } from '../../cli/spawn-service.ts';
import { simState, waitFor, type Stack } from '../helpers/stack.ts';
import { sleep } from '../../common/process.ts';
import { startLoad, summarise, type ChaosRecord, type LoadOptions } from './load.ts';
import type { ScenarioOptions, ScenarioResult } from './types.ts';

/**
 * Records every watched process that exits without the scenario having said it would stop it
 * (a SIGKILL the scenario injects is announced with `expect` first).
 */
export class CrashWatch {
  readonly crashed: string[] = [];
  private readonly expected = new Set<ServiceProcess>();
  private closed = false;

  watch(...procs: (ServiceProcess | undefined)[]): void {
    for (const p of procs) {
      if (!p) continue;
      void p.exited.then((code) => {
        if (!this.closed && !this.expected.has(p)) this.crashed.push(`${p.name} exited (${code})`);
      });
    }
  }

  watchStack(stack: Stack): void {
    this.watch(stack.router, stack.controlPlane, ...stack.agents.values(), ...stack.sims.values(), ...stack.providerSims.values());
  }

  /** The scenario is about to stop or kill this process itself. */
  expect(p: ServiceProcess | undefined): void {
    if (p) this.expected.add(p);
  }

  /** Teardown: exits from here on are the scenario's own. */
  close(): string[] {
    this.closed = true;
    return this.crashed;
  }
}

/** Full generations the simulators finished so far (warm-ups included). */
export async function engineCompleted(stack: Stack): Promise<number> {
  const states = await Promise.all([...stack.sims.values()].map((s) => simState(s.url).catch(() => ({ completed: 0 }))));
  return states.reduce((n, s) => n + s.completed, 0);
}

/** Waits until the router lists `model` on /v1/models and serves one request of it. */
export async function waitServing(routerUrl: string, model: string, timeoutMs = 30_000, apiKey?: string): Promise<void> {
  await waitFor(
    async () => {
      const res = await fetch(`${routerUrl}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(apiKey ? { authorization: `Bearer ${apiKey}` } : {}) },
        body: JSON.stringify({ model, messages: [{ role: 'user', content: 'ready?' }], max_tokens: 1 }),
      });
      await res.arrayBuffer();
      return res.ok;
    },
    timeoutMs,
    200,
  );
}

/** Phase lengths: short keeps CI within minutes, long is the soak run by hand. */
export function phases(opts: ScenarioOptions, short: { baseMs: number; faultMs: number; afterMs: number }, longFactor = 10) {
  const f = opts.mode === 'long' ? longFactor : 1;
  return { baseMs: short.baseMs * f, faultMs: short.faultMs * f, afterMs: short.afterMs * f };
}

export interface PhaseSpec {
  name: string;
  load: Omit<LoadOptions, 'durationMs'>;
  /** baseMs of load before the fault, faultMs of fault, afterMs of load after it ended. */
  timing: { baseMs: number; faultMs: number; afterMs: number };
  /** Starts the fault (after baseMs of load). */
  inject(): Promise<void>;
  /** Ends it (faultMs later); recovery is measured from when this resolves. */
  clear(): Promise<void>;
  /** Count engine generations on this stack's simulators (duplicate check). */
  stack?: Stack;
  /** Generations the phase itself causes outside the load (agent warm-ups after a restart). */
  extraGenerations?: () => number;
}

/** One fault under load: baseline, fault, recovery; the load runs through all three. */
export async function runPhase(p: PhaseSpec): Promise<ScenarioResult> {
  return (await runPhaseRecords(p)).result;
}

/** runPhase, with the records for a scenario's own checks. */
export async function runPhaseRecords(p: PhaseSpec): Promise<{ result: ScenarioResult; records: ChaosRecord[]; faultEndedAt: number }> {
  const before = p.stack ? await engineCompleted(p.stack) : 0;
  const { baseMs, faultMs, afterMs } = p.timing;
  const load = startLoad(p.load);
  await sleep(baseMs);
  const faultAt = Date.now();
  await p.inject();
  await sleep(Math.max(0, faultMs - (Date.now() - faultAt)));
  await p.clear();
  const faultEndedAt = Date.now();
  // However long clearing took (an agent restart), the load runs afterMs past the fault's end.
  await sleep(afterMs);
  const records = await load.stop();
  console.error(
    `  phase ${p.name}: fault ${faultEndedAt - faultAt} ms, ${records.length} requests, done ${Date.now() - faultEndedAt} ms after the fault`,
  );
  let engineGenerations: number | undefined;
  if (p.stack) engineGenerations = (await engineCompleted(p.stack)) - before - (p.extraGenerations?.() ?? 0);
  const r = summarise(p.name, records, faultEndedAt, { engineGenerations });
  const result = {
    ...r,
    extra: { ...r.extra, faultMs: faultEndedAt - faultAt, ...(engineGenerations !== undefined ? { engineGenerations } : {}) },
  };
  return { result, records, faultEndedAt };
}

/** Distinct nodes (x-backend) that answered `tries` small requests. */
export async function modelNodes(routerUrl: string, model = 'sim-model', tries = 12, apiKey?: string): Promise<number> {
  const seen = new Set<string>();
  for (let i = 0; i < tries; i++) {
    const res = await fetch(`${routerUrl}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(apiKey ? { authorization: `Bearer ${apiKey}` } : {}) },
      body: JSON.stringify({ model, messages: [{ role: 'user', content: `probe ${i}` }], max_tokens: 1 }),
    });
    await res.arrayBuffer();
    const b = res.headers.get('x-backend');
    if (res.ok && b) seen.add(b);
  }
  return seen.size;
}
