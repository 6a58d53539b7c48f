// Where a router's usage records go: the Redis stream (batched XADDs, one pipeline per chunk) when
// Redis is configured, else to the control plane's memory store (batched POSTs with the admin
// token). Records are buffered for at most `FLUSH_MS` and sent in chunks of at most
// `CHUNK_BYTES` / `CHUNK_RECORDS`, oldest first. A chunk the control plane refuses (4xx) is set
// aside: counted as `refused`, logged once per status, never retried (retrying cannot help, and
// it would hold up every record behind it). A transient failure (5xx, 408, 429, network, Redis)
// is retried with backoff up to `MAX_ATTEMPTS`, then dropped. The buffer is bounded by bytes and
// count: beyond either the oldest records are dropped and counted.
import type { RouterProcessConfig } from '../config.ts';
import type { Logger } from '../../common/logger.ts';
import { RedisUsageStore } from '../../common/store/redis-usage.ts';
import { boundUsageRecord, usageRecordBytes, type UsageRecord } from '../../common/store/usage.ts';
import type { RouterMetrics } from '../metrics.ts';

export const USAGE_SINK_LIMITS = {
  flushMs: 200,
  /** One POST body (the control plane's limit for this route is larger: usage.ts). */
  chunkBytes: 1024 * 1024,
  chunkRecords: 5_000,
  bufferBytes: 32 * 1024 * 1024,
  bufferRecords: 50_000,
  maxAttempts: 12,
  baseBackoffMs: 200,
  maxBackoffMs: 30_000,
  timeoutMs: 5_000,
};
export type UsageSinkLimits = typeof USAGE_SINK_LIMITS;

export interface UsageSink {
  readonly kind: 'redis' | 'control-plane' | 'none';
  write(r: UsageRecord): void;
  flush(): Promise<void>;
  close(): Promise<void>;
}

/** A send that failed; `status` is the HTTP status when the control plane answered. */
class SendError extends Error {
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
  }
}

/** 4xx other than 408/429: the control plane will never take this chunk. */
const isRefusal = (status: number | undefined) => status !== undefined && status >= 400 && status < 500 && status !== 408 && status !== 429;

type Entry = { r: UsageRecord; bytes: number };

