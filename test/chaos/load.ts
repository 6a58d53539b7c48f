// The chaos suite's load generator: official `openai` SDK clients (streaming and not, several
// tenants and lanes) against one or more routers, open-loop at a rate or closed-loop with N
// workers, each request with a deadline. Every request ends as exactly one LoadRecord:
// completed, a typed OpenAI-shaped error (HTTP or an SSE error event mid-stream), or lost.
//
// The load balancer in front of several routers is modelled by the `fetch` given to the SDK: it
// round-robins over the router URLs and, on a refused connection only (nothing was sent, so a
// retry cannot duplicate work), tries the next router, backing off while every router refuses,
// until the request's deadline; then it answers 503 `no_healthy_upstream` like Envoy does.
import OpenAI, { APIError, APIConnectionError } from 'openai';
import type { LoadRecord, Outcome, ScenarioResult } from './types.ts';
import { sleep } from '../../common/process.ts';
import { PROMPT_MARKER } from './secrets.ts';

export type Lane = LoadRecord['lane'];

export interface LoadTenant {
  name: string;
  /** Bearer key when the stack has auth on; absent = no key. */
  apiKey?: string;
}

export interface LoadOptions {
  /** Router base URLs (no /v1); a function is re-read per request (routers that move). */
  targets: string[] | (() => string[]);
  model: string;
  tenants?: LoadTenant[];
  /** Lanes asked for with `x-priority-lane`, picked in turn. */
  lanes?: Lane[];
  /** Share of streaming requests, 0..1 (default 0.5). */
  streamShare?: number;
  /** Open loop: requests started per second whatever the answers do. */
  ratePerSec?: number;
  /** Closed loop: N workers each sending the next request when the last ended. */
  workers?: number;
  /** Per-request deadline (client side); answers after deadline + margin are lost. */
  deadlineMs?: number;
  /** Grace past the deadline before the client gives up (the server's own timeout lands first). */
  deadlineMarginMs?: number;
  maxTokens?: number;
  /** Stop after this long (else call stop()). */
  durationMs?: number;
}

/** A LoadRecord plus what some scenarios report: time to first token and who answered. */
export interface ChaosRecord extends LoadRecord {
  /** Streams: first content chunk; JSON: the whole answer. Only for answered requests. */
  ttftMs?: number;
  /** The `x-backend` response header (node:<id>, openai:<model>, ...), when there was a response. */
  backend?: string;
}

export interface LoadRun {
  /** Every request that ended so far (live). */
  readonly records: ChaosRecord[];
  /** Requests started and not yet ended. */
  inFlight(): number;
  /** Stop starting new requests and wait for those in flight. */
  stop(): Promise<ChaosRecord[]>;
  /** Resolves when durationMs has passed and every request ended. */
  done: Promise<ChaosRecord[]>;
}

const LOAD_ID_HEADER = 'x-chaos-load-id';

function isRefused(err: unknown): boolean {
  for (let e = err as { code?: string; cause?: unknown } | undefined, i = 0; e && i < 5; e = e.cause as typeof e, i++) {
    if (e.code === 'ECONNREFUSED') return true;
  }
  return false;
}

interface StreamTrace {
  sawDone: boolean;
  tail: string;
  backend: string | null;
}

/** The load balancer and the [DONE] witness, as the SDK's fetch. */
function lbFetch(targets: () => string[], traces: Map<string, StreamTrace>, deadlines: Map<string, number>): typeof fetch {
  let next = 0;
  return (async (input: string | URL | Request, init?: RequestInit) => {
    const url = new URL(typeof input === 'string' ? input : input instanceof URL ? input.href : input.url);
    const id = new Headers(init?.headers).get(LOAD_ID_HEADER) ?? '';
    const until = deadlines.get(id) ?? Date.now() + 30_000;
    let backoff = 20;
    for (;;) {
      const list = targets();
      for (let i = 0; i < list.length; i++) {
        const base = new URL(list[next++ % list.length]!);
        url.protocol = base.protocol;
        url.host = base.host;
        try {
          const res = await fetch(url, init);
          if (!res.body) return res;
          // Pass the body through unchanged, remembering whether the literal [DONE] went by.
          const trace: StreamTrace = { sawDone: false, tail: '', backend: res.headers.get('x-backend') };
          traces.set(id, trace);
          const dec = new TextDecoder();
          const body = res.body.pipeThrough(
            new TransformStream<Uint8Array, Uint8Array>({
              transform(chunk, ctl) {
                trace.tail = (trace.tail + dec.decode(chunk, { stream: true })).slice(-64);
                if (trace.tail.includes('data: [DONE]')) trace.sawDone = true;
                ctl.enqueue(chunk);
              },
            }),
          );
          return new Response(body, { status: res.status, statusText: res.statusText, headers: res.headers });
        } catch (err) {
          if (!isRefused(err)) throw err;
        }
      }
      // Every router refused the connection: back off and try again until the deadline.
      if (Date.now() + backoff >= until) break;
      await sleep(backoff);
      backoff = Math.min(backoff * 2, 250);
    }
    return new Response(
      JSON.stringify({ error: { message: 'no healthy upstream', type: 'service_unavailable', param: null, code: 'no_healthy_upstream' } }),
      { status: 503, headers: { 'content-type': 'application/json' } },
    );
  }) as typeof fetch;
}

