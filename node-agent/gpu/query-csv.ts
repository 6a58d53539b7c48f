// Parser for `nvidia-smi --query-gpu=<fields> --format=csv,noheader,nounits` (what the monitor
// runs every few seconds) and for the `--format=csv` form with a header and units (what the
// captured fixtures hold). Pure: text in, typed readings out.
import { cleanText, parseFlag, parseNumber } from './values.ts';
import { emptyReading, THROTTLE_REASONS, type GpuReading } from './types.ts';
import { own, setOwn } from '../../common/own.ts';

/**
 * Fields the monitor asks for. `clocks_throttle_reasons.*` is used (not `clocks_event_reasons.*`)
 * because pre-535 drivers only know the old names and 535+ still accept them as aliases
 * (see `--help-query-gpu` of 590.48.01 in the fixtures). Fields a driver rejects
 * (`remapped_rows.*` before R460, `temperature.memory` on some) are dropped by the monitor at
 * run time; see {@link invalidFieldFromError}.
 */
export const QUERY_GPU_FIELDS: readonly string[] = [
  'index',
  'uuid',
  'name',
  'pci.bus_id',
  'temperature.gpu',
  'temperature.memory',
  'power.draw',
  'power.limit',
  'utilization.gpu',
  'memory.used',
  'memory.total',
  ...THROTTLE_REASONS.filter((r) => r !== 'display_clocks_setting').map((r) => `clocks_throttle_reasons.${r}`),
  'ecc.errors.corrected.volatile.total',
  'ecc.errors.corrected.aggregate.total',
  'ecc.errors.uncorrected.volatile.total',
  'ecc.errors.uncorrected.aggregate.total',
  'retired_pages.single_bit_ecc.count',
  'retired_pages.double_bit.count',
  'retired_pages.pending',
  'remapped_rows.correctable',
  'remapped_rows.uncorrectable',
  'remapped_rows.pending',
  'remapped_rows.failure',
  'persistence_mode',
  'compute_mode',
];

export const CSV_FORMAT = 'csv,noheader,nounits';

/** argv for one CSV poll (no shell: every element is passed to nvidia-smi as is). */
export function queryGpuArgs(fields: readonly string[] = QUERY_GPU_FIELDS): string[] {
  return [`--query-gpu=${fields.join(',')}`, `--format=${CSV_FORMAT}`];
}

/** `memory.used [MiB]` -> `memory.used`; old throttle names -> the 535+ event names. */
export function normaliseFieldName(header: string): string {
  let f = header.trim().replace(/\s*\[[^\]]*\]\s*$/, '');
  f = f.replace(/^clocks_throttle_reasons\./, 'clocks_event_reasons.');
  // nvidia-smi accepts short aliases; map the ones we read to their long names.
  const aliases: Record<string, string> = {
    gpu_name: 'name',
    gpu_uuid: 'uuid',
    gpu_bus_id: 'pci.bus_id',
    'retired_pages.sbe': 'retired_pages.single_bit_ecc.count',
    'retired_pages.dbe': 'retired_pages.double_bit.count',
    'remapped_rows.sbe': 'remapped_rows.correctable',
    'remapped_rows.dbe': 'remapped_rows.uncorrectable',
  };
  return own(aliases, f) ?? f;
}

/** Split one CSV line. nvidia-smi never quotes; the values we read never contain commas. */
function splitLine(line: string): string[] {
  return line.split(',').map((c) => c.trim());
}

export interface CsvParseResult {
  readings: GpuReading[];
  /** Every cell by normalised field name, per GPU row (raw strings, for `readings` exports). */
  rows: Record<string, string>[];
}

/**
 * Parse CSV output. `fields` is the list the command asked for (needed for the `noheader` form);
 * when the first line looks like a header (contains `index`/`name`/`uuid` names), it wins.
 */
