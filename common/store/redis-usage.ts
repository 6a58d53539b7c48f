// Usage records in one Redis stream (`icp:usage`), one entry per request with the record as JSON
// in field `r`; entry ids are Redis's own ms timestamps, so a day query is one XRANGE window.
// The stream is capped (MAXLEN ~) at `maxLen` entries, and each entry is small: records are
// capped on the way in (boundUsageRecord), so the stream's bytes are bounded by its length.
import type { Redis } from 'ioredis';
import { connectRedis } from './redis-connection.ts';
import { boundUsageRecord, dayRange, matches, type UsageQuery, type UsageRecord, type UsageStore } from './usage.ts';

export const USAGE_STREAM = 'icp:usage';

export class RedisUsageStore implements UsageStore {
  readonly kind = 'redis' as const;
  private readonly redis: Redis;

  constructor(
    url: string,
    private readonly opts: { maxLen?: number; commandTimeoutMs?: number } = {},
  ) {
    this.redis = connectRedis(url, opts.commandTimeoutMs ?? 2_000);
  }

  async append(records: readonly UsageRecord[]): Promise<void> {
    if (records.length === 0) return;
    const p = this.redis.pipeline();
    for (const r of records)
      p.xadd(USAGE_STREAM, 'MAXLEN', '~', this.opts.maxLen ?? 1_000_000, '*', 'r', JSON.stringify(boundUsageRecord(r)));
    const res = await p.exec();
    const failed = res?.find(([err]) => err);
    if (failed) throw failed[0]!;
  }

  async query(q: UsageQuery): Promise<UsageRecord[]> {
    // A day: only that window of the stream (ids are ms timestamps; a record written just after
    // midnight for a request that ended before it is still filtered by its own ts).
    const [start, dayEnd] = q.day ? dayRange(q.day) : [0, Number.MAX_SAFE_INTEGER];
    const end = dayEnd + 60_000;
    const out: UsageRecord[] = [];
    let from = q.day ? String(Math.max(0, start - 60_000)) : '-';
    for (;;) {
      const batch = await this.redis.xrange(USAGE_STREAM, from, q.day ? String(end) : '+', 'COUNT', 1_000);
      for (const [, fields] of batch) {
        const r = parseEntry(fields[1]);
        if (r && matches(r, q)) out.push(r);
        if (out.length >= q.limit) return out;
      }
      if (batch.length < 1_000) return out;
      from = `(${batch[batch.length - 1]![0]}`;
    }
  }

  async close(): Promise<void> {
    this.redis.disconnect();
  }
}

/** A stream entry as a record; undefined for one that is not (written by something else). */
function parseEntry(text: string | undefined): UsageRecord | undefined {
  try {
    const r = JSON.parse(text ?? '') as UsageRecord;
    return r !== null && typeof r === 'object' && typeof r.tags === 'object' && r.tags !== null ? r : undefined;
  } catch {
    return undefined;
  }
}
