// The lane report a router sends (real AdmissionController counters) and the control plane's
// /v1/routers view of it: rates between reports, expiry of silent routers, bad input refused.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { AdmissionController, DEFAULT_ADMISSION } from '../../../router/admission/controller.ts';
import { laneReport } from '../../../router/admission/lane-report.ts';
import { routersApi, type RouterLaneView } from '../../../control-plane/api/routers.ts';
import { createHttpServer } from '../../../common/http.ts';
import { createLogger } from '../../../common/logger.ts';

function admissionWithTraffic() {
  const state = { wait: 0 };
  const ctl = new AdmissionController(DEFAULT_ADMISSION, () => state.wait, Date.now);
  const run = (lane: 'critical' | 'standard' | 'sheddable') =>
    ctl.run({ lane, tenant: 't', model: 'm', deadline: Date.now() + 60_000 }, async () => 'ok');
  return { ctl, state, run };
}

describe('router lane report', () => {
  it('counts admitted and refused requests per lane and reason, and queue depth', async () => {
    const { ctl, state, run } = admissionWithTraffic();
    await run('standard');
    await run('sheddable');
    state.wait = 3; // saturated: sheddable is shed at once, standard queues
    assert.throws(() => run('sheddable'));
    assert.throws(() => run('sheddable'));
    const queued = run('standard');
    queued.catch(() => undefined);
    const r = laneReport(ctl);
    assert.deepEqual(r.lanes.sheddable, { queued: 0, admitted: 1, refused: { shed: 2 } });
    assert.deepEqual(r.lanes.standard, { queued: 1, admitted: 1, refused: {} });
    assert.deepEqual(r.lanes.critical, { queued: 0, admitted: 0, refused: {} });
    ctl.close();
  });
});

describe('control plane /v1/routers', () => {
  async function app(now: () => number) {
    const a = createHttpServer({ logger: createLogger('test', 'silent') });
    await a.register(routersApi, { ttlMs: 10_000, maxRouters: 2, now });
    return a;
  }
  const lanes = (shed: number, admitted: number) => ({
    critical: { queued: 0, admitted: 0, refused: {} },
    standard: { queued: 2, admitted, refused: {} },
    sheddable: { queued: 0, admitted: 0, refused: { shed } },
  });

  it('shows each router with per-lane rates computed between its reports, and forgets silent routers', async () => {
    let t = 1_000_000;
    const a = await app(() => t);
    const post = (id: string, body: unknown) => a.inject({ method: 'POST', url: `/v1/routers/${id}/report`, payload: body as object });
    assert.equal((await post('r1', { lanes: lanes(10, 100) })).statusCode, 204);
    t += 2_000;
    assert.equal((await post('r1', { lanes: lanes(30, 140) })).statusCode, 204);
    const view = (await a.inject('/v1/routers')).json() as { data: RouterLaneView[] };
    const r1 = view.data.find((r) => r.router === 'r1')!;
    const shed = r1.lanes.find((l) => l.lane === 'sheddable')!;
    assert.equal(shed.refusedPerSecond, 10);
    assert.deepEqual(shed.refused, { shed: 30 });
    const std = r1.lanes.find((l) => l.lane === 'standard')!;
    assert.equal(std.admittedPerSecond, 20);
    assert.equal(std.queued, 2);
    // A restarted router (counters back at zero) gets no rate for that interval, not a negative one.
    t += 2_000;
    await post('r1', { lanes: lanes(0, 0) });
    const again = ((await a.inject('/v1/routers')).json() as { data: RouterLaneView[] }).data[0]!;
    assert.equal(again.lanes.find((l) => l.lane === 'sheddable')!.refusedPerSecond, null);
    t += 11_000;
    assert.deepEqual(((await a.inject('/v1/routers')).json() as { data: unknown[] }).data, []);
    await a.close();
  });

  it('refuses malformed reports with an OpenAI-shaped 400 and bounds how many routers it keeps', async () => {
    const t = 5_000;
    const a = await app(() => t);
    const post = (id: string, body: unknown) => a.inject({ method: 'POST', url: `/v1/routers/${id}/report`, payload: body as object });
    for (const bad of [
      {},
      { lanes: { ...lanes(1, 1), critical: { queued: -1, admitted: 0, refused: {} } } },
      { lanes: lanes(1, 1), extra: 1 },
      { lanes: { ...lanes(1, 1), standard: { queued: 0, admitted: 0, refused: { 'Bad Reason!': 1 } } } },
    ]) {
      const res = await post('r1', bad);
      assert.equal(res.statusCode, 400, JSON.stringify(bad));
      assert.equal(res.json().error.type, 'invalid_request_error');
    }
    assert.equal((await post('bad id', { lanes: lanes(1, 1) })).statusCode, 400);
    assert.equal((await post('r1', { lanes: lanes(1, 1) })).statusCode, 204);
    assert.equal((await post('r2', { lanes: lanes(1, 1) })).statusCode, 204);
    assert.equal((await post('r3', { lanes: lanes(1, 1) })).statusCode, 429);
    assert.equal((await post('r1', { lanes: lanes(2, 2) })).statusCode, 204, 'a known router may always report');
    await a.close();
  });
});
