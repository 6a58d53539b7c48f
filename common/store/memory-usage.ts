// The embedded usage store: a bounded ring of records in process memory (the control plane's,
// fed by routers over POST /v1/admin/usage/records), bounded by count and by bytes (JSON size);
// the oldest go first. Every record is capped on the way in (boundUsageRecord).
import { boundUsageRecord, matches, usageRecordBytes, type UsageQuery, type UsageRecord, type UsageStore } from './usage.ts';

export class MemoryUsageStore implements UsageStore {
  readonly kind = 'memory' as const;
  private records: UsageRecord[] = [];
  private sizes: number[] = [];
  /** Index of the oldest live record (dropped ones are compacted away in bulk). */
  private head = 0;
  private totalBytes = 0;

  constructor(
    private readonly maxRecords = 1_000_000,
    private readonly maxBytes = 256 * 1024 * 1024,
  ) {}

  get size(): number {
    return this.records.length - this.head;
  }

  get bytes(): number {
    return this.totalBytes;
  }

  async append(records: readonly UsageRecord[]): Promise<void> {
    for (const raw of records) {
      const r = boundUsageRecord(raw);
      const n = usageRecordBytes(r);
      this.records.push(r);
      this.sizes.push(n);
      this.totalBytes += n;
    }
    while (this.size > 0 && (this.size > this.maxRecords || this.totalBytes > this.maxBytes)) {
      this.totalBytes -= this.sizes[this.head]!;
      this.head++;
    }
    if (this.head > 1_024 && this.head * 2 > this.records.length) {
      this.records = this.records.slice(this.head);
      this.sizes = this.sizes.slice(this.head);
      this.head = 0;
    }
  }

  async query(q: UsageQuery): Promise<UsageRecord[]> {
    const out: UsageRecord[] = [];
    for (let i = this.head; i < this.records.length && out.length < q.limit; i++) {
      const r = this.records[i]!;
      if (matches(r, q)) out.push(r);
    }
    return out;
  }

  async close(): Promise<void> {}
}
