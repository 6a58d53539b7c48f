// File metadata, jobs and item state in Redis: shared by every router replica and kept across
// restarts. Each item transition is one Lua script, so "the lease holder writes the line and
// removes the item from the scheduling set" is atomic (see store.ts).
//
// Bounded: no file bytes and no parsed items here (they are on disk under dataDir, a volume the
// replicas share: blobs.ts, item-file.ts), only records and result lines, all under `icp:batch:`,
// and every key has a TTL: a file's record its expires_at (+1 day; the sweeper deletes it first),
// a job's record and item state its completion window plus the retention, the indexes the
// longest of those, refreshed on every write. Quotas (per-tenant files and bytes, items per
// batch) bound what the TTLs let live at once.
import type { Redis } from 'ioredis';
import { connectRedis, redisReady } from '../../common/store/redis-connection.ts';
import { BlobStore } from './blobs.ts';
import { ItemFiles } from './item-file.ts';
import type { BatchStore } from './store.ts';
import type { BatchRecord, Claim, DeadLetter, ItemCounts, ItemSpec, StoredFile } from './types.ts';

const P = 'icp:batch:';
const k = {
  file: (id: string) => `${P}f:${id}`,
  tenantFiles: (t: string) => `${P}tf:${t}`,
  /** Every file by expires_at (unix s): what the sweeper deletes. */
  fileExpiry: `${P}fexp`,
  batch: (id: string) => `${P}b:${id}`,
  tenantBatches: (t: string) => `${P}tb:${t}`,
  /** Every job by the end of its completion window (ms): its items file is deleted after the retention. */
  batchExpiry: `${P}bexp`,
  active: `${P}active`,
  ready: (id: string) => `${P}b:${id}:ready`,
  leases: (id: string) => `${P}b:${id}:leases`,
  attempts: (id: string) => `${P}b:${id}:att`,
  output: (id: string) => `${P}b:${id}:out`,
  errors: (id: string) => `${P}b:${id}:err`,
  dead: (id: string) => `${P}b:${id}:dead`,
  lock: (name: string) => `${P}lock:${name}`,
};

// Keys a script may create get the item TTL (the script's last argument) unless they have one.
const KEEP = `local function keep(key) if redis.call('PTTL', key) == -1 then redis.call('PEXPIRE', key, ARGV[#ARGV]) end end\n`;

const SCRIPTS = {
  batchClaim: {
    numberOfKeys: 3,
    lua: `
    local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
    local out = {}
    for _, idx in ipairs(ids) do
      local token = ARGV[4] .. ':' .. idx .. ':' .. ARGV[1]
      redis.call('ZADD', KEYS[1], ARGV[3], idx)
      redis.call('HSET', KEYS[2], idx, token)
      keep(KEYS[2])
      out[#out + 1] = idx
      out[#out + 1] = token
      out[#out + 1] = redis.call('HGET', KEYS[3], idx) or '0'
    end
    return out`,
  },
  batchRenew: {
    numberOfKeys: 2,
    lua: `
    if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then return 0 end
    return redis.call('ZADD', KEYS[1], 'XX', 'CH', ARGV[3], ARGV[1]) >= 0 and 1 or 0`,
  },
  batchFinish: {
    numberOfKeys: 4,
    lua: `
    if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then return 0 end
    if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
    redis.call('ZREM', KEYS[1], ARGV[1])
    redis.call('HDEL', KEYS[2], ARGV[1])
    redis.call('HSET', KEYS[3], ARGV[1], ARGV[3])
    keep(KEYS[3])
    if ARGV[4] ~= '' then redis.call('HSET', KEYS[4], ARGV[1], ARGV[4]); keep(KEYS[4]) end
    return 1`,
  },
  batchRetry: {
    numberOfKeys: 3,
    lua: `
    if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then return 0 end
    if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
    redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
    redis.call('HDEL', KEYS[2], ARGV[1])
    if ARGV[4] == '1' then redis.call('HINCRBY', KEYS[3], ARGV[1], 1); keep(KEYS[3]) end
    return 1`,
  },
  batchCloseOne: {
    numberOfKeys: 3,
    lua: `
    if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
    redis.call('HDEL', KEYS[2], ARGV[1])
    redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
    keep(KEYS[3])
    return 1`,
  },
  batchRequeue: {
    numberOfKeys: 4,
    lua: `
    if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
    redis.call('HDEL', KEYS[2], ARGV[1])
    redis.call('HDEL', KEYS[3], ARGV[1])
    redis.call('ZADD', KEYS[4], ARGV[2], ARGV[1])
    keep(KEYS[4])
    return 1`,
  },
  batchUnlock: {
    numberOfKeys: 1,
    lua: `
    if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
    return 0`,
  },
} as const;

