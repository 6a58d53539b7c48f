// Parser for `nvidia-smi -q -x` (the detailed read, every 30 s by default).
// Covers DTD none (418), v11, v12 and v13: old and new names for the same thing are read
// side by side (clocks_throttle_reasons / clocks_event_reasons, power_readings /
// gpu_power_readings, single_bit+double_bit ECC / sram_*+dram_* ECC). It never throws:
// malformed input gives `{ gpus: [], error }`.
import { XMLParser } from 'fast-xml-parser';
import { cleanText, parseFlag, parseNumber } from './values.ts';
import { emptyReading, THROTTLE_REASONS, type GpuReading } from './types.ts';
import { own } from '../../common/own.ts';

export const QUERY_XML_ARGS: readonly string[] = ['-q', '-x'];

export interface XmlParseResult {
  driverVersion: string | null;
  cudaVersion: string | null;
  attachedGpus: number | null;
  gpus: GpuReading[];
  error?: string;
}

type Node = Record<string, unknown>;

const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: '@_',
  parseTagValue: false, // keep `0x0000`, `00000000:07:00.0` and friends as text
  parseAttributeValue: false,
  trimValues: true,
  // `<gpu>` repeats once per GPU; force an array even for one.
  isArray: (_name, jpath) => jpath === 'nvidia_smi_log.gpu',
  processEntities: true,
});

function obj(v: unknown): Node | undefined {
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Node) : undefined;
}

function at(root: unknown, ...path: string[]): unknown {
  let cur: unknown = root;
  for (const p of path) {
    const o = obj(cur);
    if (!o) return undefined;
    cur = own(o, p);
  }
  return cur;
}

function sum(values: (number | null)[]): number | null {
  const present = values.filter((v): v is number => v !== null);
  return present.length === 0 ? null : present.reduce((a, b) => a + b, 0);
}

/** Corrected / uncorrected totals from one `<volatile>` or `<aggregate>` block. */
function eccTotals(block: unknown): { corrected: number | null; uncorrected: number | null } {
  const b = obj(block);
  if (!b) return { corrected: null, uncorrected: null };
  // Pascal / Volta: <single_bit>...<total/></single_bit> <double_bit>...<total/></double_bit>
  if (b['single_bit'] !== undefined || b['double_bit'] !== undefined) {
    return { corrected: kindTotal(b['single_bit']), uncorrected: kindTotal(b['double_bit']) };
  }
  // Turing+: sram_correctable, sram_uncorrectable | sram_uncorrectable_parity + _secded, dram_*
  const corrected: (number | null)[] = [];
  const uncorrected: (number | null)[] = [];
  for (const [k, v] of Object.entries(b)) {
    if (/^(sram|dram)_correctable$/.test(k)) corrected.push(parseNumber(v));
    else if (/^(sram|dram)_uncorrectable(_parity|_secded)?$/.test(k)) uncorrected.push(parseNumber(v));
  }
  return { corrected: sum(corrected), uncorrected: sum(uncorrected) };
}

function kindTotal(kind: unknown): number | null {
  const k = obj(kind);
  if (!k) return null;
  const total = parseNumber(k['total']);
  if (total !== null) return total;
  return sum(
    Object.entries(k)
      .filter(([n]) => n !== 'total')
      .map(([, v]) => parseNumber(v)),
  );
}

