// What a chaos scenario reads from the outside while it runs: a process's resident memory from
// /proc/<pid>/status, and samples of a Prometheus /metrics page.
import { readFileSync } from 'node:fs';
import { parseSamples, type Sample } from '../../common/prometheus-text.ts';

/** VmRSS of a process in bytes, or undefined when it is gone (or /proc is not there). */
export function rssBytes(pid: number): number | undefined {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

export interface RssSampler {
  /** Highest RSS seen so far (bytes). */
  peak(): number;
  /** The samples so far, [ms since start, bytes]. */
  samples(): [number, number][];
  /** The latest sample (bytes). */
  current(): number;
  /** Peak since `since` (ms since start). */
  peakSince(since: number): number;
  elapsed(): number;
  stop(): void;
}

/** Samples a process's RSS every `everyMs` until stopped. */
export function sampleRss(pid: number, everyMs = 100): RssSampler {
  const t0 = Date.now();
  const samples: [number, number][] = [];
  const take = () => {
    const b = rssBytes(pid);
    if (b !== undefined) samples.push([Date.now() - t0, b]);
  };
  take();
  const timer = setInterval(take, everyMs);
  timer.unref();
  return {
    peak: () => samples.reduce((m, [, b]) => Math.max(m, b), 0),
    samples: () => samples,
    current: () => samples.at(-1)?.[1] ?? 0,
    peakSince: (since) => samples.filter(([t]) => t >= since).reduce((m, [, b]) => Math.max(m, b), 0),
    elapsed: () => Date.now() - t0,
    stop: () => clearInterval(timer),
  };
}

export async function scrape(url: string): Promise<Sample[]> {
  const res = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(5_000) });
  if (!res.ok) throw new Error(`${url}/metrics answered ${res.status}`);
  return parseSamples(await res.text());
}

/** Sum of a metric's samples whose labels include `labels`. */
export function sumOf(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  return samples
    .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .reduce((a, s) => a + s.value, 0);
}

export const mb = (bytes: number): number => Math.round((bytes / 1024 / 1024) * 10) / 10;

/** The q-quantile (0..1) of values, nearest rank; 0 for none. */
export function quantile(values: number[], q: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

/**
 * The q-quantile of a Prometheus histogram as the upper bound of the bucket it falls in (what
 * histogram_quantile would interpolate within); labels select the series. NaN when empty.
 */
export function histogramQuantile(samples: Sample[], name: string, q: number, labels: Record<string, string> = {}): number {
  const buckets = new Map<number, number>();
  for (const s of samples) {
    if (s.name !== `${name}_bucket` || !Object.entries(labels).every(([k, v]) => s.labels[k] === v)) continue;
    const le = s.labels.le === '+Inf' ? Infinity : Number(s.labels.le);
    buckets.set(le, (buckets.get(le) ?? 0) + s.value);
  }
  const sorted = [...buckets].sort((a, b) => a[0] - b[0]);
  const total = sorted.at(-1)?.[1] ?? 0;
  if (total === 0) return NaN;
  return sorted.find(([, n]) => n >= q * total)![0];
}
