import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { AdmissionController, DEFAULT_ADMISSION, type AdmissionSettings } from '../../../router/admission/controller.ts';
import { ApiError, ClientCancelledError } from '../../../common/errors.ts';
import type { Lane } from '../../../common/contracts.ts';

// The mechanism tests use budgets in seconds of predicted wait (the defaults are 0: free slot).
const BUDGETS: AdmissionSettings = {
  ...DEFAULT_ADMISSION,
  lanes: {
    critical: { ...DEFAULT_ADMISSION.lanes.critical, maxPredictedWaitSeconds: 8 },
    standard: { ...DEFAULT_ADMISSION.lanes.standard, maxPredictedWaitSeconds: 2 },
    sheddable: { ...DEFAULT_ADMISSION.lanes.sheddable, maxPredictedWaitSeconds: 1 },
  },
};

function setup(settings: AdmissionSettings = BUDGETS) {
  const state = { wait: 0, t: 0, started: [] as string[] };
  const ctl = new AdmissionController(
    settings,
    () => state.wait,
    () => state.t,
  );
  const run = (id: string, lane: Lane, tenant = 't', deadline = 1e9) =>
    ctl.run({ lane, tenant, model: 'm', deadline }, async () => {
      state.started.push(id);
      return id;
    });
  return { ctl, state, run };
}
const refusal = (f: () => unknown): ApiError => {
  try {
    f();
  } catch (e) {
    return e as ApiError;
  }
  throw new Error('expected a refusal');
};

describe('admission controller', () => {
  it('admits at once while the pool is under the lane budget', async () => {
    const { run, state } = setup();
    assert.equal(await run('a', 'sheddable'), 'a');
    assert.deepEqual(state.started, ['a']);
  });

  it('sheds sheddable at once with 429 + Retry-After when saturated, without queueing', () => {
    const { ctl, run, state } = setup();
    state.wait = 3.2;
    const e = refusal(() => run('s', 'sheddable'));
    assert.equal(e.status, 429);
    assert.equal(e.retryAfterSeconds, 4);
    assert.equal(e.code, 'lane_shed');
    assert.equal(ctl.queueDepth('sheddable'), 0);
  });

  it('queues standard until the pool has room, then 503 after its queue deadline', async () => {
    const { ctl, run, state } = setup();
    state.wait = 5;
    const p1 = run('s1', 'standard');
    const p2 = run('s2', 'standard');
    assert.equal(ctl.queueDepth('standard'), 2);
    state.wait = 0.5;
    ctl.pump();
    assert.equal(await p1, 's1');
    assert.equal(await p2, 's2');
    state.wait = 5;
    const p3 = run('s3', 'standard');
    state.t = DEFAULT_ADMISSION.lanes.standard.queueTimeoutMs + 1;
    ctl.tick();
    await assert.rejects(p3, (e: ApiError) => e.status === 503 && e.code === 'lane_queue_timeout' && (e.retryAfterSeconds ?? 0) >= 1);
  });

  it('critical goes first when both wait, and gets a bigger budget than standard', async () => {
    const { ctl, run, state } = setup();
    state.wait = 4; // over standard's 2 s, under critical's 8 s
    assert.equal(await run('c0', 'critical'), 'c0');
    state.wait = 10;
    const s = run('s', 'standard');
    const c = run('c', 'critical');
    state.wait = 1;
    ctl.pump();
    await Promise.all([s, c]);
    assert.deepEqual(state.started, ['c0', 'c', 's']);
  });

  it('a new request does not overtake those queued in its lane', () => {
    const { ctl, run, state } = setup();
    state.wait = 5;
    void run('s1', 'standard');
    state.wait = 0;
    void run('s2', 'standard');
    assert.equal(ctl.queueDepth('standard'), 2);
    assert.deepEqual(state.started, []);
  });

  it('critical is never refused while lower lanes hold queue slots: it evicts the youngest', async () => {
    const settings: AdmissionSettings = { ...BUDGETS, maxQueuedTotal: 2 };
    const { ctl, run, state } = setup(settings);
    state.wait = 20;
    const s1 = run('s1', 'standard');
    const s2 = run('s2', 'standard');
    const e = refusal(() => run('s3', 'standard'));
    assert.equal(e.code, 'lane_queue_full');
    const c = run('c', 'critical');
    await assert.rejects(s2, (err: ApiError) => err.code === 'lane_evicted');
    assert.equal(ctl.queueDepth('critical'), 1);
    state.wait = 0;
    ctl.pump();
    assert.equal(await c, 'c');
    assert.equal(await s1, 's1');
  });

  it('a client that goes away leaves the queue', async () => {
    const { ctl, state } = setup();
    state.wait = 5;
    const ac = new AbortController();
    const p = ctl.run({ lane: 'standard', tenant: 't', model: 'm', deadline: 1e9, signal: ac.signal }, async () => 'x');
    ac.abort();
    await assert.rejects(p, (e: ApiError) => e instanceof ClientCancelledError && e.status === 499);
    assert.equal(ctl.queueDepth('standard'), 0);
  });

  it('fair across tenants within a lane', async () => {
    const { ctl, run, state } = setup();
    state.wait = 5;
    const ps = [
      run('big1', 'standard', 'big'),
      run('big2', 'standard', 'big'),
      run('big3', 'standard', 'big'),
      run('small1', 'standard', 'small'),
    ];
    state.wait = 0;
    ctl.pump();
    await Promise.all(ps);
    assert.deepEqual(state.started, ['big1', 'small1', 'big2', 'big3']);
  });
});

describe('admission defaults: work waits in the router, not in the engines', () => {
  it('every lane goes at once only while a batch slot is free (predicted wait 0)', async () => {
    const { ctl, run, state } = setup(DEFAULT_ADMISSION);
    assert.equal(await run('s0', 'sheddable'), 's0');
    state.wait = 0.3; // every node's batch is full: 0.3 s until a slot frees
    assert.equal(refusal(() => run('x', 'sheddable')).code, 'lane_shed');
    const std = run('s', 'standard');
    const crit = run('c', 'critical');
    assert.equal(ctl.queueDepth('standard'), 1);
    assert.equal(ctl.queueDepth('critical'), 1);
    assert.deepEqual(state.started, ['s0']);
    state.wait = 0;
    ctl.pump();
    assert.deepEqual(state.started, ['s0', 'c', 's'], 'critical takes the free slot first');
    assert.equal(await crit, 'c');
    assert.equal(await std, 's');
  });

  it('admit(): callbacks without promises (virtual time); later refusals go to the callback', () => {
    const { ctl, state } = setup(DEFAULT_ADMISSION);
    state.wait = 1;
    const events: string[] = [];
    ctl.admit(
      { lane: 'standard', tenant: 't', model: 'm', deadline: 1e9 },
      () => events.push('start'),
      (e) => events.push(e.code!),
    );
    assert.equal(events.length, 0);
    state.t = DEFAULT_ADMISSION.lanes.standard.queueTimeoutMs + 1;
    ctl.tick();
    assert.deepEqual(events, ['lane_queue_timeout'], 'refused synchronously from tick()');
    state.wait = 0;
    ctl.admit(
      { lane: 'standard', tenant: 't', model: 'm', deadline: 1e9 },
      () => events.push('start'),
      (e) => events.push(e.code!),
    );
    assert.deepEqual(events, ['lane_queue_timeout', 'start']);
  });
});
