// The capacity history in Redis (controlPlane.capacity.store.kind: redis), for control planes
// that run without a persistent disk (Kubernetes with Redis). One list of JSON records: appends
// are RPUSH; compaction writes the new set under a temporary key and RENAMEs it over the list in
// one MULTI, so a crash leaves the old or the new set, as the file store does.
import type { Redis } from 'ioredis';
import { connectRedis, redisReady } from '../../common/store/redis-connection.ts';
import { parseHistoryLine, type HistoryStore } from './store.ts';
import type { HistoryRecord } from './types.ts';

/** Records per RPUSH: bounded argument lists on a large rewrite. */
const CHUNK = 1_000;

export class RedisHistoryStore implements HistoryStore {
  private readonly redis: Redis;
  private chain: Promise<unknown> = Promise.resolve();

  constructor(
    url: string,
    private readonly key = 'icp:capacity:history',
    commandTimeoutMs = 5_000,
  ) {
    this.redis = connectRedis(url, commandTimeoutMs);
  }

  async load(): Promise<HistoryRecord[]> {
    await redisReady(this.redis, 10_000);
    // An entry that is not a record is skipped rather than lose the rest.
    return (await this.redis.lrange(this.key, 0, -1)).flatMap((line) => parseHistoryLine(line) ?? []);
  }

  append(records: HistoryRecord[]): Promise<void> {
    if (records.length === 0) return Promise.resolve();
    return this.serial(async () => {
      for (let i = 0; i < records.length; i += CHUNK)
        await this.redis.rpush(this.key, ...records.slice(i, i + CHUNK).map((r) => JSON.stringify(r)));
    });
  }

  rewrite(records: HistoryRecord[]): Promise<void> {
    return this.serial(async () => {
      const tmp = `${this.key}:rewrite:${process.pid}`;
      await this.redis.del(tmp);
      for (let i = 0; i < records.length; i += CHUNK)
        await this.redis.rpush(tmp, ...records.slice(i, i + CHUNK).map((r) => JSON.stringify(r)));
      // RENAME fails on a missing key: an empty history is a DEL.
      const tx = this.redis.multi();
      if (records.length) tx.rename(tmp, this.key);
      else tx.del(this.key);
      await tx.exec();
    });
  }

  async close(): Promise<void> {
    await this.chain.catch(() => undefined);
    this.redis.disconnect();
  }

  private serial(fn: () => Promise<void>): Promise<void> {
    const next = this.chain.then(fn, fn);
    this.chain = next.catch(() => undefined);
    return next;
  }
}
