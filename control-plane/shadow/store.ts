// Where the control plane keeps shadow records: the newest `maxRecords` of them. Redis (one
// capped stream, `icp:shadow`) when Redis is configured, so every control-plane replica reads the
// same records; else JSON lines in `<dir>/records.jsonl` with the newest records in memory, the
// file rewritten atomically (temp file, fsync, rename) once it holds twice the bound.
import { appendFile, mkdir, open, readFile, rename } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Redis } from 'ioredis';
import { connectRedis } from '../../common/store/redis-connection.ts';
import { shadowRecordSchema, type ShadowRecord } from '../../common/shadow-record.ts';

export interface ShadowStore {
  readonly kind: 'redis' | 'file' | 'memory';
  append(records: readonly ShadowRecord[]): Promise<void>;
  /** Records newer than `since` (ms epoch), oldest first, at most the newest `limit`. */
  list(since: number, limit: number): Promise<ShadowRecord[]>;
  close(): Promise<void>;
}

export const SHADOW_STREAM = 'icp:shadow';

export class MemoryShadowStore implements ShadowStore {
  readonly kind: 'memory' | 'file' = 'memory';
  protected records: ShadowRecord[] = [];
  constructor(protected readonly maxRecords: number) {}

  async append(records: readonly ShadowRecord[]): Promise<void> {
    this.records.push(...records);
    if (this.records.length > this.maxRecords) this.records.splice(0, this.records.length - this.maxRecords);
  }

  async list(since: number, limit: number): Promise<ShadowRecord[]> {
    const out = this.records.filter((r) => r.ts >= since);
    return out.length > limit ? out.slice(out.length - limit) : out;
  }

  async close(): Promise<void> {
    /* nothing */
  }
}

export class FileShadowStore extends MemoryShadowStore {
  override readonly kind = 'file' as const;
  readonly file: string;
  private lines = 0;
  private chain: Promise<unknown> = Promise.resolve();

  constructor(dir: string, maxRecords: number) {
    super(maxRecords);
    this.file = join(dir, 'records.jsonl');
  }

  /** Reads what a previous run kept (a torn last line is skipped). */
  async load(): Promise<void> {
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    const loaded: ShadowRecord[] = [];
    for (const line of text.split('\n')) {
      if (!line) continue;
      try {
        const r = shadowRecordSchema.safeParse(JSON.parse(line));
        if (r.success) loaded.push(r.data);
      } catch {
        // torn line after a crash
      }
    }
    this.lines = loaded.length;
    await super.append(loaded);
  }

  override async append(records: readonly ShadowRecord[]): Promise<void> {
    if (records.length === 0) return;
    await super.append(records);
    await this.serial(async () => {
      await mkdir(dirname(this.file), { recursive: true });
      if (this.lines + records.length > 2 * this.maxRecords) {
        await this.rewrite();
      } else {
        await appendFile(this.file, records.map((r) => JSON.stringify(r) + '\n').join(''));
        this.lines += records.length;
      }
    });
  }

  override async close(): Promise<void> {
    await this.chain;
  }

  private async rewrite(): Promise<void> {
    const tmp = `${this.file}.${process.pid}.tmp`;
    const fh = await open(tmp, 'w');
    try {
      await fh.writeFile(this.records.map((r) => JSON.stringify(r) + '\n').join(''));
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, this.file);
    this.lines = this.records.length;
  }

  private serial(fn: () => Promise<void>): Promise<void> {
    const next = this.chain.then(fn, fn);
    this.chain = next.catch(() => undefined);
    return next;
  }
}

export class RedisShadowStore implements ShadowStore {
  readonly kind = 'redis' as const;
  private readonly redis: Redis;

  constructor(
    url: string,
    private readonly maxRecords: number,
    commandTimeoutMs = 2_000,
  ) {
    this.redis = connectRedis(url, commandTimeoutMs);
  }

  async append(records: readonly ShadowRecord[]): Promise<void> {
    if (records.length === 0) return;
    const p = this.redis.pipeline();
    for (const r of records) p.xadd(SHADOW_STREAM, 'MAXLEN', '~', this.maxRecords, '*', 'r', JSON.stringify(r));
    const res = await p.exec();
    const failed = res?.find(([err]) => err);
    if (failed) throw failed[0]!;
  }

  async list(since: number, limit: number): Promise<ShadowRecord[]> {
    // Newest first from the end of the stream (entry ids are ms timestamps), then oldest first.
    const out: ShadowRecord[] = [];
    let to = '+';
    const from = since > 60_000 ? String(since - 60_000) : '-';
    while (out.length < limit) {
      const batch = await this.redis.xrevrange(SHADOW_STREAM, to, from, 'COUNT', Math.min(1_000, limit - out.length));
      for (const [, fields] of batch) {
        const r = JSON.parse(fields[1]!) as ShadowRecord;
        if (r.ts >= since) out.push(r);
      }
      if (batch.length < 1_000) break;
      to = `(${batch[batch.length - 1]![0]}`;
    }
    return out.reverse();
  }

  async close(): Promise<void> {
    this.redis.disconnect();
  }
}
