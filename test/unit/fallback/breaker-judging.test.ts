// Breakers judge a whole answer, not just its first byte: a provider's or node's stream that
// breaks mid-way counts as a failure; a node's slow first token is judged from the engine-side
// TTFT (Usage.ttftSeconds), not router-side time; node retries back off with full jitter within
// the deadline. NodeDispatcher runs against fake gRPC calls, FallbackDispatcher against a fake provider.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { BreakerSet } from '../../../router/upstream/circuit-breaker.ts';
import { NodeDispatcher, type DispatchRequest } from '../../../router/upstream/node-dispatch.ts';
import { FallbackDispatcher } from '../../../router/upstream/fallback-dispatch.ts';
import { fallbackConfigSchema } from '../../../router/upstream/fallback-config.ts';
import { ProviderPauses } from '../../../router/upstream/retry.ts';
import { ev, toDispatch } from '../../../router/upstream/providers/events.ts';
import type { Provider, UpstreamEvent } from '../../../router/upstream/providers/types.ts';
import type { Scheduler } from '../../../router/scheduling/scheduler.ts';
import { createLogger } from '../../../common/logger.ts';

const logger = createLogger('test', 'silent');
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
// One failure in the window opens these breakers: any failure is visible as state 'open'.
const breakerOptions = { windowMs: 60_000, minRequests: 1, errorRate: 1, openMs: 60_000, halfOpenProbes: 1, closeAfterSuccesses: 1 };

type Step = { ev: UpstreamEvent; delayMs?: number } | { throw: string };

/** A gRPC Generate call that yields `steps` (after their delays), like @grpc/grpc-js's stream. */
function fakeCall(steps: Step[]) {
  const e = new EventEmitter() as EventEmitter & { cancel(): void; [Symbol.asyncIterator](): AsyncIterator<UpstreamEvent> };
  e.cancel = () => {};
  e[Symbol.asyncIterator] = async function* () {
    for (const s of steps) {
      if ('throw' in s) throw Object.assign(new Error(s.throw), { code: 14, details: s.throw });
      if (s.delayMs) await sleep(s.delayMs);
      yield s.ev;
    }
    e.emit('status', { code: 0 });
  };
  return e;
}

function fakePool(calls: Record<string, () => ReturnType<typeof fakeCall>>) {
  const nodes = Object.keys(calls).map((id) => ({ id, inFlight: 0, dispatchedSinceStatus: 0, client: { Generate: () => calls[id]!() } }));
  const scheduler = {
    schedule: (r: { exclude: Set<string> }) => {
      const n = nodes.find((x) => !r.exclude.has(x.id));
      return { connection: n, node: n ? { id: n.id } : undefined, scores: [], filtered: {} };
    },
    observeService: () => {},
  } as unknown as Scheduler;
  return scheduler;
}

const request = (over: Partial<DispatchRequest> = {}): DispatchRequest => ({
  requestId: 'r1',
  operation: 'CHAT_COMPLETIONS',
  model: 'm',
  body: { model: 'm', stream: true },
  deadline: new Date(Date.now() + 10_000),
  lane: 'standard',
  signal: new AbortController().signal,
  ...over,
});

const chunk = (delayMs = 0): Step => ({ ev: ev.chunk('{"choices":[{"index":0,"delta":{"content":"x"}}]}'), delayMs });
const usage = (ttftSeconds: number): Step => ({
  ev: { event: 'usage', usage: { promptTokens: 1, completionTokens: 2, cachedPromptTokens: 0, ttftSeconds } },
});

async function drain(it: AsyncIterator<UpstreamEvent>): Promise<UpstreamEvent[]> {
  const out: UpstreamEvent[] = [];
  for (let r = await it.next(); !r.done; r = await it.next()) out.push(r.value);
  return out;
}

describe('node breaker: judged at the end of the call, slow first token from the engine-side TTFT', () => {
  it('a first event slow at the router but fast in the engine (ttft 5 ms) is not a failure', async () => {
    const set = new BreakerSet(breakerOptions);
    const d = new NodeDispatcher(fakePool({ a: () => fakeCall([chunk(120), usage(0.005)]) }), 1, logger, {}, { set, slowFirstTokenMs: 50 });
    const out = await d.dispatch(request());
    await drain(out.rest);
    assert.equal(set.get('node:a').state, 'closed');
  });

  it('a fast first event whose engine-side TTFT was 5 s is a brownout: the breaker opens', async () => {
    const set = new BreakerSet(breakerOptions);
    const d = new NodeDispatcher(fakePool({ a: () => fakeCall([chunk(), usage(5)]) }), 1, logger, {}, { set, slowFirstTokenMs: 1_000 });
    const out = await d.dispatch(request());
    assert.equal(set.get('node:a').state, 'closed', 'not judged before the call ends');
    await drain(out.rest);
    assert.equal(set.get('node:a').state, 'open');
  });

  it('a node that fails mid-stream (error event or broken call) counts as a failure', async () => {
    for (const tail of [{ ev: ev.error('engine died') } as Step, { throw: 'connection reset' } as Step]) {
      const set = new BreakerSet(breakerOptions);
      const d = new NodeDispatcher(
        fakePool({ a: () => fakeCall([chunk(), chunk(), tail]) }),
        1,
        logger,
        {},
        { set, slowFirstTokenMs: 1_000 },
      );
      const out = await d.dispatch(request());
      await drain(out.rest).catch(() => undefined);
      assert.equal(set.get('node:a').state, 'open');
    }
  });

  it('a client that goes away mid-stream does not count against the node', async () => {
    const set = new BreakerSet(breakerOptions);
    const d = new NodeDispatcher(
      fakePool({ a: () => fakeCall([chunk(), chunk(), usage(0.001)]) }),
      1,
      logger,
      {},
      { set, slowFirstTokenMs: 1_000 },
    );
    const out = await d.dispatch(request());
    out.cancel();
    assert.equal(set.get('node:a').state, 'closed');
    assert.ok(set.get('node:a').tryAcquire(), 'the permit was released, not held');
  });
});

