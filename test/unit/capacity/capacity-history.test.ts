// History: downsampling into 1-minute buckets, retention, and surviving a restart through the
// file store (appends, atomic compaction, a torn last line).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, appendFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { History } from '../../../control-plane/capacity/history.ts';
import { FileHistoryStore, MemoryHistoryStore } from '../../../control-plane/capacity/store.ts';
import { sample } from './capacity-fixtures.ts';

const opts = { rawRetentionMs: 120_000, bucketMs: 60_000, bucketRetentionMs: 600_000, compactEveryMs: 1 };

describe('capacity history', () => {
  it('buckets finished minutes per node (means, max, worst verdict) and drops raw past retention', async () => {
    let now = 0;
    const h = new History(new MemoryHistoryStore(), opts, () => now);
    await h.load();
    for (let t = 0; t < 60_000; t += 10_000) {
      now = t;
      await h.add([
        sample(t, 'a', {
          running: t / 10_000,
          gpuVerdict: t === 30_000 ? 'DEGRADED' : 'HEALTHY',
          gpus: [
            {
              index: 0,
              uuid: 'u',
              name: 'A10G',
              verdict: t === 30_000 ? 'DEGRADED' : 'HEALTHY',
              reasons: t === 30_000 ? ['sw_thermal_slowdown'] : [],
              temperatureC: 60 + t / 10_000,
            },
          ],
        }),
        sample(t, 'b'),
      ]);
    }
    assert.equal(h.sizes.buckets, 0, 'the current minute is not bucketed yet');
    now = 61_000;
    await h.add([sample(61_000, 'a')]);
    const buckets = h.bucketRecords(0);
    assert.equal(buckets.length, 2);
    const a = buckets.find((b) => b.node === 'a')!;
    assert.equal(a.samples, 6);
    assert.equal(a.mean.running, 2.5);
    assert.equal(a.max.running, 5);
    assert.equal(a.gpuVerdict, 'DEGRADED');
    assert.deepEqual(a.gpuReasons, ['sw_thermal_slowdown']);
    assert.equal(a.gpus[0]!.temperatureC, 62.5);
    now = 200_000;
    await h.maintain(false);
    assert.equal(h.rawSamples(0).length, 0, 'raw samples past retention are gone');
    assert.equal(h.bucketRecords(0).length, 3, 'their buckets stay');
    now = 2_000_000;
    await h.maintain(false);
    assert.equal(h.bucketRecords(0).length, 0, 'buckets past retention are gone');
  });

  it('survives a restart through the file store; a torn last line is skipped', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cap-hist-'));
    try {
      let now = 1_000;
      const h1 = new History(new FileHistoryStore(dir), { ...opts, compactEveryMs: 3_600_000 }, () => now);
      await h1.load();
      await h1.add([sample(1_000, 'a'), sample(1_000, 'b')]);
      now = 3_000;
      await h1.add([sample(3_000, 'a')]);
      await h1.close();
      appendFileSync(join(dir, 'history.jsonl'), '{"kind":"raw","t":4000,"no');
      const h2 = new History(new FileHistoryStore(dir), opts, () => now);
      await h2.load();
      assert.equal(h2.rawSamples(0).length, 3);
      assert.equal(h2.latest().get('a')!.t, 3_000);
      // load compacts: the torn line is gone from the file
      const lines = readFileSync(join(dir, 'history.jsonl'), 'utf8').trim().split('\n');
      assert.equal(lines.length, 3);
      for (const l of lines) JSON.parse(l);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
