// Batch data in Redis is metadata only and every key expires: a real redis-server, the Redis
// store, the service and the worker (its items answered by a stub) run an upload and a batch to
// completion with a retry, a dead letter and a requeue; then every key is under `icp:batch:`, has
// a TTL, and none holds the file's bytes (they are on disk under dataDir).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { Redis } from 'ioredis';
import { startRedis, type RedisProcess } from '../../helpers/redis.ts';
import { waitFor } from '../../helpers/stack.ts';
import { RedisBatchStore } from '../../../router/batch/redis-store.ts';
import { BatchService, longestWindowMs } from '../../../router/batch/service.ts';
import { BatchRunner } from '../../../router/batch/runner.ts';
import { batchConfigSchema } from '../../../router/batch/config.ts';
import { silentLogger } from '../../../common/logger.ts';

const MARKER = 'BYTES-OF-THE-UPLOADED-FILE';

describe('batch data in Redis: metadata only, every key with a TTL', () => {
  let redis: RedisProcess;
  let client: Redis;
  const dir = mkdtempSync(join(tmpdir(), 'icp-batch-redis-keys-'));

  before(async () => {
    redis = await startRedis();
    client = new Redis(redis.url);
  });
  after(async () => {
    client?.disconnect();
    await redis?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('runs a batch to completion, then every key is icp:batch:*, expires, and holds no file bytes', async () => {
    const cfg = batchConfigSchema.parse({ dataDir: dir, pollMs: 10, retryBaseMs: 5, retryMaxMs: 10, maxAttempts: 2, yieldMs: 5 });
    const retentionMs = cfg.batchRetentionSeconds * 1000;
    const store = new RedisBatchStore(redis.url, dir, { itemTtlMs: longestWindowMs(cfg) + retentionMs, retentionMs });
    await store.ready(5_000);
    const svc = new BatchService(store, cfg);
    const lines = Array.from({ length: 30 }, (_, i) =>
      JSON.stringify({
        custom_id: `r-${i}`,
        method: 'POST',
        url: '/v1/chat/completions',
        body: { model: 'm', messages: [{ role: 'user', content: i === 7 ? `FAIL ${MARKER}` : `${MARKER} ${i}` }] },
      }),
    );
    const file = await svc.receiveUpload('t', { filename: 'in.jsonl', purpose: 'batch', content: Readable.from([lines.join('\n')]) });
    const batch = await svc.createBatch('t', null, { input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' });
    let failNext = true;
    const runner = new BatchRunner(
      store,
      cfg,
      async (item) => {
        const failing = JSON.stringify(item.body).includes('FAIL') && failNext;
        return failing
          ? { status: 500, requestId: 'q', body: { error: { message: 'boom', type: 'server_error', param: null, code: null } } }
          : { status: 200, requestId: 'q', body: { object: 'chat.completion', usage: { prompt_tokens: 1, completion_tokens: 1 } } };
      },
      silentLogger,
      'owner-1',
      undefined,
    );
    runner.start();
    try {
      await waitFor(async () => (await svc.getBatch('t', batch.id)).status === 'completed', 20_000);
      assert.equal((await svc.deadLetters(batch.id)).data.length, 1);
      failNext = false;
      assert.equal((await svc.requeue(batch.id)).requeued, 1);
      await waitFor(async () => {
        const b = await svc.getBatch('t', batch.id);
        return b.status === 'completed' && b.request_counts.completed === 30;
      }, 20_000);
    } finally {
      await runner.close(1_000);
    }
    const done = await svc.getBatch('t', batch.id);
    assert.ok(done.output_file_id);
    const out = await svc.getFile('t', done.output_file_id);
    assert.ok(out.expires_at && out.expires_at > out.created_at, 'output files expire by default');

    const keys = await client.keys('*');
    assert.ok(keys.length > 5, keys.join(' '));
    for (const key of keys) {
      assert.match(key, /^icp:batch:/);
      const ttl = await client.pttl(key);
      assert.ok(ttl > 0, `${key} has a TTL (${ttl})`);
      const type = await client.type(key);
      const values =
        type === 'string'
          ? [await client.get(key)]
          : type === 'hash'
            ? Object.values(await client.hgetall(key))
            : type === 'zset'
              ? await client.zrange(key, '0', '-1')
              : await client.smembers(key);
      // Result lines quote the request's answer, never the input file itself.
      for (const v of values) assert.ok(!v?.includes(`"content":"${MARKER}`), `${key} holds no input bytes`);
    }
    // The bytes are on disk: input and output files readable as streams.
    let n = 0;
    for await (const c of await svc.fileContent('t', file.id)) n += (c as Buffer).length;
    assert.equal(n, Buffer.byteLength(lines.join('\n')));
    await store.close();
  });
});