function gpuToReading(g: Node, position: number): GpuReading {
  const r = emptyReading();
  r.index = position; // -q -x has no index element; GPUs are listed in enumeration order
  r.uuid = cleanText(g['uuid']);
  r.name = cleanText(g['product_name']);
  r.pciBusId = cleanText(at(g, 'pci', 'pci_bus_id')) ?? cleanText(g['@_id']);

  const t = obj(g['temperature']) ?? {};
  r.temperatureGpuC = parseNumber(t['gpu_temp']);
  r.temperatureMemoryC = parseNumber(t['memory_temp']);
  r.temperatureSlowdownC = parseNumber(t['gpu_temp_slow_threshold']);
  r.temperatureShutdownC = parseNumber(t['gpu_temp_max_threshold']);
  r.temperatureMaxOperatingC = parseNumber(t['gpu_temp_max_gpu_threshold']);
  r.temperatureMemoryMaxC = parseNumber(t['gpu_temp_max_mem_threshold']);
  r.temperatureTlimitC = parseNumber(t['gpu_temp_tlimit']);
  r.temperatureSlowdownTlimitC = parseNumber(t['gpu_temp_slow_tlimit_threshold']);

  const p = obj(g['gpu_power_readings']) ?? obj(g['power_readings']) ?? {};
  r.powerDrawW = parseNumber(p['power_draw']) ?? parseNumber(p['average_power_draw']) ?? parseNumber(p['instant_power_draw']);
  r.powerLimitW = parseNumber(p['power_limit']) ?? parseNumber(p['current_power_limit']) ?? parseNumber(p['enforced_power_limit']);

  r.utilizationGpuPct = parseNumber(at(g, 'utilization', 'gpu_util'));
  r.memoryUsedMiB = parseNumber(at(g, 'fb_memory_usage', 'used'));
  r.memoryTotalMiB = parseNumber(at(g, 'fb_memory_usage', 'total'));

  const reasons = obj(g['clocks_event_reasons']) ?? obj(g['clocks_throttle_reasons']) ?? {};
  for (const reason of THROTTLE_REASONS) {
    const v = reasons[`clocks_event_reason_${reason}`] ?? reasons[`clocks_throttle_reason_${reason}`];
    if (v !== undefined) r.throttle[reason] = parseFlag(v);
  }

  const ecc = obj(g['ecc_errors']);
  const vol = eccTotals(ecc?.['volatile']);
  const agg = eccTotals(ecc?.['aggregate']);
  r.ecc = {
    correctedVolatile: vol.corrected,
    uncorrectedVolatile: vol.uncorrected,
    correctedAggregate: agg.corrected,
    uncorrectedAggregate: agg.uncorrected,
  };

  const rp = obj(g['retired_pages']);
  if (rp) {
    r.retiredPages.singleBit = parseNumber(at(rp, 'multiple_single_bit_retirement', 'retired_count'));
    r.retiredPages.doubleBit = parseNumber(at(rp, 'double_bit_retirement', 'retired_count'));
    r.retiredPages.pending = parseFlag(rp['pending_retirement']) ?? parseFlag(rp['pending_blacklist']);
  }
  // `<remapped_rows>N/A</remapped_rows>` before Ampere and whenever MIG is on: stays null.
  const rr = obj(g['remapped_rows']);
  if (rr) {
    r.remappedRows.correctable = parseNumber(rr['remapped_row_corr']);
    r.remappedRows.uncorrectable = parseNumber(rr['remapped_row_unc']);
    r.remappedRows.pending = parseFlag(rr['remapped_row_pending']);
    r.remappedRows.failure = parseFlag(rr['remapped_row_failure']);
  }
  r.persistenceMode = cleanText(g['persistence_mode']);
  r.computeMode = cleanText(g['compute_mode']);
  r.migMode = cleanText(at(g, 'mig_mode', 'current_mig'));
  r.eccMode = cleanText(at(g, 'ecc_mode', 'current_ecc'));
  return r;
}

export function parseQueryXml(text: string): XmlParseResult {
  const empty: XmlParseResult = { driverVersion: null, cudaVersion: null, attachedGpus: null, gpus: [] };
  let doc: unknown;
  try {
    doc = parser.parse(text.replace(/^\uFEFF/, ''));
  } catch (err) {
    return { ...empty, error: `invalid nvidia-smi XML: ${(err as Error).message}` };
  }
  const log = obj(at(doc, 'nvidia_smi_log'));
  if (!log) return { ...empty, error: 'no <nvidia_smi_log> element' };
  const gpus = Array.isArray(log['gpu']) ? (log['gpu'] as unknown[]) : [];
  return {
    driverVersion: cleanText(log['driver_version']),
    cudaVersion: cleanText(log['cuda_version']),
    attachedGpus: parseNumber(log['attached_gpus']),
    gpus: gpus.map((g, i) => gpuToReading(obj(g) ?? {}, i)),
  };
}