type Scripted = Redis & { [name in keyof typeof SCRIPTS]: (...args: (string | number)[]) => Promise<unknown> };

export class RedisBatchStore implements BatchStore {
  readonly kind = 'redis' as const;
  readonly blobs: BlobStore;
  readonly itemFiles: ItemFiles;
  private readonly redis: Scripted;
  /** A job's item keys live this long (the longest completion window plus the retention). */
  private readonly itemTtlMs: number;
  /** A finished job's record is kept this long after its completion window ends. */
  private readonly retentionMs: number;
  /** Index keys (tenant lists, expiry sets, the active set): longer than anything they index. */
  private readonly indexTtlMs: number;

  constructor(url: string, dataDir: string, ttl: { itemTtlMs: number; retentionMs: number }, commandTimeoutMs = 5_000) {
    this.blobs = new BlobStore(dataDir);
    this.itemFiles = new ItemFiles(dataDir);
    this.itemTtlMs = ttl.itemTtlMs;
    this.retentionMs = ttl.retentionMs;
    this.indexTtlMs = Math.max(ttl.itemTtlMs, 31 * 86_400_000) + 86_400_000;
    this.redis = connectRedis(url, commandTimeoutMs) as Scripted;
    for (const [name, s] of Object.entries(SCRIPTS)) this.redis.defineCommand(name, { numberOfKeys: s.numberOfKeys, lua: KEEP + s.lua });
  }

  ready(timeoutMs: number): Promise<void> {
    return redisReady(this.redis, timeoutMs);
  }

  async putFile(file: StoredFile): Promise<void> {
    const nowMs = Date.now();
    // The sweeper deletes an expired file (bytes too) through fileExpiry; the TTL is the backstop.
    const ttl = file.expires_at ? Math.max(60_000, file.expires_at * 1000 - nowMs + 86_400_000) : this.indexTtlMs;
    await this.redis
      .multi()
      .set(k.file(file.id), JSON.stringify(file), 'PX', ttl)
      .zadd(k.tenantFiles(file.tenant), file.created_at, file.id)
      .pexpire(k.tenantFiles(file.tenant), this.indexTtlMs)
      .zadd(k.fileExpiry, file.expires_at ?? Math.floor((nowMs + this.indexTtlMs) / 1000), file.id)
      .pexpire(k.fileExpiry, this.indexTtlMs)
      .exec();
  }

  async getFile(id: string): Promise<StoredFile | undefined> {
    const v = await this.redis.get(k.file(id));
    return v ? (JSON.parse(v) as StoredFile) : undefined;
  }

  async listFiles(tenant: string): Promise<StoredFile[]> {
    const ids = await this.redis.zrevrange(k.tenantFiles(tenant), 0, -1);
    if (!ids.length) return [];
    const vals = await this.redis.mget(ids.map(k.file));
    const gone = ids.filter((_, i) => vals[i] === null);
    if (gone.length) await this.redis.zrem(k.tenantFiles(tenant), ...gone);
    return vals.filter((v): v is string => v !== null).map((v) => JSON.parse(v) as StoredFile);
  }

  async deleteFile(id: string): Promise<boolean> {
    const f = await this.getFile(id);
    const m = this.redis.multi().del(k.file(id)).zrem(k.fileExpiry, id);
    if (f) m.zrem(k.tenantFiles(f.tenant), id);
    const r = (await m.exec()) ?? [];
    await this.blobs.delete(id);
    return Boolean(f) || r.some(([, v]) => Number(v) > 0);
  }

  expiredFiles(nowSec: number, max: number): Promise<string[]> {
    return this.redis.zrangebyscore(k.fileExpiry, '-inf', nowSec, 'LIMIT', 0, max);
  }

