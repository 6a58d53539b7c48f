// Parser for plain `nvidia-smi -q` (human-readable), for tests only: the agent never runs it (the XML form
// carries the same data in a stable shape); it exists because several real fault captures
// (A10 with a pending row remap, V100 with HW slowdown) were only published in this form.
// Keys are split on the first ` : ` (column 43 up to 560, column 56 from 590) and nested by
// indentation, never by fixed columns.
import { cleanText, parseFlag, parseNumber } from '../../node-agent/gpu/values.ts';
import { emptyReading, type GpuReading, type ThrottleReason } from '../../node-agent/gpu/types.ts';

interface TextNode {
  key: string;
  value: string | null;
  children: TextNode[];
}

export function parseTextTree(text: string): TextNode[] {
  const root: TextNode = { key: '', value: null, children: [] };
  const stack: { indent: number; node: TextNode }[] = [{ indent: -1, node: root }];
  for (const raw of text.replace(/\r\n?/g, '\n').split('\n')) {
    if (raw.trim() === '' || /^=+/.test(raw.trim())) continue;
    const indent = raw.length - raw.trimStart().length;
    const line = raw.trim();
    const sep = line.indexOf(' : ');
    const node: TextNode =
      sep >= 0
        ? { key: line.slice(0, sep).trim(), value: line.slice(sep + 3).trim(), children: [] }
        : { key: line.replace(/\s*:$/, '').trim(), value: null, children: [] };
    while (stack.length > 1 && stack[stack.length - 1]!.indent >= indent) stack.pop();
    stack[stack.length - 1]!.node.children.push(node);
    stack.push({ indent, node });
  }
  return root.children;
}

function child(nodes: TextNode[] | undefined, ...keys: string[]): TextNode | undefined {
  if (!nodes) return undefined;
  for (const k of keys) {
    const n = nodes.find((c) => c.key.toLowerCase() === k.toLowerCase());
    if (n) return n;
  }
  return undefined;
}

function val(nodes: TextNode[] | undefined, ...path: string[]): string | null {
  let cur: TextNode | undefined;
  let level = nodes;
  for (const p of path) {
    cur = child(level, ...p.split('|'));
    if (!cur) return null;
    level = cur.children;
  }
  return cur?.value ?? null;
}

/** All descendants, depth first: HW Thermal Slowdown is nested under HW Slowdown. */
function flatten(nodes: TextNode[]): TextNode[] {
  return nodes.flatMap((n) => [n, ...flatten(n.children)]);
}

/** First non-null number among descendants named by `keys`, in key order (N/A falls through). */
function firstNumber(nodes: TextNode[] | undefined, keys: string[]): number | null {
  const all = flatten(nodes ?? []);
  for (const k of keys) {
    for (const n of all)
      if (n.key.toLowerCase() === k.toLowerCase()) {
        const v = parseNumber(n.value);
        if (v !== null) return v;
      }
  }
  return null;
}

const THROTTLE_LABELS: Record<string, ThrottleReason> = {
  idle: 'gpu_idle',
  'applications clocks setting': 'applications_clocks_setting',
  'sw power cap': 'sw_power_cap',
  'hw slowdown': 'hw_slowdown',
  'hw thermal slowdown': 'hw_thermal_slowdown',
  'hw power brake slowdown': 'hw_power_brake_slowdown',
  'sync boost': 'sync_boost',
  'sw thermal slowdown': 'sw_thermal_slowdown',
  'display clock setting': 'display_clocks_setting',
};

function eccTotals(block: TextNode | undefined): { corrected: number | null; uncorrected: number | null } {
  if (!block) return { corrected: null, uncorrected: null };
  const sb = child(block.children, 'Single Bit');
  const db = child(block.children, 'Double Bit');
  if (sb || db) {
    return { corrected: parseNumber(val(sb?.children, 'Total')), uncorrected: parseNumber(val(db?.children, 'Total')) };
  }
  let corrected: number | null = null;
  let uncorrected: number | null = null;
  for (const n of block.children) {
    const v = parseNumber(n.value);
    if (v === null) continue;
    if (/^(SRAM|DRAM) Correctable$/i.test(n.key)) corrected = (corrected ?? 0) + v;
    else if (/^(SRAM|DRAM) Uncorrectable( Parity| SEC-DED)?$/i.test(n.key)) uncorrected = (uncorrected ?? 0) + v;
  }
  return { corrected, uncorrected };
}

