// The Redis response store against a real redis-server: round trip, TTL, a stored record another
// router replica reads, and a down Redis failing fast (the cache treats that as a miss).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startRedis, type RedisProcess } from '../../helpers/redis.ts';
import { RedisResponseStore } from '../../../router/cache/store.ts';
import { ResponseRecorder } from '../../../router/http/recorded-response.ts';
import { waitFor } from '../../helpers/stack.ts';

let redis: RedisProcess;
before(async () => {
  redis = await startRedis();
});
after(async () => {
  await redis?.stop();
});

test('records round-trip between two replicas and expire', async () => {
  const a = new RedisResponseStore(redis.url, 1_000);
  const b = new RedisResponseStore(redis.url, 1_000);
  await Promise.all([a.ready(3_000), b.ready(3_000)]);
  const rec = new ResponseRecorder('chat.completion')
    .frame('{"id":"x","choices":[]}')
    .usage({ promptTokens: 2, completionTokens: 3 })
    .finish();
  await a.set('k1', rec, 300);
  assert.deepEqual(await b.get('k1'), rec);
  assert.equal(await b.get('other'), undefined);
  await waitFor(async () => (await b.get('k1')) === undefined, 5_000, 50);
  await a.close();
  await b.close();
});

test('a Redis that is gone fails fast', async () => {
  const gone = new RedisResponseStore('redis://127.0.0.1:1', 200);
  const t = Date.now();
  await assert.rejects(gone.get('k'));
  assert.ok(Date.now() - t < 2_000);
  await gone.close();
});