/** How a thrown SDK error ends a request. */
function classifyError(err: unknown, pastDeadline: boolean): Outcome {
  if (pastDeadline) return { kind: 'lost', why: 'past deadline' };
  if (err instanceof APIConnectionError) return { kind: 'lost', why: `connection: ${err.message}` };
  if (err instanceof APIError) {
    const e = err.error as { type?: unknown; code?: unknown; message?: unknown } | undefined;
    // An HTTP error answers with `{ error: {...} }`; an SSE error event carries the same object.
    if (e && typeof e === 'object' && typeof e.type === 'string' && typeof e.message === 'string') {
      return {
        kind: 'typed_error',
        status: err.status ?? 0,
        type: e.type,
        code: typeof e.code === 'string' ? e.code : e.code == null ? null : String(e.code),
      };
    }
    return { kind: 'lost', why: `untyped error ${err.status ?? 'event'}: ${err.message.slice(0, 120)}` };
  }
  return { kind: 'lost', why: `client error: ${(err as Error)?.message?.slice(0, 120) ?? String(err)}` };
}

export function startLoad(opts: LoadOptions): LoadRun {
  const targets = typeof opts.targets === 'function' ? opts.targets : () => opts.targets as string[];
  const tenants = opts.tenants?.length ? opts.tenants : [{ name: 'default' }];
  const lanes = opts.lanes?.length ? opts.lanes : (['standard'] as Lane[]);
  const streamShare = opts.streamShare ?? 0.5;
  const deadlineMs = opts.deadlineMs ?? 15_000;
  const marginMs = opts.deadlineMarginMs ?? 2_000;
  const traces = new Map<string, StreamTrace>();
  const deadlines = new Map<string, number>();
  const f = lbFetch(targets, traces, deadlines);
  const clients = new Map(
    tenants.map((t) => [t.name, new OpenAI({ baseURL: 'http://lb.invalid/v1', apiKey: t.apiKey ?? 'none', maxRetries: 0, fetch: f })]),
  );
  const records: ChaosRecord[] = [];
  const pending = new Set<Promise<void>>();
  let seq = 0;
  let stopped = false;

  const one = async (): Promise<void> => {
    const id = seq++;
    const tenant = tenants[id % tenants.length]!;
    const lane = lanes[Math.floor(id / tenants.length) % lanes.length]!;
    const stream = ((id * 7919) % 1000) / 1000 < streamShare;
    const client = clients.get(tenant.name)!;
    const startedAt = Date.now();
    const loadId = `${id}`;
    deadlines.set(loadId, startedAt + deadlineMs);
    const abort = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      abort.abort();
    }, deadlineMs + marginMs);
    const responseIds = new Set<string>();
    const reqOpts = {
      headers: { 'x-priority-lane': lane, [LOAD_ID_HEADER]: loadId },
      signal: abort.signal,
      timeout: deadlineMs + marginMs + 1_000,
    };
    // The marker lets the leak audit (secrets.ts) find any process that logs prompt text.
    const messages = [{ role: 'user' as const, content: `chaos request ${id} from ${tenant.name} ${PROMPT_MARKER}` }];
    let outcome: Outcome;
    let ttftMs: number | undefined;
    let backend: string | undefined;
    try {
      if (stream) {
        const s = await client.chat.completions.create(
          { model: opts.model, messages, max_tokens: opts.maxTokens ?? 16, stream: true },
          reqOpts,
        );
        let finished = false;
        for await (const chunk of s) {
          if (ttftMs === undefined && chunk.choices?.some((c) => c.delta?.content)) ttftMs = Date.now() - startedAt;
          if (chunk.id) responseIds.add(chunk.id);
          if (chunk.choices?.some((c) => c.finish_reason)) finished = true;
        }
        const trace = traces.get(loadId);
        backend = trace?.backend ?? undefined;
        if (timedOut) outcome = { kind: 'lost', why: 'past deadline' };
        else if (!trace?.sawDone) outcome = { kind: 'lost', why: 'stream ended without [DONE] or an error event' };
        else if (!finished) outcome = { kind: 'lost', why: 'stream ended without a finish_reason' };
        else outcome = { kind: 'completed' };
      } else {
        const c = await client.chat.completions.create({ model: opts.model, messages, max_tokens: opts.maxTokens ?? 16 }, reqOpts);
        if (c.id) responseIds.add(c.id);
        ttftMs = Date.now() - startedAt;
        backend = traces.get(loadId)?.backend ?? undefined;
        outcome = timedOut
          ? { kind: 'lost', why: 'past deadline' }
          : c.choices?.[0]?.finish_reason
            ? { kind: 'completed' }
            : { kind: 'lost', why: 'answer without finish_reason' };
      }
    } catch (err) {
      outcome = classifyError(err, timedOut);
    } finally {
      clearTimeout(timer);
      traces.delete(loadId);
      deadlines.delete(loadId);
    }
    const endedAt = Date.now();
    if (outcome.kind !== 'lost' && endedAt - startedAt > deadlineMs + marginMs) outcome = { kind: 'lost', why: 'past deadline' };
    records.push({
      id,
      tenant: tenant.name,
      lane,
      stream,
      startedAt,
      endedAt,
      outcome,
      responseIds: [...responseIds],
      ...(ttftMs !== undefined ? { ttftMs } : {}),
      ...(backend ? { backend } : {}),
    });
  };

  const launch = () => {
    const p = one().finally(() => pending.delete(p));
    pending.add(p);
    return p;
  };
  const endAt = opts.durationMs !== undefined ? Date.now() + opts.durationMs : Infinity;
  const running = (): boolean => !stopped && Date.now() < endAt;

  let driver: Promise<void>;
  if (opts.workers !== undefined) {
    driver = Promise.all(
      Array.from({ length: opts.workers }, async () => {
        while (running()) await launch();
      }),
    ).then(() => undefined);
  } else {
    const rate = opts.ratePerSec ?? 10;
    driver = (async () => {
      const t0 = Date.now();
      let n = 0;
      while (running()) {
        // Open loop: catch up to the schedule whatever the answers do.
        while (n < ((Date.now() - t0) / 1000) * rate && running()) {
          void launch();
          n++;
        }
        await sleep(Math.max(1, Math.min(50, 1000 / rate)));
      }
    })();
  }
  const finish = async () => {
    await driver;
    while (pending.size) await Promise.all([...pending]);
    return records;
  };
  const done = finish();
  return {
    records,
    inFlight: () => pending.size,
    async stop() {
      stopped = true;
      return done;
    },
    done,
  };
}

