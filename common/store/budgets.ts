// Spend shared by every router replica: cost (USD) and tokens per scope (tenant, key, tag) per
// period (UTC day, UTC month). Read at admission (one round trip for all of a request's scopes),
// added to when the request ends (one round trip, returning the new totals so the replica that
// crosses a threshold is the one that reports it). Implementations: memory (the embedded
// default) and Redis (a Lua script each way).

export interface Spend {
  costUsd: number;
  tokens: number;
}

export interface BudgetStore {
  readonly kind: 'memory' | 'redis';
  /** Spend so far for each `scope|period` key, in order (zero where none). */
  read(keys: readonly string[]): Promise<Spend[]>;
  /** Adds to every key at once; resolves to the new totals, in order. */
  add(keys: readonly string[], spend: Spend): Promise<Spend[]>;
  close(): Promise<void>;
}

/** Periods a request counts in: its UTC day and UTC month (`d:2025-01-31`, `m:2025-01`). */
export function periodsOf(at: number): { day: string; month: string } {
  const iso = new Date(at).toISOString();
  return { day: `d:${iso.slice(0, 10)}`, month: `m:${iso.slice(0, 7)}` };
}

/** Spend is kept a little longer than its period (40 days covers any month). */
export const SPEND_TTL_MS = 40 * 24 * 3_600_000;