describe('node retries: full-jitter backoff within the deadline', () => {
  const failing = () =>
    fakeCall([
      {
        ev: {
          event: 'error',
          error: { kind: 'ENGINE_OVERLOADED', message: 'busy', httpStatus: 503, errorJson: '', beforeFirstToken: true },
        },
      },
    ]);

  it('sleeps random(0, min(cap, base * 2^(n-1))) before each further node', async () => {
    const sleeps: number[] = [];
    const d = new NodeDispatcher(
      fakePool({ a: failing, b: failing, c: () => fakeCall([chunk(), usage(0.001)]) }),
      3,
      logger,
      {},
      undefined,
      {
        baseDelayMs: 100,
        maxDelayMs: 150,
        random: () => 0.5,
        sleep: async (ms) => void sleeps.push(ms),
      },
    );
    const out = await d.dispatch(request());
    assert.equal(out.backend, 'node:c');
    assert.equal(out.attempts, 3);
    assert.deepEqual(sleeps, [50, 75], 'first retry: 0.5 x 100; second: 0.5 x min(150, 200)');
  });

  it('a backoff that would pass the deadline is not slept: the last error comes back at once', async () => {
    const sleeps: number[] = [];
    const d = new NodeDispatcher(fakePool({ a: failing, b: () => fakeCall([chunk(), usage(0.001)]) }), 3, logger, {}, undefined, {
      baseDelayMs: 5_000,
      maxDelayMs: 5_000,
      random: () => 0.99,
      sleep: async (ms) => void sleeps.push(ms),
    });
    await assert.rejects(
      d.dispatch(request({ deadline: new Date(Date.now() + 1_000) })),
      (e: { status: number; code: string }) => e.status === 503 && e.code === 'node_unavailable',
    );
    assert.deepEqual(sleeps, []);
  });

  it('really waits (default sleep), and a client that leaves during the wait ends it', async () => {
    const d = new NodeDispatcher(fakePool({ a: failing, b: () => fakeCall([chunk(), usage(0.001)]) }), 2, logger, {}, undefined, {
      baseDelayMs: 300,
      maxDelayMs: 300,
      random: () => 0.999,
    });
    const t0 = performance.now();
    await d.dispatch(request());
    assert.ok(performance.now() - t0 >= 250, 'waited about 300 ms before the second node');
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 20);
    await assert.rejects(d.dispatch(request({ signal: ac.signal })), /client closed/);
  });
});

describe('provider breaker: a mid-stream failure counts', () => {
  const provider = (events: () => AsyncGenerator<UpstreamEvent>): Provider => ({
    name: 'p',
    kind: 'openai',
    supports: () => true,
    generate: () => toDispatch('p', 'p:model-x', events(), () => {}),
  });
  const dispatcher = (p: Provider, set: BreakerSet) => {
    const cfg = fallbackConfigSchema.parse({ providers: { p: { kind: 'openai', apiKeyEnv: 'X' } }, chains: { m: ['p:model-x'] } });
    return new FallbackDispatcher(
      {} as never,
      cfg,
      new Map([['p', p]]),
      set,
      new ProviderPauses(),
      { maxAttempts: 1, baseDelayMs: 0, maxDelayMs: 0, maxPauseWaitMs: 0, slowFirstTokenMs: 10_000 },
      logger,
    );
  };

  it('a stream that drops after its first chunk opens the provider breaker', async () => {
    const set = new BreakerSet(breakerOptions);
    const d = dispatcher(
      provider(async function* () {
        yield ev.chunk('{"choices":[]}');
        throw new Error('socket hang up');
      }),
      set,
    );
    const out = await d.dispatch(request());
    assert.equal(set.get('provider:p').state, 'closed');
    const rest = await drain(out.rest);
    assert.equal(rest.at(-1)?.event, 'error');
    assert.equal(set.get('provider:p').state, 'open');
  });

  it('a complete stream is a success', async () => {
    const set = new BreakerSet(breakerOptions);
    const d = dispatcher(
      provider(async function* () {
        yield ev.chunk('{"choices":[]}');
        yield ev.usage(1, 1);
      }),
      set,
    );
    await drain((await d.dispatch(request())).rest);
    assert.equal(set.get('provider:p').state, 'closed');
    assert.ok(set.get('provider:p').tryAcquire());
  });
});