export function percentile(values: number[], p: number): number {
  if (values.length === 0) return 0;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

/** Requests answered twice: a response id seen on two requests, or two ids on one request. */
export function countDuplicates(records: LoadRecord[]): number {
  const owner = new Map<string, number>();
  const dup = new Set<number>();
  for (const r of records) {
    if (r.responseIds.length > 1) dup.add(r.id);
    for (const id of r.responseIds) {
      const o = owner.get(id);
      if (o !== undefined && o !== r.id) {
        dup.add(r.id);
        dup.add(o);
      }
      owner.set(id, r.id);
    }
  }
  return dup.size;
}

export const RECOVERY_WINDOW_MS = 2_000;

/**
 * Time from the end of the fault to the start of the first 2 s window (by request start) in
 * which every request completed; null if no such window came.
 */
export function recoveryTime(records: LoadRecord[], faultEndedAt: number, windowMs = RECOVERY_WINDOW_MS, stepMs = 100): number | null {
  const after = records.filter((r) => r.startedAt >= faultEndedAt).sort((a, b) => a.startedAt - b.startedAt);
  if (after.length === 0) return null;
  const last = after[after.length - 1]!.startedAt;
  for (let t = faultEndedAt; t + windowMs <= last + 1; t += stepMs) {
    const inWindow = after.filter((r) => r.startedAt >= t && r.startedAt < t + windowMs);
    if (inWindow.length > 0 && inWindow.every((r) => r.outcome.kind === 'completed')) return t - faultEndedAt;
  }
  return null;
}

export interface SummaryExtras {
  /** Engine generations counted by the simulators (/sim/state completed) during the run, less warm-ups. */
  engineGenerations?: number;
}

/** Folds the records of one scenario run into its report row. */
export function summarise(scenario: string, records: LoadRecord[], faultEndedAt: number, extras: SummaryExtras = {}): ScenarioResult {
  const typedErrors: Record<string, number> = {};
  let completed = 0;
  let lost = 0;
  for (const r of records) {
    if (r.outcome.kind === 'completed') completed++;
    else if (r.outcome.kind === 'lost') lost++;
    else {
      // Status 0: an SSE error event after the answer had started (its HTTP status was 200).
      const k = `${r.outcome.status || 'sse'} ${r.outcome.type}/${r.outcome.code ?? '-'}`;
      typedErrors[k] = (typedErrors[k] ?? 0) + 1;
    }
  }
  let duplicated = countDuplicates(records);
  // More full generations than requests sent means some request was generated twice.
  if (extras.engineGenerations !== undefined) duplicated += Math.max(0, extras.engineGenerations - records.length);
  const latencies = records.filter((r) => r.outcome.kind === 'completed').map((r) => r.endedAt - r.startedAt);
  const lostWhy: Record<string, number> = {};
  for (const r of records) if (r.outcome.kind === 'lost') lostWhy[r.outcome.why] = (lostWhy[r.outcome.why] ?? 0) + 1;
  return {
    scenario,
    sent: records.length,
    completed,
    typedErrors,
    lost,
    duplicated,
    p99Ms: percentile(latencies, 99),
    recoveryMs: recoveryTime(records, faultEndedAt),
    ...(lost ? { notes: Object.entries(lostWhy).map(([w, n]) => `lost x${n}: ${w}`) } : {}),
  };
}

/** The system must recover by itself: a phase with no all-completed window after its fault breaks that. */
export function neverRecovered(parts: ScenarioResult[]): string[] {
  return parts.filter((p) => p.recoveryMs === null).map((p) => `${p.scenario}: never recovered`);
}

/** Merges the results of a scenario's phases (one fault each) into one report row. */
export function mergeResults(scenario: string, parts: ScenarioResult[]): ScenarioResult {
  const typedErrors: Record<string, number> = {};
  for (const p of parts) for (const [k, n] of Object.entries(p.typedErrors)) typedErrors[k] = (typedErrors[k] ?? 0) + n;
  const rec = parts.map((p) => p.recoveryMs);
  const extra: Record<string, number | string> = {};
  for (const p of parts) {
    extra[`${p.scenario}.sent`] = p.sent;
    extra[`${p.scenario}.recoveryMs`] = p.recoveryMs ?? 'never';
    extra[`${p.scenario}.p99Ms`] = p.p99Ms;
    for (const [k, v] of Object.entries(p.extra ?? {})) extra[`${p.scenario}.${k}`] = v;
  }
  const notes = parts.flatMap((p) => (p.notes ?? []).map((n) => `${p.scenario}: ${n}`));
  const violations = parts.flatMap((p) => p.violations ?? []);
  return {
    scenario,
    sent: parts.reduce((s, p) => s + p.sent, 0),
    completed: parts.reduce((s, p) => s + p.completed, 0),
    typedErrors,
    lost: parts.reduce((s, p) => s + p.lost, 0),
    duplicated: parts.reduce((s, p) => s + p.duplicated, 0),
    p99Ms: Math.max(0, ...parts.map((p) => p.p99Ms)),
    // The slowest phase to recover; null if any never did.
    recoveryMs: rec.some((r) => r === null) ? null : Math.max(0, ...(rec as number[])),
    extra,
    ...(notes.length ? { notes } : {}),
    ...(violations.length ? { violations } : {}),
  };
}
