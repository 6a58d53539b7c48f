// The one reading shape every nvidia-smi parser produces, so the health policy does not care
// whether a value came from the CSV poll, the XML detail read or a plain `-q` capture.
// Every field is nullable: older drivers, consumer cards, MIG mode and vGPU guests leave gaps.
import { setOwn } from '../../common/own.ts';

/** Clock-event ("throttle") reasons, named as in nvidia-smi's CSV fields after the prefix. */
export const THROTTLE_REASONS = [
  'gpu_idle',
  'applications_clocks_setting',
  'sw_power_cap',
  'hw_slowdown',
  'hw_thermal_slowdown',
  'hw_power_brake_slowdown',
  'sw_thermal_slowdown',
  'sync_boost',
  'display_clocks_setting',
] as const;
export type ThrottleReason = (typeof THROTTLE_REASONS)[number];

export interface EccCounts {
  correctedVolatile: number | null;
  correctedAggregate: number | null;
  uncorrectedVolatile: number | null;
  uncorrectedAggregate: number | null;
}

export interface GpuReading {
  /** nvidia-smi's enumeration index (CSV `index`; position in the XML / text output). */
  index: number | null;
  uuid: string | null;
  name: string | null;
  /** As nvidia-smi prints it, e.g. `00000000:9B:00.0`. Use canonicalPciAddress() to compare. */
  pciBusId: string | null;
  temperatureGpuC: number | null;
  temperatureMemoryC: number | null;
  /** Absolute thresholds (older GPUs and drivers). */
  temperatureSlowdownC: number | null;
  temperatureShutdownC: number | null;
  temperatureMaxOperatingC: number | null;
  temperatureMemoryMaxC: number | null;
  /** Hopper+ on 590+ drivers report headroom to T.Limit instead of absolute thresholds. */
  temperatureTlimitC: number | null;
  temperatureSlowdownTlimitC: number | null;
  powerDrawW: number | null;
  powerLimitW: number | null;
  utilizationGpuPct: number | null;
  memoryUsedMiB: number | null;
  memoryTotalMiB: number | null;
  throttle: Partial<Record<ThrottleReason, boolean | null>>;
  ecc: EccCounts;
  retiredPages: { singleBit: number | null; doubleBit: number | null; pending: boolean | null };
  remappedRows: { correctable: number | null; uncorrectable: number | null; pending: boolean | null; failure: boolean | null };
  persistenceMode: string | null;
  computeMode: string | null;
  migMode: string | null;
  eccMode: string | null;
}

export function emptyReading(): GpuReading {
  return {
    index: null,
    uuid: null,
    name: null,
    pciBusId: null,
    temperatureGpuC: null,
    temperatureMemoryC: null,
    temperatureSlowdownC: null,
    temperatureShutdownC: null,
    temperatureMaxOperatingC: null,
    temperatureMemoryMaxC: null,
    temperatureTlimitC: null,
    temperatureSlowdownTlimitC: null,
    powerDrawW: null,
    powerLimitW: null,
    utilizationGpuPct: null,
    memoryUsedMiB: null,
    memoryTotalMiB: null,
    throttle: {},
    ecc: { correctedVolatile: null, correctedAggregate: null, uncorrectedVolatile: null, uncorrectedAggregate: null },
    retiredPages: { singleBit: null, doubleBit: null, pending: null },
    remappedRows: { correctable: null, uncorrectable: null, pending: null, failure: null },
    persistenceMode: null,
    computeMode: null,
    migMode: null,
    eccMode: null,
  };
}

function pick<T>(primary: T | null | undefined, fallback: T | null | undefined): T | null {
  return primary !== null && primary !== undefined ? primary : (fallback ?? null);
}

/**
 * Overlay a fresh reading (CSV, every few seconds) on an older detailed one (XML, every 30 s):
 * fresh non-null values win, gaps are filled from the detail (thresholds, MIG mode, ...).
 */
export function mergeReadings(fresh: GpuReading, detail: GpuReading | undefined): GpuReading {
  if (!detail) return fresh;
  const out = emptyReading();
  for (const k of Object.keys(out) as (keyof GpuReading)[]) {
    const a = fresh[k];
    const b = detail[k];
    if (a !== null && typeof a === 'object') {
      const merged: Record<string, unknown> = { ...(b as object) };
      for (const [kk, vv] of Object.entries(a)) if (vv !== null && vv !== undefined) setOwn(merged, kk, vv);
      (out as unknown as Record<string, unknown>)[k] = merged;
    } else {
      (out as unknown as Record<string, unknown>)[k] = pick(a, b as typeof a);
    }
  }
  return out;
}
