// Issue 17: the memory idempotency store kept every full answer for 24 h with no cap. Now it is
// bounded by bytes (least recently used evicted first), per tenant (a tenant evicts its own
// answers before anyone else's), and an answer over the per-entry cap is served but not kept.
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import assert from 'node:assert/strict';
import { MemoryIdempotencyStore } from '../../../router/idempotency/memory-store.ts';
import { ResponseRecorder, recordSize } from '../../../router/http/recorded-response.ts';
import type { EvictionReason } from '../../../router/idempotency/store.ts';

const answer = (chars: number) => new ResponseRecorder('chat.completion').json(`{"x":"${'a'.repeat(chars)}"}`).finish();

async function put(store: MemoryIdempotencyStore, id: string, scope: string, chars: number, flat = false): Promise<boolean> {
  assert.equal((await store.claim(id, 'h', `a-${id}`, scope)).kind, 'owner');
  // `flat`: text that really takes its size in memory ('a'.repeat is a shared rope in V8).
  const rec = flat
    ? new ResponseRecorder('chat.completion')
        .json(
          randomBytes(Math.ceil(chars / 2))
            .toString('hex')
            .slice(0, chars),
        )
        .finish()
    : answer(chars);
  return store.complete(id, `a-${id}`, rec);
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

test('memory stays bounded: 512 MiB of answers offered to a 32 MiB store', async () => {
  const store = new MemoryIdempotencyStore({ ttlMs: 60_000, leaseMs: 5_000, maxBytes: 32 * 1024 * 1024, maxTenantShare: 1 });
  try {
    // A collection before each sample, so RSS shows what is retained, not garbage not yet collected.
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    gc();
    const rss0 = process.memoryUsage().rss;
    let peak = rss0;
    for (let i = 0; i < 2_048; i++) {
      // 256 KiB each, a distinct string per answer (as generated text is).
      await put(store, `big${i}`, `t:${i % 4}`, 256 * 1024 - 256, true);
      if (i % 64 === 63) {
        gc();
        peak = Math.max(peak, process.memoryUsage().rss);
      }
    }
    const grown = (peak - rss0) / 2 ** 20;
    assert.ok(store.bytes() <= 32 * 1024 * 1024);
    // Unbounded, this would hold all 512 MiB; bounded, about the stored 32 MiB.
    assert.ok(grown < 128, `RSS grew ${grown.toFixed(0)} MiB`);
    console.log(
      `# rss ${(rss0 / 2 ** 20).toFixed(0)} -> peak ${(peak / 2 ** 20).toFixed(0)} MiB; stored ${(store.bytes() / 2 ** 20).toFixed(1)} MiB in ${store.size} answers`,
    );
  } finally {
    await store.close();
  }
});
