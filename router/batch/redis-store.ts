// Files, jobs and item state in Redis: shared by every router replica and kept across restarts.
// Each item transition is one Lua script, so "the lease holder writes the line and removes the
// item from the scheduling set" is atomic (see store.ts).
import type { Redis } from 'ioredis';
import { connectRedis, redisReady } from '../../common/store/redis-connection.ts';
import type { BatchStore } from './store.ts';
import type { BatchRecord, Claim, DeadLetter, ItemCounts, ItemSpec, StoredFile } from './types.ts';

const P = 'icp:batch:';
const k = {
  file: (id: string) => `${P}f:${id}`,
  content: (id: string) => `${P}fc:${id}`,
  tenantFiles: (t: string) => `${P}tf:${t}`,
  batch: (id: string) => `${P}b:${id}`,
  tenantBatches: (t: string) => `${P}tb:${t}`,
  active: `${P}active`,
  items: (id: string) => `${P}b:${id}:items`,
  ready: (id: string) => `${P}b:${id}:ready`,
  leases: (id: string) => `${P}b:${id}:leases`,
  attempts: (id: string) => `${P}b:${id}:att`,
  output: (id: string) => `${P}b:${id}:out`,
  errors: (id: string) => `${P}b:${id}:err`,
  dead: (id: string) => `${P}b:${id}:dead`,
  lock: (name: string) => `${P}lock:${name}`,
};

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
    if ARGV[4] ~= '' then redis.call('HSET', KEYS[4], ARGV[1], ARGV[4]) end
    return 1`,
  },
  batchRetry: {
    numberOfKeys: 3,
    lua: `
    if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then return 0 end
    if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
    redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
    redis.call('HDEL', KEYS[2], ARGV[1])
    if ARGV[4] == '1' then redis.call('HINCRBY', KEYS[3], ARGV[1], 1) end
    return 1`,
  },
  batchCloseOne: {
    numberOfKeys: 3,
    lua: `
    if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
    redis.call('HDEL', KEYS[2], ARGV[1])
    redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
    return 1`,
  },
  batchRequeue: {
    numberOfKeys: 4,
    lua: `
    if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
    redis.call('HDEL', KEYS[2], ARGV[1])
    redis.call('HDEL', KEYS[3], ARGV[1])
    redis.call('ZADD', KEYS[4], ARGV[2], ARGV[1])
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
  private readonly redis: Scripted;
  /** Item specs never change once stored: read once per process. */
  private readonly itemCache = new Map<string, ItemSpec[]>();

  constructor(url: string, commandTimeoutMs = 5_000) {
    this.redis = connectRedis(url, commandTimeoutMs) as Scripted;
    for (const [name, s] of Object.entries(SCRIPTS)) this.redis.defineCommand(name, { numberOfKeys: s.numberOfKeys, lua: s.lua });
  }

  ready(timeoutMs: number): Promise<void> {
    return redisReady(this.redis, timeoutMs);
  }

  async putFile(file: StoredFile, content: Buffer): Promise<void> {
    await this.redis
      .multi()
      .set(k.content(file.id), content)
      .set(k.file(file.id), JSON.stringify(file))
      .zadd(k.tenantFiles(file.tenant), file.created_at, file.id)
      .exec();
  }

  async getFile(id: string): Promise<StoredFile | undefined> {
    const v = await this.redis.get(k.file(id));
    return v ? (JSON.parse(v) as StoredFile) : undefined;
  }

  async getFileContent(id: string): Promise<Buffer | undefined> {
    return (await this.redis.getBuffer(k.content(id))) ?? undefined;
  }

  async listFiles(tenant: string): Promise<StoredFile[]> {
    const ids = await this.redis.zrevrange(k.tenantFiles(tenant), 0, -1);
    if (!ids.length) return [];
    const vals = await this.redis.mget(ids.map(k.file));
    return vals.filter((v): v is string => v !== null).map((v) => JSON.parse(v) as StoredFile);
  }

  async deleteFile(id: string): Promise<boolean> {
    const f = await this.getFile(id);
    if (!f) return false;
    await this.redis.multi().del(k.file(id), k.content(id)).zrem(k.tenantFiles(f.tenant), id).exec();
    return true;
  }

  async putBatch(batch: BatchRecord): Promise<void> {
    await this.redis
      .multi()
      .set(k.batch(batch.id), JSON.stringify(batch))
      .zadd(k.tenantBatches(batch.tenant), batch.created_at, batch.id)
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
    return vals.filter((v): v is string => v !== null).map((v) => JSON.parse(v) as BatchRecord);
  }

  activeBatches(): Promise<string[]> {
    return this.redis.smembers(k.active);
  }

  async setActive(id: string, active: boolean): Promise<void> {
    if (active) await this.redis.sadd(k.active, id);
    else await this.redis.srem(k.active, id);
  }

  async initItems(batchId: string, items: ItemSpec[], now: number): Promise<void> {
    const m = this.redis.multi().set(k.items(batchId), JSON.stringify(items));
    for (let i = 0; i < items.length; i += 1_000) {
      m.zadd(k.ready(batchId), ...items.slice(i, i + 1_000).flatMap((it) => [now, String(it.index)]));
    }
    await m.exec();
    this.itemCache.set(batchId, items);
  }

  async getItems(batchId: string): Promise<ItemSpec[]> {
    let items = this.itemCache.get(batchId);
    if (!items) {
      const v = await this.redis.get(k.items(batchId));
      items = v ? (JSON.parse(v) as ItemSpec[]) : [];
      this.itemCache.set(batchId, items);
    }
    return items;
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
    )) as string[];
    const out: Claim[] = [];
    for (let i = 0; i < r.length; i += 3) out.push({ index: Number(r[i]), token: r[i + 1]!, attempts: Number(r[i + 2]) });
    return out;
  }

  async renew(batchId: string, claim: Claim, until: number): Promise<boolean> {
    return (await this.redis.batchRenew(k.ready(batchId), k.leases(batchId), claim.index, claim.token, until)) === 1;
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
      )) === 1
    );
  }

  async closeRemaining(batchId: string, lineFor: (index: number) => string): Promise<number> {
    const ids = await this.redis.zrange(k.ready(batchId), '0', '-1');
    if (!ids.length) return 0;
    const p = this.redis.pipeline();
    // Queued on the pipeline: each command's result comes back from exec() below.
    for (const id of ids)
      void (p as unknown as Scripted).batchCloseOne(k.ready(batchId), k.leases(batchId), k.errors(batchId), id, lineFor(Number(id)));
    const res = (await p.exec()) ?? [];
    return res.filter(([err, v]) => !err && v === 1).length;
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
      n += Number(await this.redis.batchRequeue(k.dead(batchId), k.errors(batchId), k.attempts(batchId), k.ready(batchId), idx, now));
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
