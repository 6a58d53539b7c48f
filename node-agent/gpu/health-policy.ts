// Health verdicts per GPU and per node from nvidia-smi readings (and Xids where readable).
// Pure apart from the state it must keep: the previous reading per GPU ("rising" compares with
// it) and when a rising counter last rose (so one rise is not forgotten five seconds later).
import { z } from 'zod';
import type { GpuReading } from './types.ts';
import type { XidEvent } from './kernel-log.ts';
import { own } from '../../common/own.ts';

export type HealthVerdictName = 'HEALTHY' | 'DEGRADED' | 'UNHEALTHY';

/**
 * Thresholds, all optional in config. Defaults and where they come from:
 * - temperatureSlowdownMarginC 0: the GPU's own slowdown threshold as nvidia-smi reports it
 *   (`GPU Slowdown Temp` / `<gpu_temp_slow_threshold>`, or on Hopper+ `GPU Slowdown T.Limit
 *   Temp` against `GPU T.Limit Temp`); NVML says HW slowdown "reduces the core clocks by a
 *   factor of 2 or more" once reached (NVML API reference, nvmlClocksThrottleReasons).
 *   A positive margin flags a GPU that many degrees *before* the threshold.
 * - memoryTemperatureHighC 85: used only when the GPU does not report its own
 *   `Memory Max Operating Temp`; 85 C is the common JEDEC/HBM normal operating ceiling. Project
 *   choice, conservative; the GPU-reported limit always wins.
 * - memoryTemperatureMarginC 0: degrees below that limit at which memory counts as "high".
 * - risingHoldMs 600000: a rising ECC counter keeps its reason for 10 minutes after the last
 *   rise (a volatile counter going down, i.e. a GPU reset, clears it at once). Project choice:
 *   without a hold a single uncorrected error would flip the GPU back to healthy on the next poll.
 * - xidHoldMs 3600000: an Xid keeps its reason for an hour after it was logged (project choice).
 */
export const HealthThresholdsSchema = z.object({
  temperatureSlowdownMarginC: z.number().min(0).default(0),
  memoryTemperatureHighC: z.number().positive().default(85),
  memoryTemperatureMarginC: z.number().min(0).default(0),
  risingHoldMs: z.number().int().min(0).default(600_000),
  xidHoldMs: z.number().int().min(0).default(3_600_000),
});
export type HealthThresholds = z.infer<typeof HealthThresholdsSchema>;

/** Reasons and the verdict each forces (issue 4 item 2). `xid_<n>` follows XID_TABLE. */
export const REASON_SEVERITY: Readonly<Record<string, Exclude<HealthVerdictName, 'HEALTHY'>>> = {
  ecc_uncorrected_rising: 'UNHEALTHY',
  remapped_rows_failure: 'UNHEALTHY',
  remapped_rows_pending: 'UNHEALTHY',
  hw_slowdown: 'UNHEALTHY',
  hw_thermal_slowdown: 'UNHEALTHY',
  temperature_at_slowdown_threshold: 'UNHEALTHY',
  gpu_missing: 'UNHEALTHY',
  nvidia_smi_failing: 'UNHEALTHY',
  gpu_lost: 'UNHEALTHY',
  sw_thermal_slowdown: 'DEGRADED',
  hw_power_brake: 'DEGRADED',
  ecc_corrected_rising: 'DEGRADED',
  memory_temperature_high: 'DEGRADED',
};

const RANK: Record<HealthVerdictName, number> = { HEALTHY: 0, DEGRADED: 1, UNHEALTHY: 2 };
export function worst(a: HealthVerdictName, b: HealthVerdictName): HealthVerdictName {
  return RANK[a] >= RANK[b] ? a : b;
}

export interface Verdict {
  verdict: HealthVerdictName;
  reasons: string[];
}

interface GpuState {
  prev: GpuReading;
  uncorrectedRoseAt: number | null;
  correctedRoseAt: number | null;
}

function rose(prev: number | null, cur: number | null): boolean {
  return prev !== null && cur !== null && cur > prev;
}
function fell(prev: number | null, cur: number | null): boolean {
  return prev !== null && cur !== null && cur < prev;
}

export class HealthPolicy {
  readonly thresholds: HealthThresholds;
  private readonly state = new Map<string, GpuState>();

  constructor(thresholds: Partial<HealthThresholds> = {}) {
    this.thresholds = HealthThresholdsSchema.parse(thresholds);
  }

  /** Key a GPU by UUID (stable across reboots and re-enumeration), else by index. */
  static key(r: Pick<GpuReading, 'uuid' | 'index'>): string {
    return r.uuid ?? `index:${r.index ?? '?'}`;
  }

