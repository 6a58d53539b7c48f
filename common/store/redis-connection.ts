// The one way the stores connect to Redis: fail fast when Redis is down (no offline queue, no
// per-request retries, a command timeout), so each caller applies its own failure policy
// (fail open or closed) instead of hanging. The client reconnects by itself.
import { Redis } from 'ioredis';

export function connectRedis(url: string, commandTimeoutMs: number): Redis {
  const redis = new Redis(url, { enableOfflineQueue: false, maxRetriesPerRequest: 0, commandTimeout: commandTimeoutMs });
  // Errors surface on each call; the connection event is only noise here.
  redis.on('error', () => undefined);
  return redis;
}

/** Resolves once connected (or rejects after `timeoutMs`); calls before that fail fast. */
export function redisReady(redis: Redis, timeoutMs: number): Promise<void> {
  if (redis.status === 'ready') return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('redis not reachable')), timeoutMs);
    redis.once('ready', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}
