// The capacity history in a real Redis (controlPlane.capacity.store.kind: redis): it survives a
// restart (a new store and History on the same key), compaction replaces the list atomically with
// the downsampled set, and an unreachable Redis fails the load loudly instead of starting empty.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { History } from '../../../control-plane/capacity/history.ts';
import { RedisHistoryStore } from '../../../control-plane/capacity/redis-store.ts';
import { startRedis, type RedisProcess } from '../../helpers/redis.ts';
import { sample } from '../../unit/capacity/capacity-fixtures.ts';

const opts = { rawRetentionMs: 120_000, bucketMs: 60_000, bucketRetentionMs: 600_000, compactEveryMs: 3_600_000 };

describe('capacity history in Redis', () => {
  let redis: RedisProcess;
  let probe: Redis;
  before(async () => {
    redis = await startRedis();
    probe = new Redis(redis.url);
  });
  after(async () => {
    probe?.disconnect();
    await redis?.stop();
  });

  it('survives a restart, and compaction rewrites the list to the retained, downsampled set', async () => {
    const key = 'test:history:1';
    let now = 0;
    const h1 = new History(new RedisHistoryStore(redis.url, key), opts, () => now);
    await h1.load();
    for (let t = 0; t < 60_000; t += 10_000) {
      now = t;
      await h1.add([sample(t, 'a', { running: t / 10_000 }), sample(t, 'b')]);
    }
    await h1.close();
    assert.equal(await probe.llen(key), 12, 'each sample appended as one list entry');

    now = 61_000;
    const h2 = new History(new RedisHistoryStore(redis.url, key), opts, () => now);
    await h2.load();
    assert.equal(h2.rawSamples(0).length, 12, 'every sample came back after the restart');
    assert.equal(h2.latest().get('a')!.running, 5);
    now = 200_000;
    await h2.maintain(true);
    await h2.close();
    const stored = (await probe.lrange(key, 0, -1)).map((l) => JSON.parse(l) as { kind: string; node: string; mean?: { running: number } });
    assert.deepEqual(stored.map((r) => r.kind).sort(), ['bucket', 'bucket'], 'raw samples past retention were dropped, their buckets kept');
    assert.equal(stored.find((r) => r.node === 'a')!.mean!.running, 2.5);
    assert.deepEqual(await probe.keys('test:history:1:rewrite:*'), [], 'no temporary key left behind');

    const h3 = new History(new RedisHistoryStore(redis.url, key), opts, () => now);
    await h3.load();
    assert.equal(h3.bucketRecords(0).length, 2);
    await h3.close();
  });

  it('an unreachable Redis fails the load (the control plane does not start on an empty history)', async () => {
    const dead = await startRedis();
    await dead.stop();
    const store = new RedisHistoryStore(dead.url, 'test:history:2', 200);
    await assert.rejects(new History(store, opts, () => 0).load(), /redis not reachable|ECONNREFUSED|Connection is closed/);
    await store.close();
  });
});
