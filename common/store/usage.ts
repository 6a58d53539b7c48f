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
  /** Fields whose value was over its cap or had unsafe characters, and was cut or cleaned (absent: none). */
  truncated?: string[];
}

/** Caps on a record's strings (characters) and tags: a record is small whatever a client sent. */
export const USAGE_LIMITS = {
  id: 128,
  tenantId: 64,
  keyId: 64,
  requestedModel: 256,
  model: 256,
  backend: 256,
  lane: 32,
  tags: 32,
  tagName: 64,
  tagValue: 256,
} as const;

/** Control characters, format characters, lone surrogates and unassigned code points. */
const UNSAFE = /\p{C}/gu;

/** `s` within `max` code points, unsafe characters replaced; `cut` when it changed. */
export function boundedString(s: string, max: number): { value: string; cut: boolean } {
  // Slicing by UTF-16 units first bounds the work for a megabyte-long value.
  const head = s.length > max * 2 ? s.slice(0, max * 2) : s;
  const value = Array.from(head.replace(UNSAFE, '\uFFFD')).slice(0, max).join('');
  return { value, cut: value !== s };
}

/**
 * The record with every string capped and cleaned (see USAGE_LIMITS) and the changed fields named
 * in `truncated`: a record built from an over-long client value never carries it whole.
 */
export function boundUsageRecord(r: UsageRecord): UsageRecord {
  const truncated = new Set<string>(r.truncated ?? []);
  const str = <K extends 'id' | 'requestedModel' | 'model' | 'backend' | 'lane'>(k: K): string => {
    const b = boundedString(String(r[k]), USAGE_LIMITS[k]);
    if (b.cut) truncated.add(k);
    return b.value;
  };
  const nullable = (k: 'tenantId' | 'keyId'): string | null => {
    const v = r[k];
    if (v === null) return null;
    const b = boundedString(String(v), USAGE_LIMITS[k]);
    if (b.cut) truncated.add(k);
    return b.value;
  };
  const tags = new Map<string, string>();
  for (const [name, value] of Object.entries(r.tags)) {
    if (tags.size >= USAGE_LIMITS.tags) {
      truncated.add('tags');
      break;
    }
    const n = boundedString(name, USAGE_LIMITS.tagName);
    const v = boundedString(String(value), USAGE_LIMITS.tagValue);
    if (n.cut || v.cut) truncated.add('tags');
    tags.set(n.value, v.value);
  }
  const out: UsageRecord = {
    id: str('id'),
    ts: r.ts,
    tenantId: nullable('tenantId'),
    keyId: nullable('keyId'),
    requestedModel: str('requestedModel'),
    model: str('model'),
    backend: str('backend'),
    lane: str('lane'),
    tags: Object.fromEntries(tags),
    promptTokens: r.promptTokens,
    completionTokens: r.completionTokens,
    costUsd: r.costUsd,
    ttftMs: r.ttftMs,
    latencyMs: r.latencyMs,
    outcome: r.outcome,
    status: r.status,
  };
  if (truncated.size) out.truncated = [...truncated].sort();
  return out;
}

/** JSON size of a record in bytes (what it costs in a POST body, a stream entry, memory). */
export const usageRecordBytes = (r: UsageRecord): number => Buffer.byteLength(JSON.stringify(r));

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
    // Own properties only: a tag query named `constructor` must not match every record.
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
  'truncated',
] as const;

const csvCell = (v: unknown): string => {
  const s =
    v === null || v === undefined
      ? ''
      : typeof v === 'object'
        ? Array.isArray(v)
          ? v.join(';')
          : Object.entries(v)
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