export function parseQueryGpuCsv(text: string, fields: readonly string[] = QUERY_GPU_FIELDS): CsvParseResult {
  const lines = text
    .replace(/\r\n?/g, '\n')
    .split('\n')
    .filter((l) => l.trim() !== '');
  if (lines.length === 0) return { readings: [], rows: [] };
  let names = fields.map(normaliseFieldName);
  const first = splitLine(lines[0]!).map(normaliseFieldName);
  if (looksLikeHeader(first)) {
    names = first;
    lines.shift();
  }
  const rows: Record<string, string>[] = [];
  for (const line of lines) {
    const cells = splitLine(line);
    // A row that does not fit the field list is an error message, not data: skip, don't guess.
    if (cells.length !== names.length) continue;
    const row: Record<string, string> = {};
    names.forEach((n, i) => {
      setOwn(row, n, cells[i] ?? '');
    });
    rows.push(row);
  }
  return { readings: rows.map(rowToReading), rows };
}

function looksLikeHeader(cells: string[]): boolean {
  return cells.some((c) => ['index', 'name', 'uuid', 'pci.bus_id', 'timestamp', 'temperature.gpu'].includes(c));
}

function num(row: Record<string, string>, k: string): number | null {
  return parseNumber(own(row, k));
}

export function rowToReading(row: Record<string, string>): GpuReading {
  const r = emptyReading();
  r.index = num(row, 'index');
  r.uuid = cleanText(row['uuid']);
  r.name = cleanText(row['name']);
  r.pciBusId = cleanText(row['pci.bus_id']);
  r.temperatureGpuC = num(row, 'temperature.gpu');
  r.temperatureMemoryC = num(row, 'temperature.memory');
  r.temperatureTlimitC = num(row, 'temperature.gpu.tlimit');
  r.powerDrawW = num(row, 'power.draw') ?? num(row, 'power.draw.average');
  r.powerLimitW = num(row, 'power.limit') ?? num(row, 'enforced.power.limit');
  r.utilizationGpuPct = num(row, 'utilization.gpu');
  r.memoryUsedMiB = num(row, 'memory.used');
  r.memoryTotalMiB = num(row, 'memory.total');
  for (const reason of THROTTLE_REASONS) {
    const k = `clocks_event_reasons.${reason}`;
    if (Object.hasOwn(row, k)) r.throttle[reason] = parseFlag(own(row, k));
  }
  r.ecc.correctedVolatile = num(row, 'ecc.errors.corrected.volatile.total');
  r.ecc.correctedAggregate = num(row, 'ecc.errors.corrected.aggregate.total');
  r.ecc.uncorrectedVolatile = num(row, 'ecc.errors.uncorrected.volatile.total');
  r.ecc.uncorrectedAggregate = num(row, 'ecc.errors.uncorrected.aggregate.total');
  r.retiredPages.singleBit = num(row, 'retired_pages.single_bit_ecc.count');
  r.retiredPages.doubleBit = num(row, 'retired_pages.double_bit.count');
  r.retiredPages.pending = parseFlag(row['retired_pages.pending']);
  r.remappedRows.correctable = num(row, 'remapped_rows.correctable');
  r.remappedRows.uncorrectable = num(row, 'remapped_rows.uncorrectable');
  r.remappedRows.pending = parseFlag(row['remapped_rows.pending']);
  r.remappedRows.failure = parseFlag(row['remapped_rows.failure']);
  r.persistenceMode = cleanText(row['persistence_mode']);
  r.computeMode = cleanText(row['compute_mode']);
  r.eccMode = cleanText(row['ecc.mode.current']);
  r.migMode = cleanText(row['mig.mode.current']);
  return r;
}

/**
 * nvidia-smi rejects the whole query when one field is unknown to the driver:
 * `Field "remapped_rows.pending" is not a valid field to query.` Returns that field, or null.
 */
export function invalidFieldFromError(output: string): string | null {
  const m = /Field "([^"]+)" is not a valid field to query/i.exec(output);
  return m ? m[1]! : null;
}
