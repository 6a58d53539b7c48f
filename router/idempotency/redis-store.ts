// Idempotency records in Redis, so a repeat that reaches another router replica joins or replays
// the first one's answer. Per key: a hash (body hash `h`, attempt `a`, owner lease `l`, watched
// until `w`, completed record `r`) and, per attempt, a Redis Stream of its frames that followers
// read with XREAD BLOCK. Claiming, renewing, completing and releasing are one Lua script each, so
// two replicas never both own a key. Keys share a hash tag (Redis Cluster: one slot per key).
import type { Redis } from 'ioredis';
import { connectRedis, redisReady } from '../../common/store/redis-connection.ts';
import { parseRecord, recordSize, type RecordedResponse } from '../http/recorded-response.ts';
import { Feed, type LiveFrame } from './feed.ts';
import type { Claim, IdempotencyStore } from './store.ts';

const CLAIM = `
local m = redis.call('HMGET', KEYS[1], 'h', 'a', 'l', 'r')
local now = tonumber(ARGV[3])
if not m[1] then
  redis.call('HSET', KEYS[1], 'h', ARGV[1], 'a', ARGV[2], 'l', now + tonumber(ARGV[4]), 'w', 0)
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
  return {'owner', ARGV[2]}
end
if m[1] ~= ARGV[1] then return {'conflict', ''} end
if m[4] then return {'done', m[4]} end
if tonumber(m[3]) < now then
  redis.call('HSET', KEYS[1], 'a', ARGV[2], 'l', now + tonumber(ARGV[4]), 'w', 0)
  return {'takeover', ARGV[2]}
end
return {'running', m[2]}`;

const RENEW = `
local m = redis.call('HMGET', KEYS[1], 'a', 'r')
if m[1] ~= ARGV[1] or m[2] then return 0 end
redis.call('HSET', KEYS[1], 'l', ARGV[2])
return 1`;

// KEYS: meta, frames. ARGV: attempt, final frame, frames TTL, record ('' = release), record TTL.
const FINISH = `
if redis.call('HGET', KEYS[1], 'a') == ARGV[1] then
  if ARGV[4] == '' then redis.call('DEL', KEYS[1])
  else
    redis.call('HSET', KEYS[1], 'r', ARGV[4])
    redis.call('PEXPIRE', KEYS[1], ARGV[5])
  end
end
redis.call('XADD', KEYS[2], '*', 'f', ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return 1`;