  /** Verdict for one GPU; records the reading as "previous" for the next call. */
  evaluateGpu(r: GpuReading, now: number = Date.now(), xids: readonly XidEvent[] = []): Verdict {
    const t = this.thresholds;
    const key = HealthPolicy.key(r);
    const st = this.state.get(key);
    const reasons: string[] = [];

    // ECC: rising against the previous reading, held for risingHoldMs.
    let uncorrectedRoseAt = st?.uncorrectedRoseAt ?? null;
    let correctedRoseAt = st?.correctedRoseAt ?? null;
    if (st) {
      const p = st.prev.ecc;
      if (rose(p.uncorrectedVolatile, r.ecc.uncorrectedVolatile) || rose(p.uncorrectedAggregate, r.ecc.uncorrectedAggregate))
        uncorrectedRoseAt = now;
      else if (fell(p.uncorrectedVolatile, r.ecc.uncorrectedVolatile)) uncorrectedRoseAt = null; // reset cleared it
      if (rose(p.correctedVolatile, r.ecc.correctedVolatile) || rose(p.correctedAggregate, r.ecc.correctedAggregate)) correctedRoseAt = now;
      else if (fell(p.correctedVolatile, r.ecc.correctedVolatile)) correctedRoseAt = null;
    }
    const held = (at: number | null): boolean => at !== null && (at === now || now - at < t.risingHoldMs);
    if (held(uncorrectedRoseAt)) reasons.push('ecc_uncorrected_rising');
    if (held(correctedRoseAt)) reasons.push('ecc_corrected_rising');
    this.state.set(key, { prev: r, uncorrectedRoseAt, correctedRoseAt });

    if (r.remappedRows.failure === true) reasons.push('remapped_rows_failure');
    if (r.remappedRows.pending === true) reasons.push('remapped_rows_pending');
    if (r.throttle.hw_slowdown === true) reasons.push('hw_slowdown');
    if (r.throttle.hw_thermal_slowdown === true) reasons.push('hw_thermal_slowdown');
    if (r.throttle.sw_thermal_slowdown === true) reasons.push('sw_thermal_slowdown');
    if (r.throttle.hw_power_brake_slowdown === true) reasons.push('hw_power_brake');

    const atSlowdown =
      (r.temperatureGpuC !== null &&
        r.temperatureSlowdownC !== null &&
        r.temperatureGpuC >= r.temperatureSlowdownC - t.temperatureSlowdownMarginC) ||
      (r.temperatureTlimitC !== null &&
        r.temperatureSlowdownTlimitC !== null &&
        r.temperatureTlimitC <= r.temperatureSlowdownTlimitC + t.temperatureSlowdownMarginC);
    if (atSlowdown) reasons.push('temperature_at_slowdown_threshold');

    // A reported memory limit below 40 C can only be a T.Limit-relative value: ignore it.
    const memLimit = r.temperatureMemoryMaxC !== null && r.temperatureMemoryMaxC >= 40 ? r.temperatureMemoryMaxC : t.memoryTemperatureHighC;
    if (r.temperatureMemoryC !== null && r.temperatureMemoryC >= memLimit - t.memoryTemperatureMarginC)
      reasons.push('memory_temperature_high');

    let verdict: HealthVerdictName = 'HEALTHY';
    for (const reason of reasons) verdict = worst(verdict, own(REASON_SEVERITY, reason) ?? 'DEGRADED');

    for (const x of xids) {
      if (x.severity !== 'unhealthy' && x.severity !== 'degraded') continue; // informational/unknown: not a GPU fault
      const at = x.timestamp.epochMs;
      if (at !== null && now - at > t.xidHoldMs) continue;
      const reason = `xid_${x.xid}`;
      if (!reasons.includes(reason)) reasons.push(reason);
      verdict = worst(verdict, x.severity === 'unhealthy' ? 'UNHEALTHY' : 'DEGRADED');
    }
    return { verdict, reasons };
  }

  /** Forget a GPU's history (e.g. after it disappears and comes back with new counters). */
  forget(key: string): void {
    this.state.delete(key);
  }
}

/** Node verdict: the worst GPU verdict plus node-level reasons; reasons deduplicated, ordered. */
export function nodeVerdict(gpus: readonly Verdict[], nodeReasons: readonly string[] = []): Verdict {
  let verdict: HealthVerdictName = 'HEALTHY';
  const reasons: string[] = [];
  for (const r of nodeReasons) {
    verdict = worst(verdict, own(REASON_SEVERITY, r) ?? 'DEGRADED');
    if (!reasons.includes(r)) reasons.push(r);
  }
  for (const g of gpus) {
    verdict = worst(verdict, g.verdict);
    for (const r of g.reasons) if (!reasons.includes(r)) reasons.push(r);
  }
  return { verdict, reasons };
}
