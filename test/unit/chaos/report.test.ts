// The chaos report's arithmetic: duplicates, recovery time, the summary row, and the doc table
// regeneration that keeps rows of scenarios not run this time.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { countDuplicates, recoveryTime, summarise } from '../../chaos/load.ts';
import { regenerateTable, TABLE_END, TABLE_START } from '../../chaos/run.ts';
import type { LoadRecord, Outcome } from '../../chaos/types.ts';

const ok: Outcome = { kind: 'completed' };
const rec = (id: number, startedAt: number, outcome: Outcome = ok, responseIds = [`c${id}`], ms = 100): LoadRecord => ({
  id,
  tenant: 't',
  lane: 'standard',
  stream: false,
  startedAt,
  endedAt: startedAt + ms,
  outcome,
  responseIds,
});

describe('chaos report', () => {
  it('counts a completion id seen on two requests, and two ids on one request', () => {
    assert.equal(countDuplicates([rec(1, 0), rec(2, 0), rec(3, 0)]), 0);
    assert.equal(countDuplicates([rec(1, 0, ok, ['x']), rec(2, 0, ok, ['x']), rec(3, 0)]), 2);
    assert.equal(countDuplicates([rec(1, 0, ok, ['a', 'b']), rec(2, 0)]), 1);
  });

  it('recovery is the start of the first 2 s window after the fault in which everything completed', () => {
    const bad: Outcome = { kind: 'typed_error', status: 503, type: 'server_error', code: 'no_capacity' };
    // Fault ends at 10 000; failures until 11 000, then only completions.
    const records = [...Array.from({ length: 60 }, (_, i) => rec(i, 10_000 + i * 100, 10_000 + i * 100 < 11_000 ? bad : ok))];
    assert.equal(recoveryTime(records, 10_000), 1_000);
    // Never recovers: a failure in every window.
    const never = Array.from({ length: 60 }, (_, i) => rec(i, 10_000 + i * 100, i % 5 === 0 ? bad : ok));
    assert.equal(recoveryTime(never, 10_000), null);
    // No request after the fault: cannot say it recovered.
    assert.equal(recoveryTime([rec(1, 5_000)], 10_000), null);
  });

  it('summarises outcomes, typed errors by status and code (SSE events as sse), p99 of completed, engine duplicates', () => {
    const records = [
      rec(1, 0, ok, ['a'], 100),
      rec(2, 0, ok, ['b'], 300),
      rec(3, 0, { kind: 'typed_error', status: 504, type: 'server_error', code: 'timeout' }),
      rec(4, 0, { kind: 'typed_error', status: 0, type: 'server_error', code: 'stream_interrupted' }),
      rec(5, 0, { kind: 'lost', why: 'past deadline' }),
    ];
    const r = summarise('s', records, 0, { engineGenerations: 7 });
    assert.equal(r.sent, 5);
    assert.equal(r.completed, 2);
    assert.equal(r.lost, 1);
    assert.deepEqual(r.typedErrors, { '504 server_error/timeout': 1, 'sse server_error/stream_interrupted': 1 });
    assert.equal(r.p99Ms, 300);
    assert.equal(r.duplicated, 2, '7 generations for 5 requests');
    assert.deepEqual(r.notes, ['lost x1: past deadline']);
  });

  it('regenerates the doc table between the markers, keeping rows of scenarios not run', () => {
    const doc = `# R\n\n${TABLE_START}\n| scenario | x |\n|---|---|\n| old-one | 1 |\n| again | 2 |\n${TABLE_END}\n\ntail\n`;
    const r = summarise('again', [rec(1, 0)], 0);
    const out = regenerateTable(doc, [r], 'short', new Date('2026-01-01T00:00:00Z'));
    assert.ok(out.startsWith('# R\n'));
    assert.ok(out.endsWith(`${TABLE_END}\n\ntail\n`));
    assert.match(out, /\| old-one \| 1 \|/);
    assert.match(out, /\| again \| 1 \| 1 \| 0 \| 0 \| 0 \| 100 ms \| never \| ok \|/);
    assert.doesNotMatch(out, /\| again \| 2 \|/);
    assert.throws(() => regenerateTable('# no markers', [r], 'short', new Date()));
  });
});