const WATCH = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local w = tonumber(redis.call('HGET', KEYS[1], 'w')) or 0
if tonumber(ARGV[1]) > w then redis.call('HSET', KEYS[1], 'w', ARGV[1]) end
return 1`;

type Scripts = {
  icpIdemClaim(meta: string, ...args: (string | number)[]): Promise<[string, string]>;
  icpIdemRenew(meta: string, ...args: (string | number)[]): Promise<number>;
  icpIdemFinish(meta: string, frames: string, ...args: (string | number)[]): Promise<number>;
  icpIdemWatch(meta: string, ...args: (string | number)[]): Promise<number>;
};

/** Followers still get the last frames of a finished attempt for this long. */
const FRAMES_AFTER_END_MS = 60_000;

export class RedisIdempotencyStore implements IdempotencyStore {
  private readonly redis: Redis & Scripts;
  private readonly followed = new Map<string, Feed>();
  private readonly readers = new Set<Redis>();
  private closed = false;
  readonly maxEntryBytes: number;

  constructor(
    private readonly url: string,
    private readonly opts: {
      ttlMs: number;
      leaseMs: number;
      keyPrefix: string;
      commandTimeoutMs: number;
      /** A record bigger than this (recordSize) is not stored (the key is released). */
      maxEntryBytes?: number;
      onError?: (err: Error) => void;
    },
  ) {
    const redis = connectRedis(url, opts.commandTimeoutMs);
    redis.defineCommand('icpIdemClaim', { numberOfKeys: 1, lua: CLAIM });
    redis.defineCommand('icpIdemRenew', { numberOfKeys: 1, lua: RENEW });
    redis.defineCommand('icpIdemFinish', { numberOfKeys: 2, lua: FINISH });
    redis.defineCommand('icpIdemWatch', { numberOfKeys: 1, lua: WATCH });
    this.redis = redis as Redis & Scripts;
    this.maxEntryBytes = opts.maxEntryBytes ?? 8 * 1024 * 1024;
  }

  ready(timeoutMs = 3_000): Promise<void> {
    return redisReady(this.redis, timeoutMs);
  }

  private meta(id: string): string {
    return `${this.opts.keyPrefix}{${id}}`;
  }

  private frames(id: string, attempt: string): string {
    return `${this.opts.keyPrefix}{${id}}:${attempt}`;
  }

  async claim(id: string, hash: string, attempt: string): Promise<Claim> {
    const [kind, value] = await this.redis.icpIdemClaim(this.meta(id), hash, attempt, Date.now(), this.opts.leaseMs, this.opts.ttlMs);
    if (kind === 'conflict') return { kind };
    if (kind === 'running') return { kind, attempt: value };
    if (kind === 'done') {
      const record = parseRecord(value);
      // A record this router cannot read (written by another version): forget it and run again.
      if (record) return { kind, record };
      await this.redis.del(this.meta(id));
      return this.claim(id, hash, attempt);
    }
    return { kind: 'owner', attempt: value, takenOver: kind === 'takeover' };
  }

  append(id: string, attempt: string, frame: LiveFrame): void {
    const key = this.frames(id, attempt);
    this.redis
      .pipeline()
      .xadd(key, '*', 'f', JSON.stringify(frame))
      .pexpire(key, this.opts.ttlMs)
      .exec()
      .catch((err: Error) => this.opts.onError?.(err));
  }

  async renew(id: string, attempt: string): Promise<boolean> {
    return (await this.redis.icpIdemRenew(this.meta(id), attempt, Date.now() + this.opts.leaseMs)) === 1;
  }

  async complete(id: string, attempt: string, record: RecordedResponse): Promise<boolean> {
    const json = JSON.stringify(record);
    // Too big to keep: followers still get the end of the frames; the key is released ('' record).
    // Measured as the memory store measures it, so both stores keep the same answers.
    const keep = recordSize(record) <= this.maxEntryBytes;
    await this.redis.icpIdemFinish(
      this.meta(id),
      this.frames(id, attempt),
      attempt,
      JSON.stringify({ t: 'x' }),
      FRAMES_AFTER_END_MS,
      keep ? json : '',
      this.opts.ttlMs,
    );
    return keep;
  }

  async release(id: string, attempt: string, last?: LiveFrame): Promise<void> {
    await this.redis.icpIdemFinish(
      this.meta(id),
      this.frames(id, attempt),
      attempt,
      JSON.stringify(last ?? { t: 'lost' }),
      FRAMES_AFTER_END_MS,
      '',
      0,
    );
  }

  async watch(id: string, until: number): Promise<void> {
    await this.redis.icpIdemWatch(this.meta(id), until);
  }

  async watchedUntil(id: string): Promise<number> {
    return Number(await this.redis.hget(this.meta(id), 'w')) || 0;
  }

  /** One XREAD BLOCK loop per followed attempt in this process, shared by all its followers. */
  follow(id: string, attempt: string): Feed {
    const key = this.frames(id, attempt);
    const existing = this.followed.get(key);
    if (existing) return existing;
    const feed = new Feed();
    this.followed.set(key, feed);
    void this.readLoop(id, attempt, key, feed).finally(() => this.followed.delete(key));
    return feed;
  }

  private async readLoop(id: string, attempt: string, key: string, feed: Feed): Promise<void> {
    // Blocking reads need their own connection (they hold it while they wait).
    const reader = connectRedis(this.url, 5_000);
    this.readers.add(reader);
    try {
      await redisReady(reader, 3_000);
      let last = '0';
      while (!feed.ended && !this.closed) {
        const res = (await reader.xread('COUNT', 500, 'BLOCK', 1_000, 'STREAMS', key, last)) as [string, [string, string[]][]][] | null;
        if (res) {
          for (const [entryId, fields] of res[0]![1]) {
            last = entryId;
            feed.push(JSON.parse(fields[1]!) as LiveFrame);
          }
          continue;
        }
        // Nothing new for a second: is the owner still there?
        const [a, l, r] = await this.redis.hmget(this.meta(id), 'a', 'l', 'r');
        if (a !== attempt || r !== null || Number(l) < Date.now()) {
          // One last read: the final frame may have landed just now.
          const tail = (await reader.xread('COUNT', 500, 'STREAMS', key, last)) as [string, [string, string[]][]][] | null;
          for (const [, fields] of tail?.[0]?.[1] ?? []) feed.push(JSON.parse(fields[1]!) as LiveFrame);
          feed.push({ t: 'lost' });
        }
      }
    } catch (err) {
      this.opts.onError?.(err as Error);
      feed.push({ t: 'lost' });
    } finally {
      this.readers.delete(reader);
      reader.disconnect();
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const r of this.readers) r.disconnect();
    this.redis.disconnect();
  }
}
