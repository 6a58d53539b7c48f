import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { buildProfile, DEFAULT_PROFILE } from '../../../router/scheduling/plugins.ts';
import { DEFAULT_ADMISSION } from '../../../router/admission/controller.ts';
import { simulate } from '../../bench/cluster/virtual-cluster.ts';
import { sharedPrefixWorkload } from '../../bench/cluster/workloads.ts';
import { mulberry32 } from '../../sim/vllm/text.ts';

// A virtual-time run must give the same numbers for the same seeds (issue 19 item 1).
function once() {
  const reqs = sharedPrefixWorkload(300, 400, 10, 512, 64, 32, 7);
  const { results, endMs } = simulate(reqs, {
    speeds: [1, 1, 0.6, 0.3],
    profile: buildProfile(DEFAULT_PROFILE, 2_000, mulberry32(3)),
    admission: DEFAULT_ADMISSION,
  });
  // Wall-clock measurements (decision and refusal cost) are left out: they are not simulated.
  return { endMs, rs: results.map((r) => [r.req.id, r.node, r.ttftMs, r.e2eMs, r.refused?.code]) };
}

describe('virtual cluster determinism', () => {
  it('the same scenario and seeds give identical results twice', () => {
    const a = once();
    const b = once();
    assert.ok(a.rs.some((r) => r[2] !== undefined));
    assert.deepEqual(a, b);
  });
});