  async putBatch(batch: BatchRecord): Promise<void> {
    const ttl = Math.max(3_600_000, batch.expiresAtMs + this.retentionMs - Date.now());
    await this.redis
      .multi()
      .set(k.batch(batch.id), JSON.stringify(batch), 'PX', ttl)
      .zadd(k.tenantBatches(batch.tenant), batch.created_at, batch.id)
      .pexpire(k.tenantBatches(batch.tenant), this.indexTtlMs)
      .zadd(k.batchExpiry, batch.expiresAtMs, batch.id)
      .pexpire(k.batchExpiry, this.indexTtlMs)
      .exec();
  }

  async getBatch(id: string): Promise<BatchRecord | undefined> {
    const v = await this.redis.get(k.batch(id));
    return v ? (JSON.parse(v) as BatchRecord) : undefined;
  }

  async listBatches(tenant: string): Promise<BatchRecord[]> {
    const ids = await this.redis.zrevrange(k.tenantBatches(tenant), 0, -1);
    if (!ids.length) return [];
    const vals = await this.redis.mget(ids.map(k.batch));
    const gone = ids.filter((_, i) => vals[i] === null);
    if (gone.length) await this.redis.zrem(k.tenantBatches(tenant), ...gone);
    return vals.filter((v): v is string => v !== null).map((v) => JSON.parse(v) as BatchRecord);
  }

  activeBatches(): Promise<string[]> {
    return this.redis.smembers(k.active);
  }

  async setActive(id: string, active: boolean): Promise<void> {
    if (active) await this.redis.multi().sadd(k.active, id).pexpire(k.active, this.indexTtlMs).exec();
    else await this.redis.srem(k.active, id);
  }

  expiredBatches(cutoffMs: number, max: number): Promise<string[]> {
    return this.redis.zrangebyscore(k.batchExpiry, '-inf', cutoffMs, 'LIMIT', 0, max);
  }

  async deleteBatch(id: string): Promise<void> {
    const b = await this.getBatch(id);
    const m = this.redis
      .multi()
      .del(k.batch(id), k.ready(id), k.leases(id), k.attempts(id), k.output(id), k.errors(id), k.dead(id))
      .zrem(k.batchExpiry, id)
      .srem(k.active, id);
    if (b) m.zrem(k.tenantBatches(b.tenant), id);
    await m.exec();
    await this.itemFiles.delete(id);
  }

  async initItems(batchId: string, count: number, now: number): Promise<void> {
    const m = this.redis.multi();
    for (let i = 0; i < count; i += 1_000) {
      const n = Math.min(1_000, count - i);
      m.zadd(k.ready(batchId), ...Array.from({ length: n }, (_, j) => [now, String(i + j)]).flat());
    }
    m.pexpire(k.ready(batchId), this.itemTtlMs);
    await m.exec();
  }

  getItem(batchId: string, index: number): Promise<ItemSpec | undefined> {
    return this.itemFiles.get(batchId, index);
  }

  release(batchId: string): void {
    this.itemFiles.release(batchId);
  }

  async claim(batchId: string, max: number, now: number, leaseMs: number, owner: string): Promise<Claim[]> {
    const r = (await this.redis.batchClaim(
      k.ready(batchId),
      k.leases(batchId),
      k.attempts(batchId),
      now,
      max,
      now + leaseMs,
      owner,
      this.itemTtlMs,
    )) as string[];
    const out: Claim[] = [];
    for (let i = 0; i < r.length; i += 3) out.push({ index: Number(r[i]), token: r[i + 1]!, attempts: Number(r[i + 2]) });
    return out;
  }

  async renew(batchId: string, claim: Claim, until: number): Promise<boolean> {
    return (await this.redis.batchRenew(k.ready(batchId), k.leases(batchId), claim.index, claim.token, until, this.itemTtlMs)) === 1;
  }

  async finish(batchId: string, claim: Claim, to: 'output' | 'errors', line: string): Promise<boolean> {
    return (
      (await this.redis.batchFinish(
        k.ready(batchId),
        k.leases(batchId),
        to === 'output' ? k.output(batchId) : k.errors(batchId),
        k.dead(batchId),
        claim.index,
        claim.token,
        line,
        '',
        this.itemTtlMs,
      )) === 1
    );
  }

