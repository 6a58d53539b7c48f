// Issue 17: the memory idempotency store kept every full answer for 24 h with no cap. Now it is
// bounded by bytes (least recently used evicted first), per tenant (a tenant evicts its own
// answers before anyone else's), and an answer over the per-entry cap is served but not kept.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryIdempotencyStore } from '../../../router/idempotency/memory-store.ts';
import { ResponseRecorder, recordSize } from '../../../router/http/recorded-response.ts';
import type { EvictionReason } from '../../../router/idempotency/store.ts';

const answer = (chars: number) => new ResponseRecorder('chat.completion').json(`{"x":"${'a'.repeat(chars)}"}`).finish();

async function put(store: MemoryIdempotencyStore, id: string, scope: string, chars: number): Promise<boolean> {
  assert.equal((await store.claim(id, 'h', `a-${id}`, scope)).kind, 'owner');
  return store.complete(id, `a-${id}`, answer(chars));
}

test('stored answers stay within maxBytes: least recently used evicted first, bytes accounted exactly', async () => {
  const evicted: EvictionReason[] = [];
  const size = recordSize(answer(1_000));
  const store = new MemoryIdempotencyStore(
    { ttlMs: 60_000, leaseMs: 5_000, maxBytes: size * 4, maxTenantShare: 1, onEvict: (r) => evicted.push(r) },
    () => 1_000,
  );
  try {
    for (const id of ['a', 'b', 'c', 'd']) assert.equal(await put(store, id, 't:1', 1_000), true);
    assert.equal(store.bytes(), size * 4);
    // A replay of `a` makes it the most recent: `b` is the one evicted next.
    assert.equal((await store.claim('a', 'h', 'x', 't:1')).kind, 'done');
    assert.equal(await put(store, 'e', 't:1', 1_000), true);
    assert.deepEqual(evicted, ['lru']);
    assert.equal(store.bytes(), size * 4);
    assert.equal((await store.claim('a', 'h', 'x2', 't:1')).kind, 'done');
    assert.equal((await store.claim('b', 'h', 'x3', 't:1')).kind, 'owner', 'evicted: the key is new again');
    // 10 000 more answers: memory stays at the bound.
    for (let i = 0; i < 10_000; i++) await put(store, `n${i}`, 't:1', 1_000);
    assert.ok(store.bytes() <= size * 4, `bytes ${store.bytes()}`);
    assert.ok(store.size <= 6, `entries ${store.size}`);
    assert.equal(evicted.length, 10_001);
  } finally {
    await store.close();
  }
});

test('one tenant cannot evict everyone: it is capped at its share and evicts its own answers', async () => {
  const evicted: EvictionReason[] = [];
  const size = recordSize(answer(1_000));
  const store = new MemoryIdempotencyStore(
    { ttlMs: 60_000, leaseMs: 5_000, maxBytes: size * 8, maxTenantShare: 0.25, onEvict: (r) => evicted.push(r) },
    () => 1_000,
  );
  try {
    for (const id of ['b1', 'b2']) assert.equal(await put(store, id, 't:b', 1_000), true);
    for (let i = 0; i < 1_000; i++) assert.equal(await put(store, `a${i}`, 't:a', 1_000), true);
    assert.equal(store.bytes('t:a'), size * 2, 'tenant a holds its share (2 of 8) and no more');
    assert.equal(store.bytes('t:b'), size * 2);
    assert.equal((await store.claim('b1', 'h', 'x', 't:b')).kind, 'done', "b's answers survived a's burst");
    assert.equal((await store.claim('b2', 'h', 'x', 't:b')).kind, 'done');
    assert.ok(evicted.every((r) => r === 'tenant_cap'));
    assert.equal(evicted.length, 998);
  } finally {
    await store.close();
  }
});

test('an answer over maxEntryBytes is not stored and its key is released; expiry gives bytes back', async () => {
  let now = 1_000;
  const store = new MemoryIdempotencyStore({ ttlMs: 10_000, leaseMs: 5_000, maxBytes: 1_000_000, maxEntryBytes: 5_000 }, () => now);
  try {
    assert.equal(await put(store, 'big', 't:1', 10_000), false);
    assert.equal(store.bytes(), 0);
    assert.equal((await store.claim('big', 'h', 'again', 't:1')).kind, 'owner', 'a repeat runs again');
    assert.equal(await put(store, 'small', 't:1', 100), true);
    assert.equal(store.bytes('t:1'), recordSize(answer(100)));
    now += 10_001;
    assert.equal((await store.claim('small', 'h', 'z', 't:1')).kind, 'owner');
    assert.equal(store.bytes(), 0);
    assert.equal(store.bytes('t:1'), 0);
  } finally {
    await store.close();
  }
});
