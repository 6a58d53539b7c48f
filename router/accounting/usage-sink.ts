// Where a router's usage records go: the Redis stream (batched XADDs, one pipeline per flush) when
// Redis is configured, else to the control plane's memory store (batched POSTs with the admin
// token). Records are buffered for at most `FLUSH_MS`; a failed flush is retried with the next
// one, and the buffer is bounded (the oldest are dropped and counted).
import type { RouterProcessConfig } from '../config.ts';
import type { Logger } from '../../common/logger.ts';
import { RedisUsageStore } from '../../common/store/redis-usage.ts';
import type { UsageRecord } from '../../common/store/usage.ts';
import type { RouterMetrics } from '../metrics.ts';

const FLUSH_MS = 200;
const MAX_BUFFER = 50_000;

export interface UsageSink {
  readonly kind: 'redis' | 'control-plane' | 'none';
  write(r: UsageRecord): void;
  flush(): Promise<void>;
  close(): Promise<void>;
}

export function createUsageSink(
  config: Pick<RouterProcessConfig, 'controlPlaneUrl' | 'credentials'>,
  redisUrl: string | undefined,
  logger: Logger,
  metrics: RouterMetrics,
): UsageSink {
  const redis = redisUrl ? new RedisUsageStore(redisUrl) : undefined;
  const token = config.credentials?.controlPlaneToken;
  const cpUrl = !redis && token ? config.controlPlaneUrl : undefined;
  const kind = redis ? 'redis' : cpUrl ? 'control-plane' : 'none';
  let buffer: UsageRecord[] = [];
  let flushing: Promise<void> | undefined;

  const send = async (batch: UsageRecord[]) => {
    if (redis) return redis.append(batch);
    const res = await fetch(`${cpUrl}/v1/admin/usage/records`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ records: batch }),
      signal: AbortSignal.timeout(5_000),
    });
    if (!res.ok) throw new Error(`control plane answered ${res.status}`);
  };

  const flush = async (): Promise<void> => {
    if (flushing) return flushing;
    if (buffer.length === 0 || kind === 'none') return;
    const batch = buffer;
    buffer = [];
    flushing = send(batch)
      .then(
        () => void metrics.usageRecords.inc({ result: 'written' }, batch.length),
        (err: Error) => {
          logger.warn({ err: err.message, records: batch.length }, 'usage records not written; retrying');
          buffer = batch.concat(buffer);
        },
      )
      .finally(() => (flushing = undefined));
    return flushing;
  };

  const timer = setInterval(() => void flush(), FLUSH_MS);
  timer.unref();

  return {
    kind,
    write(r) {
      if (kind === 'none') return;
      buffer.push(r);
      if (buffer.length > MAX_BUFFER) {
        const dropped = buffer.length - MAX_BUFFER;
        buffer = buffer.slice(dropped);
        metrics.usageRecords.inc({ result: 'dropped' }, dropped);
      }
    },
    flush,
    async close() {
      clearInterval(timer);
      await flush().catch(() => undefined);
      await redis?.close();
    },
  };
}
