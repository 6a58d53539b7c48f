// The embedded usage store: a bounded ring of records in process memory (the control plane's,
// fed by routers over POST /v1/admin/usage/records).
import { matches, type UsageQuery, type UsageRecord, type UsageStore } from './usage.ts';

export class MemoryUsageStore implements UsageStore {
  readonly kind = 'memory' as const;
  private records: UsageRecord[] = [];

  constructor(private readonly maxRecords = 1_000_000) {}

  async append(records: readonly UsageRecord[]): Promise<void> {
    this.records.push(...records);
    if (this.records.length > this.maxRecords) this.records = this.records.slice(this.records.length - this.maxRecords);
  }

  async query(q: UsageQuery): Promise<UsageRecord[]> {
    const out: UsageRecord[] = [];
    for (const r of this.records) {
      if (matches(r, q)) out.push(r);
      if (out.length >= q.limit) break;
    }
    return out;
  }

  async close(): Promise<void> {}
}
