// The pieces of idempotency that need no processes: the body hash ignores key order but not
// content or route, key validation, the memory store's claim states (owner, running, done,
// conflict, expiry after the TTL, takeover after the owner's lease) and the live feed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { FastifyRequest } from 'fastify';
import { bodyHash, idempotencyKeyOf, recordId } from '../../../router/idempotency/key.ts';
import { MemoryIdempotencyStore } from '../../../router/idempotency/memory-store.ts';
import { Feed, type LiveFrame } from '../../../router/idempotency/feed.ts';
import { ResponseRecorder } from '../../../router/http/recorded-response.ts';
import { ApiError } from '../../../common/errors.ts';

test('the body hash ignores key order and formatting, not content or route', () => {
  const a = bodyHash('CHAT_COMPLETIONS', { model: 'm', messages: [{ role: 'user', content: 'hi' }], max_tokens: 3 });
  const b = bodyHash('CHAT_COMPLETIONS', JSON.parse('{ "max_tokens": 3, "messages": [{"content": "hi", "role": "user"}], "model": "m" }'));
  assert.equal(a, b);
  assert.notEqual(a, bodyHash('CHAT_COMPLETIONS', { model: 'm', messages: [{ role: 'user', content: 'hi!' }], max_tokens: 3 }));
  assert.notEqual(a, bodyHash('COMPLETIONS', { model: 'm', messages: [{ role: 'user', content: 'hi' }], max_tokens: 3 }));
  assert.notEqual(
    a,
    bodyHash('CHAT_COMPLETIONS', { model: 'm', messages: [{ role: 'user', content: 'hi' }], max_tokens: 3, stream: true }),
  );
  assert.notEqual(recordId('t:a', 'k1'), recordId('t:b', 'k1'), 'scopes separate the same key');
});

test('idempotency keys: absent, valid, or a 400', () => {
  const req = (v?: string) => ({ headers: v === undefined ? {} : { 'idempotency-key': v } }) as unknown as FastifyRequest;
  assert.equal(idempotencyKeyOf(req()), undefined);
  assert.equal(idempotencyKeyOf(req('abc-123_XYZ')), 'abc-123_XYZ');
  for (const bad of ['', 'with space', 'x'.repeat(256), 'ünicode']) {
    assert.throws(
      () => idempotencyKeyOf(req(bad)),
      (e: unknown) => e instanceof ApiError && e.status === 400 && e.code === 'invalid_idempotency_key',
    );
  }
});

test('memory store: owner, running, done, conflict, expiry and takeover', async () => {
  let now = 1_000_000;
  const store = new MemoryIdempotencyStore({ ttlMs: 10_000, leaseMs: 2_000 }, () => now);
  try {
    assert.deepEqual(await store.claim('id', 'h1', 'a1'), { kind: 'owner', attempt: 'a1', takenOver: false });
    assert.deepEqual(await store.claim('id', 'h1', 'a2'), { kind: 'running', attempt: 'a1' });
    assert.deepEqual(await store.claim('id', 'h2', 'a3'), { kind: 'conflict' });
    // The owner renews: no takeover while it is alive.
    now += 1_500;
    assert.equal(await store.renew('id', 'a1'), true);
    now += 1_500;
    assert.equal((await store.claim('id', 'h1', 'a4')).kind, 'running');
    // It stops renewing (crashed): the next repeat takes over; the old owner can no longer renew.
    now += 2_500;
    assert.deepEqual(await store.claim('id', 'h1', 'a5'), { kind: 'owner', attempt: 'a5', takenOver: true });
    assert.equal(await store.renew('id', 'a1'), false);
    const record = new ResponseRecorder('chat.completion').json('{"id":"x"}').finish();
    await store.complete('id', 'a1', record); // a stale owner cannot complete
    assert.equal((await store.claim('id', 'h1', 'a6')).kind, 'running');
    await store.complete('id', 'a5', record);
    assert.deepEqual(await store.claim('id', 'h1', 'a7'), { kind: 'done', record });
    // Expired after the TTL (counted from completion): the key is new again.
    now += 10_001;
    assert.deepEqual(await store.claim('id', 'h2', 'a8'), { kind: 'owner', attempt: 'a8', takenOver: false });
    // A released (failed) attempt frees the key at once.
    await store.release('id', 'a8');
    assert.equal((await store.claim('id', 'h1', 'a9')).kind, 'owner');
  } finally {
    await store.close();
  }
});

test('feed: followers see every frame in order, from anywhere, and stop at the terminal frame', async () => {
  const feed = new Feed();
  feed.push({ t: 'h', stream: true, status: 200, headers: {} });
  const early = (async () => {
    const got: LiveFrame[] = [];
    for await (const f of feed.read()) got.push(f);
    return got;
  })();
  feed.push({ t: 'd', d: '1' });
  await new Promise((r) => setImmediate(r));
  feed.push({ t: 'd', d: '2' });
  feed.push({ t: 'x' });
  feed.push({ t: 'd', d: 'after the end' });
  const late: LiveFrame[] = [];
  for await (const f of feed.read(undefined, 2)) late.push(f);
  assert.deepEqual(
    (await early).map((f) => f.t),
    ['h', 'd', 'd', 'x'],
  );
  assert.deepEqual(late, [{ t: 'd', d: '2' }, { t: 'x' }]);
  // A follower whose client left stops waiting.
  const open = new Feed();
  const gone = new AbortController();
  const reading = (async () => {
    const got: LiveFrame[] = [];
    for await (const f of open.read(gone.signal)) got.push(f);
    return got;
  })();
  gone.abort();
  assert.deepEqual(await reading, []);
});