  async retry(batchId: string, claim: Claim, at: number, countAttempt: boolean): Promise<boolean> {
    return (
      (await this.redis.batchRetry(
        k.ready(batchId),
        k.leases(batchId),
        k.attempts(batchId),
        claim.index,
        claim.token,
        at,
        countAttempt ? '1' : '0',
        this.itemTtlMs,
      )) === 1
    );
  }

  async deadLetter(batchId: string, claim: Claim, line: string, dead: DeadLetter): Promise<boolean> {
    return (
      (await this.redis.batchFinish(
        k.ready(batchId),
        k.leases(batchId),
        k.errors(batchId),
        k.dead(batchId),
        claim.index,
        claim.token,
        line,
        JSON.stringify(dead),
        this.itemTtlMs,
      )) === 1
    );
  }

  async closeRemaining(batchId: string, lineFor: (index: number) => Promise<string>): Promise<number> {
    const ids = await this.redis.zrange(k.ready(batchId), '0', '-1');
    let n = 0;
    // In slices, so the lines held at once stay few.
    for (let i = 0; i < ids.length; i += 500) {
      const slice = ids.slice(i, i + 500);
      const lines = await Promise.all(slice.map((id) => lineFor(Number(id))));
      const p = this.redis.pipeline();
      // Queued on the pipeline: each command's result comes back from exec() below.
      slice.forEach((id, j) => {
        void (p as unknown as Scripted).batchCloseOne(
          k.ready(batchId),
          k.leases(batchId),
          k.errors(batchId),
          id,
          lines[j]!,
          this.itemTtlMs,
        );
      });
      const res = (await p.exec()) ?? [];
      n += res.filter(([err, v]) => !err && v === 1).length;
    }
    return n;
  }

  async dropRemaining(batchId: string): Promise<number> {
    const [[, n]] = (await this.redis.multi().zcard(k.ready(batchId)).del(k.ready(batchId), k.leases(batchId)).exec()) as [
      [unknown, number],
    ];
    return n;
  }

  async counts(batchId: string): Promise<ItemCounts> {
    const r =
      (await this.redis.multi().zcard(k.ready(batchId)).hlen(k.output(batchId)).hlen(k.errors(batchId)).hlen(k.dead(batchId)).exec()) ?? [];
    const [pending, output, errors, dead] = r.map(([, v]) => Number(v));
    return { pending: pending!, output: output!, errors: errors!, dead: dead! };
  }

  async results(batchId: string, which: 'output' | 'errors'): Promise<Map<number, string>> {
    const h = await this.redis.hgetall(which === 'output' ? k.output(batchId) : k.errors(batchId));
    return new Map(Object.entries(h).map(([i, line]) => [Number(i), line]));
  }

  async deadLetters(batchId: string): Promise<DeadLetter[]> {
    const h = await this.redis.hgetall(k.dead(batchId));
    return Object.values(h)
      .map((v) => JSON.parse(v) as DeadLetter)
      .sort((a, b) => a.index - b.index);
  }

  async requeue(batchId: string, now: number, indexes?: number[]): Promise<number> {
    const which = indexes ?? (await this.redis.hkeys(k.dead(batchId))).map(Number);
    let n = 0;
    for (const idx of which)
      n += Number(
        await this.redis.batchRequeue(k.dead(batchId), k.errors(batchId), k.attempts(batchId), k.ready(batchId), idx, now, this.itemTtlMs),
      );
    return n;
  }

  async lock(name: string, ttlMs: number, owner: string): Promise<boolean> {
    if ((await this.redis.set(k.lock(name), owner, 'PX', ttlMs, 'NX')) === 'OK') return true;
    if ((await this.redis.get(k.lock(name))) !== owner) return false;
    await this.redis.pexpire(k.lock(name), ttlMs);
    return true;
  }

  async unlock(name: string, owner: string): Promise<void> {
    await this.redis.batchUnlock(k.lock(name), owner);
  }

  async close(): Promise<void> {
    this.redis.disconnect();
  }
}
