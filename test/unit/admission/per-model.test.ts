import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { AdmissionController, DEFAULT_ADMISSION } from '../../../router/admission/controller.ts';
import type { Lane } from '../../../common/contracts.ts';

// Two models in one lane: model A's nodes are saturated, model B's have free slots.
function setup() {
  const wait = new Map<string, number>([
    ['a', 5],
    ['b', 0],
  ]);
  const started: string[] = [];
  const ctl = new AdmissionController(
    DEFAULT_ADMISSION,
    (model) => wait.get(model) ?? Infinity,
    () => 0,
  );
  const admit = (id: string, model: string, lane: Lane = 'standard', tenant = 't') =>
    ctl.admit(
      { lane, tenant, model, deadline: 1e9 },
      () => started.push(id),
      () => started.push(`refused:${id}`),
    );
  return { ctl, wait, started, admit };
}

describe('admission per model (no cross-model head-of-line blocking)', () => {
  it("admits an idle model's request at once while a saturated model's queue waits in the same lane", () => {
    const { ctl, started, admit } = setup();
    admit('a1', 'a');
    admit('a2', 'a');
    assert.equal(ctl.queueDepth('standard'), 2);
    admit('b1', 'b');
    assert.deepEqual(started, ['b1']);
  });

  it("does not shed an idle model's sheddable request because another model's critical queue waits", () => {
    const { started, admit } = setup();
    admit('a1', 'a', 'critical');
    admit('b1', 'b', 'sheddable');
    assert.deepEqual(started, ['b1']);
  });

  it("pump admits a queued request of a model that has room behind a saturated model's head", () => {
    const { ctl, wait, started, admit } = setup();
    wait.set('b', 5);
    admit('a1', 'a');
    admit('b1', 'b');
    admit('a2', 'a');
    wait.set('b', 0);
    ctl.pump();
    assert.deepEqual(started, ['b1']);
    assert.equal(ctl.queueDepth('standard'), 2);
    wait.set('a', 0);
    ctl.pump();
    assert.deepEqual(started, ['b1', 'a1', 'a2']);
  });

  it('keeps the lane and total queue bounds across models', () => {
    const settings = {
      ...DEFAULT_ADMISSION,
      lanes: { ...DEFAULT_ADMISSION.lanes, standard: { ...DEFAULT_ADMISSION.lanes.standard, maxQueue: 2 } },
    };
    const started: string[] = [];
    const ctl = new AdmissionController(
      settings,
      () => 5,
      () => 0,
    );
    const admit = (id: string, model: string) =>
      ctl.admit(
        { lane: 'standard', tenant: 't', model, deadline: 1e9 },
        () => started.push(id),
        () => undefined,
      );
    admit('a1', 'a');
    admit('b1', 'b');
    assert.throws(
      () => admit('c1', 'c'),
      (e: { code?: string }) => e.code === 'lane_queue_full',
    );
    assert.equal(ctl.queueDepth('standard'), 2);
  });
});
