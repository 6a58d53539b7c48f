// Refusals are recognised by their class (in process) or by the exact codes admission writes (batch
// items, which see only the HTTP answer), never by a code prefix.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ApiError, ClientCancelledError, errors } from '../../../common/errors.ts';
import { AdmissionRefusal, isAdmissionRefusal, isRefusalCode } from '../../../router/admission/refusal.ts';
import { classify } from '../../../router/batch/runner.ts';
import { triggerOf } from '../../../router/upstream/fallback-dispatch.ts';

describe('admission refusals', () => {
  it('are 429 in the sheddable lane and 503 elsewhere, with the wire code lane_<reason>', () => {
    const shed = new AdmissionRefusal('sheddable', 'shed', 'busy', 3);
    assert.equal(shed.status, 429);
    assert.equal(shed.code, 'lane_shed');
    assert.equal(shed.retryAfterSeconds, 3);
    const full = new AdmissionRefusal('critical', 'queue_full', 'full', 1);
    assert.equal(full.status, 503);
    assert.deepEqual(full.toBody().error.code, 'lane_queue_full');
  });

  it('are told apart by class: an upstream error that merely shares the prefix is not one', () => {
    assert.equal(isAdmissionRefusal(new AdmissionRefusal('standard', 'queue_timeout', 'late', 1)), true);
    assert.equal(isAdmissionRefusal(new ApiError(503, 'x', 'server_error', 'lane_shed')), false);
    assert.equal(triggerOf(new AdmissionRefusal('standard', 'queue_timeout', 'late', 1)), 'lane_saturated');
    assert.equal(triggerOf(new ApiError(503, 'x', 'server_error', 'lane_whatever')), undefined);
  });

  it('batch items yield on exactly the codes admission writes', () => {
    for (const code of ['lane_shed', 'lane_queue_full', 'lane_queue_timeout', 'lane_evicted']) {
      assert.equal(isRefusalCode(code), true, code);
      assert.equal(classify({ status: 503, body: { error: { code } } } as never), 'yield', code);
    }
    assert.equal(isRefusalCode('lane_'), false);
    assert.equal(isRefusalCode('lane_anything'), false);
    assert.equal(classify({ status: 503, body: { error: { code: 'lane_anything' } } } as never), 'retryable');
  });
});

describe('client cancellation', () => {
  it('is its own error (499, code client_cancelled), not a 400 invalid_request', () => {
    const e = errors.clientCancelled();
    assert.ok(e instanceof ClientCancelledError);
    assert.ok(e instanceof ApiError);
    assert.equal(e.status, 499);
    assert.equal(e.code, 'client_cancelled');
  });
});
