// CI's short chaos run: every scenario under test/chaos/scenarios in short mode, one after the
// other. The promise: no request lost, none answered twice, no process crashed, and whatever each
// scenario checks itself (its violations). The figures go to the test output, not the docs
// (`npm run chaos` regenerates docs/reliability.md).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { loadScenarios, runScenario, tableRow } from './run.ts';
import { chaosAudit } from './secrets.ts';

const scenarios = await loadScenarios();

describe('chaos (short)', () => {
  it('finds the scenarios', () => {
    assert.ok(scenarios.length >= 3, `scenarios: ${scenarios.map((s) => s.name).join(', ')}`);
  });

  for (const s of scenarios) {
    it(`${s.name}: nothing lost or duplicated, no crash`, { timeout: 900_000 }, async () => {
      const r = await runScenario(s, { mode: 'short' });
      console.log(tableRow(r));
      for (const n of r.notes ?? []) console.log(`  note: ${n}`);
      assert.deepEqual(r.violations ?? [], [], 'the scenario ran and kept its own promises');
      // A scenario this machine cannot host (network namespaces) says so and sends nothing.
      const notRun = r.sent === 0 && (r.notes ?? []).some((n) => n.startsWith('not run on this machine:'));
      if (!notRun) {
        assert.ok(r.sent > 0, 'load was sent');
        assert.ok(r.completed > 0, 'some requests completed');
      }
      assert.equal(r.lost, 0, `lost: ${(r.notes ?? []).join('; ')}`);
      assert.equal(r.duplicated, 0, 'duplicated');
      assert.deepEqual(r.crashed ?? [], [], 'crashed processes');
    });
  }

  it('no key, token or prompt in anything the processes wrote or exposed', () => {
    const audit = chaosAudit.check();
    assert.ok(audit.linesScanned > 0, 'the scenarios gave the audit their logs');
    assert.deepEqual(audit.hits, []);
  });
});
