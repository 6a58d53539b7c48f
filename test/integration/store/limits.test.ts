// The limit store contract, run against both implementations: memory (the embedded default) and
// real Redis (three clients standing in for three router replicas).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { LimitStore } from '../../../common/store/limits.ts';
import { MemoryLimitStore } from '../../../common/store/memory-limits.ts';
import { RedisLimitStore } from '../../../common/store/redis-limits.ts';
import { startRedis, type RedisProcess } from '../../helpers/redis.ts';

let redis: RedisProcess;
const open: LimitStore[] = [];
before(async () => {
  redis = await startRedis();
});
after(async () => {
  for (const s of open) await s.close();
  await redis?.stop();
});

const impls: { name: string; make: () => LimitStore[] }[] = [
  {
    name: 'memory',
    make: () => {
      const s = new MemoryLimitStore();
      return [s, s, s];
    },
  },
  {
    name: 'redis',
    make: () => {
      const s = [0, 1, 2].map(() => new RedisLimitStore(redis.url));
      open.push(...s);
      return s;
    },
  },
];

/** Redis clients connect asynchronously; a test waits for them like the router does at start. */
async function ready(stores: LimitStore[]): Promise<LimitStore[]> {
  await Promise.all(stores.map((s) => (s instanceof RedisLimitStore ? s.ready() : Promise.resolve())));
  return stores;
}

for (const impl of impls) {
  describe(`limit store: ${impl.name}`, () => {
    it('admits exactly the RPM limit out of 1000 concurrent attempts across three replicas', async () => {
      const replicas = await ready(impl.make());
      const key = `k-${randomUUID()}`;
      const results = await Promise.all(
        Array.from({ length: 1000 }, (_, i) =>
          replicas[i % 3]!.admit({ key, policy: { rpm: 100 }, tokens: 0, leaseId: `l${i}`, leaseTtlMs: 60_000 }),
        ),
      );
      const admitted = results.filter((r) => r.admitted).length;
      assert.equal(admitted, 100);
      const refused = results.find((r) => !r.admitted)!;
      assert.equal(refused.reason, 'requests');
      // One request refills every 600 ms at 100/min.
      assert.ok(refused.retryAfterMs > 0 && refused.retryAfterMs <= 600, `retry after ${refused.retryAfterMs}`);
      assert.equal(refused.requests?.limit, 100);
      assert.equal(refused.requests?.remaining, 0);
    });

    it('charges TPM at admission and reconciles with real usage at settle', async () => {
      const [s] = await ready(impl.make());
      const key = `k-${randomUUID()}`;
      const policy = { tpm: 1_000 };
      const a = await s!.admit({ key, policy, tokens: 900, leaseId: 'a', leaseTtlMs: 60_000 });
      assert.equal(a.admitted, true);
      assert.ok(a.tokens!.remaining <= 100);
      const b = await s!.admit({ key, policy, tokens: 500, leaseId: 'b', leaseTtlMs: 60_000 });
      assert.equal(b.admitted, false);
      assert.equal(b.reason, 'tokens');
      // The first request really used 200 tokens: refund 700.
      await s!.settle(key, 'a', policy, 200 - 900);
      const c = await s!.admit({ key, policy, tokens: 500, leaseId: 'c', leaseTtlMs: 60_000 });
      assert.equal(c.admitted, true, 'the refund made room');
    });

    it('holds a concurrency limit of 20 under 200 parallel attempts; release and expiry free leases', async () => {
      const replicas = await ready(impl.make());
      const key = `k-${randomUUID()}`;
      const policy = { maxConcurrent: 20 };
      const results = await Promise.all(
        Array.from({ length: 200 }, (_, i) => replicas[i % 3]!.admit({ key, policy, tokens: 0, leaseId: `l${i}`, leaseTtlMs: 400 })),
      );
      const held = results.map((r, i) => (r.admitted ? `l${i}` : undefined)).filter((x): x is string => x !== undefined);
      assert.equal(held.length, 20);
      assert.equal(results.find((r) => !r.admitted)!.reason, 'concurrency');
      await replicas[0]!.settle(key, held[0]!, policy, 0);
      assert.equal((await replicas[1]!.admit({ key, policy, tokens: 0, leaseId: 'after-release', leaseTtlMs: 400 })).admitted, true);
      assert.equal((await replicas[1]!.admit({ key, policy, tokens: 0, leaseId: 'still-full', leaseTtlMs: 400 })).admitted, false);
      // A crashed router never settles: its leases expire (400 ms TTL; a timer never fires early).
      await new Promise((r) => setTimeout(r, 500));
      const again = await Promise.all(
        Array.from({ length: 20 }, (_, i) => replicas[2]!.admit({ key, policy, tokens: 0, leaseId: `n${i}`, leaseTtlMs: 400 })),
      );
      assert.equal(again.filter((r) => r.admitted).length, 20);
    });

    it("renew keeps a long stream's lease past its first TTL", async () => {
      const [s] = await ready(impl.make());
      const key = `k-${randomUUID()}`;
      const policy = { maxConcurrent: 1 };
      // The renew must land within the first TTL: 600 ms into a 1 s lease leaves 400 ms for a busy
      // machine's timer lag (300/200 left 100 ms, too little for a loaded 2-core CI box).
      assert.equal((await s!.admit({ key, policy, tokens: 0, leaseId: 'long', leaseTtlMs: 1_000 })).admitted, true);
      await new Promise((r) => setTimeout(r, 600));
      await s!.renew(key, 'long', 1_000);
      await new Promise((r) => setTimeout(r, 600)); // 1.2 s after admission: past the first TTL
      assert.equal(
        (await s!.admit({ key, policy, tokens: 0, leaseId: 'other', leaseTtlMs: 1_000 })).admitted,
        false,
        'renewed lease still held',
      );
    });
  });
}

describe('limit store: redis down', () => {
  it('fails fast instead of hanging, and works again when Redis is back', async () => {
    const s = new RedisLimitStore(redis.url, { commandTimeoutMs: 300 });
    open.push(s);
    await s.ready();
    const key = `k-${randomUUID()}`;
    assert.equal((await s.admit({ key, policy: { rpm: 10 }, tokens: 0, leaseId: 'a', leaseTtlMs: 1_000 })).admitted, true);
    await redis.stop();
    const t0 = Date.now();
    await assert.rejects(s.admit({ key, policy: { rpm: 10 }, tokens: 0, leaseId: 'b', leaseTtlMs: 1_000 }));
    assert.ok(Date.now() - t0 < 1_000, 'refused within the command timeout');
    await redis.restart();
    const ok = await (async () => {
      for (let i = 0; i < 50; i++) {
        try {
          return await s.admit({ key, policy: { rpm: 10 }, tokens: 0, leaseId: 'c', leaseTtlMs: 1_000 });
        } catch {
          await new Promise((r) => setTimeout(r, 100));
        }
      }
      return undefined;
    })();
    assert.equal(ok?.admitted, true, 'recovered by itself');
  });
});
