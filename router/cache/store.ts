// Where cached responses live: Redis when configured (shared by every router replica, TTL by
// Redis), else memory bounded by bytes (least recently used dropped first). A store that cannot
// answer is a miss, never an error for the client.
import { LRUCache } from 'lru-cache';
import type { Redis } from 'ioredis';
import { connectRedis, redisReady } from '../../common/store/redis-connection.ts';
import { parseRecord, recordSize, type RecordedResponse } from '../http/recorded-response.ts';

export interface ResponseStore {
  readonly kind: 'memory' | 'redis';
  get(key: string): Promise<RecordedResponse | undefined>;
  set(key: string, rec: RecordedResponse, ttlMs: number): Promise<void>;
  /** Bytes held (memory store; undefined for Redis, which reports its own). */
  bytes(): number | undefined;
  close(): Promise<void>;
}

export class MemoryResponseStore implements ResponseStore {
  readonly kind = 'memory';
  private readonly lru: LRUCache<string, RecordedResponse>;

  constructor(maxBytes: number) {
    this.lru = new LRUCache<string, RecordedResponse>({ maxSize: maxBytes, sizeCalculation: (r) => recordSize(r), ttlAutopurge: false });
  }

  async get(key: string): Promise<RecordedResponse | undefined> {
    return this.lru.get(key);
  }

  async set(key: string, rec: RecordedResponse, ttlMs: number): Promise<void> {
    this.lru.set(key, rec, { ttl: ttlMs });
  }

  bytes(): number {
    return this.lru.calculatedSize;
  }

  async close(): Promise<void> {
    this.lru.clear();
  }
}

const PREFIX = 'icp:cache:';

export class RedisResponseStore implements ResponseStore {
  readonly kind = 'redis';
  private readonly redis: Redis;

  constructor(url: string, commandTimeoutMs: number) {
    this.redis = connectRedis(url, commandTimeoutMs);
  }

  ready(timeoutMs: number): Promise<void> {
    return redisReady(this.redis, timeoutMs);
  }

  async get(key: string): Promise<RecordedResponse | undefined> {
    const text = await this.redis.get(PREFIX + key);
    return text === null ? undefined : parseRecord(text);
  }

  async set(key: string, rec: RecordedResponse, ttlMs: number): Promise<void> {
    await this.redis.set(PREFIX + key, JSON.stringify(rec), 'PX', ttlMs);
  }

  bytes(): undefined {
    return undefined;
  }

  async close(): Promise<void> {
    this.redis.disconnect();
  }
}