function gpuToReading(g: TextNode[], position: number, busId: string | null): GpuReading {
  const r = emptyReading();
  r.index = position;
  r.pciBusId = busId ?? cleanText(val(g, 'PCI', 'Bus Id'));
  r.uuid = cleanText(val(g, 'GPU UUID'));
  r.name = cleanText(val(g, 'Product Name'));
  r.persistenceMode = cleanText(val(g, 'Persistence Mode'));
  r.computeMode = cleanText(val(g, 'Compute Mode'));
  r.migMode = cleanText(val(g, 'MIG Mode', 'Current'));
  r.eccMode = cleanText(val(g, 'ECC Mode', 'Current'));
  r.utilizationGpuPct = parseNumber(val(g, 'Utilization', 'Gpu'));
  r.memoryUsedMiB = parseNumber(val(g, 'FB Memory Usage', 'Used'));
  r.memoryTotalMiB = parseNumber(val(g, 'FB Memory Usage', 'Total'));
  r.temperatureGpuC = parseNumber(val(g, 'Temperature', 'GPU Current Temp'));
  r.temperatureMemoryC = parseNumber(val(g, 'Temperature', 'Memory Current Temp'));
  r.temperatureSlowdownC = parseNumber(val(g, 'Temperature', 'GPU Slowdown Temp'));
  r.temperatureShutdownC = parseNumber(val(g, 'Temperature', 'GPU Shutdown Temp'));
  r.temperatureMaxOperatingC = parseNumber(val(g, 'Temperature', 'GPU Max Operating Temp'));
  r.temperatureMemoryMaxC = parseNumber(val(g, 'Temperature', 'Memory Max Operating Temp'));
  r.temperatureTlimitC = parseNumber(val(g, 'Temperature', 'GPU T.Limit Temp'));
  r.temperatureSlowdownTlimitC = parseNumber(val(g, 'Temperature', 'GPU Slowdown T.Limit Temp'));
  const power = child(g, 'GPU Power Readings', 'Power Readings')?.children;
  r.powerDrawW = firstNumber(power, ['Power Draw', 'Average Power Draw', 'Instantaneous Power Draw']);
  // 610 nests the limit under "GPU Ceiling Power Limit", so search descendants.
  r.powerLimitW = firstNumber(power, ['Current Power Limit', 'Power Limit', 'Enforced Power Limit']);
  const reasons = child(g, 'Clocks Event Reasons', 'Clocks Throttle Reasons', 'Clocks Throttle Reasons Active');
  for (const n of flatten(reasons?.children ?? [])) {
    const reason = THROTTLE_LABELS[n.key.toLowerCase()];
    if (reason) r.throttle[reason] = parseFlag(n.value);
  }
  const ecc = child(g, 'ECC Errors');
  const vol = eccTotals(child(ecc?.children, 'Volatile'));
  const agg = eccTotals(child(ecc?.children, 'Aggregate'));
  r.ecc = {
    correctedVolatile: vol.corrected,
    uncorrectedVolatile: vol.uncorrected,
    correctedAggregate: agg.corrected,
    uncorrectedAggregate: agg.uncorrected,
  };
  r.retiredPages.singleBit = parseNumber(val(g, 'Retired Pages', 'Single Bit ECC'));
  r.retiredPages.doubleBit = parseNumber(val(g, 'Retired Pages', 'Double Bit ECC'));
  r.retiredPages.pending = parseFlag(val(g, 'Retired Pages', 'Pending Page Retirement|Pending Page Blacklist|Pending'));
  r.remappedRows.correctable = parseNumber(val(g, 'Remapped Rows', 'Correctable Error'));
  r.remappedRows.uncorrectable = parseNumber(val(g, 'Remapped Rows', 'Uncorrectable Error'));
  r.remappedRows.pending = parseFlag(val(g, 'Remapped Rows', 'Pending'));
  r.remappedRows.failure = parseFlag(val(g, 'Remapped Rows', 'Remapping Failure Occurred'));
  return r;
}

const GPU_HEADER = /^GPU ([0-9A-Fa-f]{4,8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.[0-7])$/;

/** Parse `nvidia-smi -q`. A text with no `GPU <bus id>` header (an excerpt) is one GPU. */
export function parseQueryText(text: string): { driverVersion: string | null; gpus: GpuReading[] } {
  const tree = parseTextTree(text);
  const gpuNodes = tree.filter((n) => GPU_HEADER.test(n.key));
  const driverVersion = cleanText(val(tree, 'Driver Version'));
  if (gpuNodes.length === 0) {
    const looksLikeGpu = tree.some((n) => /Clocks (Event|Throttle) Reasons|Product Name|Temperature/.test(n.key));
    return { driverVersion, gpus: looksLikeGpu ? [gpuToReading(tree, 0, null)] : [] };
  }
  return { driverVersion, gpus: gpuNodes.map((n, i) => gpuToReading(n.children, i, GPU_HEADER.exec(n.key)![1]!)) };
}