export function createUsageSink(
  config: Pick<RouterProcessConfig, 'controlPlaneUrl' | 'credentials'>,
  redisUrl: string | undefined,
  logger: Logger,
  metrics: Pick<RouterMetrics, 'usageRecords'>,
  limits: Partial<UsageSinkLimits> = {},
): UsageSink {
  const lim = { ...USAGE_SINK_LIMITS, ...limits };
  const redis = redisUrl ? new RedisUsageStore(redisUrl) : undefined;
  const token = config.credentials?.controlPlaneToken;
  const cpUrl = !redis && token ? config.controlPlaneUrl : undefined;
  const kind = redis ? 'redis' : cpUrl ? 'control-plane' : 'none';
  // A queue with a moving head: taking a chunk off the front is O(chunk), not O(buffer).
  let buffer: Entry[] = [];
  let head = 0;
  let bufferBytes = 0;
  let flushing: Promise<void> | undefined;
  let attempts = 0;
  let retryAt = 0;
  const refusalsLogged = new Set<number>();

  const pending = () => buffer.length - head;

  const send = async (batch: UsageRecord[], bytes: number) => {
    if (redis) return redis.append(batch);
    let res: Response;
    try {
      res = await fetch(`${cpUrl}/v1/admin/usage/records`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: JSON.stringify({ records: batch }),
        signal: AbortSignal.timeout(lim.timeoutMs),
      });
    } catch (err) {
      throw new SendError((err as Error).message);
    }
    if (res.ok) {
      await res.arrayBuffer().catch(() => undefined);
      return;
    }
    // The reason, bounded: an error body is read only as far as its message.
    const text = (await res.text().catch(() => '')).slice(0, 2_000);
    let reason = text.slice(0, 300);
    try {
      reason = String((JSON.parse(text) as { error?: { message?: unknown } }).error?.message ?? reason).slice(0, 300);
    } catch {
      // not JSON: the text as is
    }
    throw new SendError(`control plane answered ${res.status} to ${batch.length} records (${bytes} bytes): ${reason}`, res.status);
  };

  /** Takes the oldest records off the buffer, up to the chunk bounds (at least one). */
  const takeChunk = (): { entries: Entry[]; bytes: number } => {
    const entries: Entry[] = [];
    let bytes = 0;
    while (head < buffer.length && entries.length < lim.chunkRecords) {
      const e = buffer[head]!;
      if (entries.length > 0 && bytes + e.bytes + 1 > lim.chunkBytes) break;
      entries.push(e);
      bytes += e.bytes + 1;
      bufferBytes -= e.bytes;
      head++;
    }
    if (head > 4_096 && head * 2 > buffer.length) {
      buffer = buffer.slice(head);
      head = 0;
    }
    return { entries, bytes };
  };

  /** Drops the oldest beyond the buffer's bounds; counted. */
  const enforceBounds = () => {
    let dropped = 0;
    while (pending() > 1 && (pending() > lim.bufferRecords || bufferBytes > lim.bufferBytes)) {
      bufferBytes -= buffer[head]!.bytes;
      head++;
      dropped++;
    }
    if (dropped) metrics.usageRecords.inc({ result: 'dropped' }, dropped);
  };

  const drain = async (ignoreBackoff: boolean) => {
    while (pending() > 0) {
      if (!ignoreBackoff && Date.now() < retryAt) return;
      const { entries, bytes } = takeChunk();
      try {
        await send(
          entries.map((e) => e.r),
          bytes,
        );
        metrics.usageRecords.inc({ result: 'written' }, entries.length);
        attempts = 0;
        retryAt = 0;
      } catch (e) {
        const err = e instanceof SendError ? e : new SendError((e as Error).message);
        if (isRefusal(err.status)) {
          if (!refusalsLogged.has(err.status!) && refusalsLogged.size < 64) {
            refusalsLogged.add(err.status!);
            logger.warn({ err: err.message, status: err.status, records: entries.length }, 'usage records refused; set aside, not retried');
          }
          metrics.usageRecords.inc({ result: 'refused' }, entries.length);
          attempts = 0;
          continue;
        }
        attempts++;
        if (attempts >= lim.maxAttempts) {
          logger.warn({ err: err.message, records: entries.length, attempts }, 'usage records dropped after retries');
          metrics.usageRecords.inc({ result: 'dropped' }, entries.length);
          attempts = 0;
          retryAt = 0;
          continue;
        }
        // Back at the front (the oldest), then the bounds again: what arrived meanwhile may overflow.
        buffer = entries.concat(buffer.slice(head));
        head = 0;
        bufferBytes += entries.reduce((n, x) => n + x.bytes, 0);
        enforceBounds();
        const backoff = Math.min(lim.maxBackoffMs, lim.baseBackoffMs * 2 ** (attempts - 1));
        retryAt = Date.now() + backoff / 2 + Math.random() * (backoff / 2);
        logger.warn(
          { err: err.message, records: entries.length, attempt: attempts, retryInMs: Math.round(retryAt - Date.now()) },
          'usage records not written; retrying',
        );
        return;
      }
    }
  };

  const flush = (ignoreBackoff = false): Promise<void> => {
    if (flushing) return flushing;
    if (pending() === 0 || kind === 'none') return Promise.resolve();
    flushing = drain(ignoreBackoff).finally(() => (flushing = undefined));
    return flushing;
  };

  const timer = setInterval(() => void flush(), lim.flushMs);
  timer.unref();

  return {
    kind,
    write(raw) {
      if (kind === 'none') return;
      const r = boundUsageRecord(raw);
      const bytes = usageRecordBytes(r);
      buffer.push({ r, bytes });
      bufferBytes += bytes;
      enforceBounds();
    },
    flush: () => flush(true),
    async close() {
      clearInterval(timer);
      await flushing?.catch(() => undefined);
      await flush(true).catch(() => undefined);
      await redis?.close();
    },
  };
}
