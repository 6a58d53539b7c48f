// Usage records: one per generation request, never any prompt or completion text. Routers append
// them to a Redis stream (XADD, capped with MAXLEN ~) or, in the embedded default, ship them to
// the control plane's memory store; the control plane answers queries by tenant, key, tag, model
// and UTC day, as JSON or CSV.
import { z } from 'zod';
import { own } from '../own.ts';

export interface UsageRecord {
  id: string;
  /** Epoch ms when the request ended. */
  ts: number;
  tenantId: string | null;
  keyId: string | null;
  /** What the client asked for (alias) and what served it. */
  requestedModel: string;
  model: string;
  backend: string;
  lane: string;
  tags: Record<string, string>;
  promptTokens: number;
  completionTokens: number;
  costUsd: number;
  /** Null when nothing was streamed. */
  ttftMs: number | null;
  latencyMs: number;
  outcome: 'ok' | 'error' | 'cancelled';
  status: number;
}

export const usageQuerySchema = z.strictObject({
  tenant: z.string().max(64).optional(),
  key: z.string().max(64).optional(),
  /** `name=value` */
  tag: z.string().max(330).optional(),
  model: z.string().max(256).optional(),
  /** UTC day, YYYY-MM-DD. */
  day: z
    .string()
    .regex(/^\d{4}-\d{2}-\d{2}$/)
    .optional(),
  format: z.enum(['json', 'csv']).default('json'),
  limit: z.coerce.number().int().positive().max(100_000).default(10_000),
});
export type UsageQuery = z.infer<typeof usageQuerySchema>;

export interface UsageStore {
  readonly kind: 'memory' | 'redis';
  append(records: readonly UsageRecord[]): Promise<void>;
  /** Matching records, oldest first, at most `limit`. */
  query(q: UsageQuery): Promise<UsageRecord[]>;
  close(): Promise<void>;
}

/** [start, end) epoch ms of a UTC day. */
export function dayRange(day: string): [number, number] {
  const start = Date.parse(`${day}T00:00:00Z`);
  return [start, start + 86_400_000];
}

export function matches(r: UsageRecord, q: UsageQuery): boolean {
  if (q.tenant && r.tenantId !== q.tenant) return false;
  if (q.key && r.keyId !== q.key) return false;
  if (q.model && r.model !== q.model && r.requestedModel !== q.model) return false;
  if (q.tag) {
    const i = q.tag.indexOf('=');
    const [name, value] = i < 0 ? [q.tag, undefined] : [q.tag.slice(0, i), q.tag.slice(i + 1)];
    if (!Object.hasOwn(r.tags, name) || (value !== undefined && own(r.tags, name) !== value)) return false;
  }
  if (q.day) {
    const [a, b] = dayRange(q.day);
    if (r.ts < a || r.ts >= b) return false;
  }
  return true;
}

export const CSV_COLUMNS = [
  'id',
  'ts',
  'tenantId',
  'keyId',
  'requestedModel',
  'model',
  'backend',
  'lane',
  'tags',
  'promptTokens',
  'completionTokens',
  'costUsd',
  'ttftMs',
  'latencyMs',
  'outcome',
  'status',
] as const;

const csvCell = (v: unknown): string => {
  const s =
    v === null || v === undefined
      ? ''
      : typeof v === 'object'
        ? Object.entries(v)
            .map(([k, x]) => `${k}=${String(x)}`)
            .join(';')
        : String(v);
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
};

/** RFC 4180 CSV with a header row; tags as `name=value;name=value`; ts as ISO 8601. */
export function toCsv(records: readonly UsageRecord[]): string {
  const rows = records.map((r) => CSV_COLUMNS.map((c) => csvCell(c === 'ts' ? new Date(r.ts).toISOString() : r[c])).join(','));
  return [CSV_COLUMNS.join(','), ...rows].join('\r\n') + '\r\n';
}
