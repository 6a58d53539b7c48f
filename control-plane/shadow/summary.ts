// The comparison an operator reads: per alias and shadow target, how many shadows ran, how many
// failed, latency of both sides (p50/p95 of TTFT and of the whole request), the mean similarity
// of the answers, and the token ratio (shadow completion tokens / primary completion tokens).
import type { ShadowRecord } from '../../common/shadow-record.ts';

export interface Percentiles {
  p50: number | null;
  p95: number | null;
}

export interface ShadowSummaryRow {
  alias: string;
  target: string;
  count: number;
  errors: number;
  errorRate: number;
  primary: { model: string | null; latencyMs: Percentiles; ttftMs: Percentiles };
  /** Over the successful shadows only. */
  shadow: { model: string | null; latencyMs: Percentiles; ttftMs: Percentiles };
  /** Mean over the records that have a similarity; null when none has. */
  meanSimilarity: number | null;
  similarityCount: number;
  /** Sum of shadow completion tokens over the primaries' on the same (successful) requests. */
  tokenRatio: number | null;
  /** Newest record's time (ms epoch). */
  lastTs: number;
}

/** Nearest-rank percentile of an unsorted list; null when empty. */
export function percentile(values: number[], p: number): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

const pcts = (v: number[]): Percentiles => ({ p50: percentile(v, 50), p95: percentile(v, 95) });
const nums = (v: (number | null)[]): number[] => v.filter((x): x is number => x !== null);

export function summarise(records: readonly ShadowRecord[]): ShadowSummaryRow[] {
  const groups = new Map<string, ShadowRecord[]>();
  for (const r of records) {
    const k = `${r.alias}\0${r.target}`;
    const g = groups.get(k);
    if (g) g.push(r);
    else groups.set(k, [r]);
  }
  const rows: ShadowSummaryRow[] = [];
  for (const g of groups.values()) {
    const ok = g.filter((r) => r.outcome === 'ok');
    const sims = nums(g.map((r) => r.similarity));
    let shadowTokens = 0,
      primaryTokens = 0;
    for (const r of ok) {
      if (r.shadow.completionTokens === null || r.primary.completionTokens === null) continue;
      shadowTokens += r.shadow.completionTokens;
      primaryTokens += r.primary.completionTokens;
    }
    const errors = g.length - ok.length;
    rows.push({
      alias: g[0]!.alias,
      target: g[0]!.target,
      count: g.length,
      errors,
      errorRate: round(errors / g.length),
      primary: {
        model: g[g.length - 1]!.primary.model,
        latencyMs: pcts(g.map((r) => r.primary.latencyMs)),
        ttftMs: pcts(nums(g.map((r) => r.primary.ttftMs))),
      },
      shadow: {
        model: g[g.length - 1]!.shadow.model,
        latencyMs: pcts(ok.map((r) => r.shadow.latencyMs)),
        ttftMs: pcts(nums(ok.map((r) => r.shadow.ttftMs))),
      },
      meanSimilarity: sims.length ? round(sims.reduce((a, b) => a + b, 0) / sims.length) : null,
      similarityCount: sims.length,
      tokenRatio: primaryTokens > 0 ? round(shadowTokens / primaryTokens) : null,
      lastTs: Math.max(...g.map((r) => r.ts)),
    });
  }
  return rows.sort((a, b) => a.alias.localeCompare(b.alias) || a.target.localeCompare(b.target));
}

const round = (x: number) => Math.round(x * 1e4) / 1e4;
