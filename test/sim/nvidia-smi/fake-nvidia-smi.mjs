// Fake `nvidia-smi` answering `--query-gpu=<fields> --format=csv[,noheader][,nounits]` and
// `-q -x` from real fixture files. State comes from a JSON file named by FAKE_NVIDIA_SMI_STATE
// (rewritten by tests to switch faults mid-run), else from FAKE_NVIDIA_SMI_FIXTURE /
// FAKE_NVIDIA_SMI_FAULT:
//   { "fixture": "tesla-p100-pcie-16gb-driver510.47.03.xml" | "<csv file>", "fault": null |
//     "ecc_uncorrected" | "thermal_slowdown" | "sw_thermal_slowdown" | "hang" | "fail" | "gpu_missing" }
// XML fixtures: `-q -x` prints the file (faults applied as text edits) and the CSV answer is
// derived from that same XML. CSV fixtures: the CSV answer selects columns from the capture and
// `-q -x` prints a minimal XML built from it.
import { readFileSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { XMLParser } from 'fast-xml-parser';

const here = dirname(fileURLToPath(import.meta.url));
const fixturesDir = process.env.FAKE_NVIDIA_SMI_FIXTURES ?? join(here, '..', '..', 'fixtures', 'nvidia-smi');
const args = process.argv.slice(2);

function loadState() {
  const file = process.env.FAKE_NVIDIA_SMI_STATE;
  if (file && existsSync(file)) {
    try {
      return JSON.parse(readFileSync(file, 'utf8'));
    } catch {
      /* half-written: fall through */
    }
  }
  return {
    fixture: process.env.FAKE_NVIDIA_SMI_FIXTURE ?? 'tesla-p100-pcie-16gb-driver510.47.03.xml',
    fault: process.env.FAKE_NVIDIA_SMI_FAULT ?? null,
  };
}
const state = loadState();
const fault = state.fault ?? null;

function resolveFixture(name) {
  for (const p of [join(fixturesDir, 'xml', name), join(fixturesDir, 'csv', name), join(fixturesDir, name), name]) {
    if (existsSync(p)) return p;
  }
  process.stderr.write(`fake-nvidia-smi: unknown fixture ${name}\n`);
  process.exit(255);
}

const UNIT = {
  'temperature.gpu': '',
  'temperature.memory': '',
  'power.draw': 'W',
  'power.limit': 'W',
  'utilization.gpu': '%',
  'memory.used': 'MiB',
  'memory.total': 'MiB',
};
const REASONS = [
  'gpu_idle',
  'applications_clocks_setting',
  'sw_power_cap',
  'hw_slowdown',
  'hw_thermal_slowdown',
  'hw_power_brake_slowdown',
  'sw_thermal_slowdown',
  'sync_boost',
];
const NA = '[N/A]';

function normalise(field) {
  return field
    .trim()
    .replace(/\s*\[[^\]]*\]\s*$/, '')
    .replace(/^clocks_throttle_reasons\./, 'clocks_event_reasons.');
}
function bare(v) {
  if (v === undefined || v === null || typeof v === 'object') return NA;
  const s = String(v).trim();
  if (s === '' || s === 'N/A') return NA;
  return s.replace(/\s+(W|MiB|C|%|MHz|us|bank\(s\))$/, '');
}

// ---- XML fixture: text-level faults, then a field model for CSV ----
function applyXmlFaults(xml) {
  if (fault === 'ecc_uncorrected') {
    // Raise the first GPU's volatile uncorrected count by 2 (both ECC layouts).
    return xml.replace(/<volatile>[\s\S]*?<\/volatile>/, (block) =>
      block
        .replace(/(<dram_uncorrectable>)(\d+)/, (_m, t, n) => t + (Number(n) + 2))
        .replace(/(<double_bit>[\s\S]*?<total>)(\d+)/, (_m, t, n) => t + (Number(n) + 2)),
    );
  }
  if (fault === 'thermal_slowdown') {
    const slow = /<gpu_temp_slow_threshold>(\d+) C/.exec(xml)?.[1] ?? '90';
    return xml
      .replace(/(<clocks_(?:event|throttle)_reason_hw_thermal_slowdown>)Not Active/, '$1Active')
      .replace(/(<clocks_(?:event|throttle)_reason_sw_thermal_slowdown>)Not Active/, '$1Active')
      .replace(/<gpu_temp>\d+ C</, `<gpu_temp>${slow} C<`);
  }
  if (fault === 'sw_thermal_slowdown') {
    // The driver's own software slowdown alone: a degraded GPU, not an unhealthy one.
    return xml.replace(/(<clocks_(?:event|throttle)_reason_sw_thermal_slowdown>)Not Active/, '$1Active');
  }
  if (fault === 'gpu_missing') {
    const blocks = [...xml.matchAll(/<gpu id="[^"]*">[\s\S]*?\n\s*<\/gpu>/g)];
    const last = blocks[blocks.length - 1];
    if (!last) return xml;
    const n = blocks.length - 1;
    return (xml.slice(0, last.index) + xml.slice(last.index + last[0].length)).replace(/<attached_gpus>\d+</, `<attached_gpus>${n}<`);
  }
  return xml;
}

function xmlModel(xml) {
  const doc = new XMLParser({ ignoreAttributes: false, parseTagValue: false, isArray: (_n, p) => p === 'nvidia_smi_log.gpu' }).parse(xml);
  const gpus = doc?.nvidia_smi_log?.gpu ?? [];
  return gpus.map((g, i) => {
    const t = g.temperature ?? {};
    const p = g.gpu_power_readings ?? g.power_readings ?? {};
    const reasons = g.clocks_event_reasons ?? g.clocks_throttle_reasons ?? {};
    const m = {
      index: String(i),
      uuid: bare(g.uuid),
      name: bare(g.product_name),
      'pci.bus_id': bare(g.pci?.pci_bus_id ?? g['@_id']),
      'temperature.gpu': bare(t.gpu_temp),
      'temperature.memory': bare(t.memory_temp),
      'power.draw': bare(p.power_draw ?? p.average_power_draw ?? p.instant_power_draw),
      'power.limit': bare(p.power_limit ?? p.current_power_limit),
      'utilization.gpu': bare(g.utilization?.gpu_util),
      'memory.used': bare(g.fb_memory_usage?.used),
      'memory.total': bare(g.fb_memory_usage?.total),
      persistence_mode: bare(g.persistence_mode),
      compute_mode: bare(g.compute_mode),
    };
    for (const r of REASONS) {
      const v = reasons[`clocks_event_reason_${r}`] ?? reasons[`clocks_throttle_reason_${r}`];
      m[`clocks_event_reasons.${r}`] = bare(v);
    }
    for (const kind of ['volatile', 'aggregate']) {
      const b = g.ecc_errors?.[kind] ?? {};
      let corr = null,
        unc = null;
      const add = (acc, v) => {
        const s = bare(v);
        return s === NA ? acc : (acc ?? 0) + Number(s);
      };
      if (b.single_bit || b.double_bit) {
        corr = add(corr, b.single_bit?.total);
        unc = add(unc, b.double_bit?.total);
      }
      for (const [k, v] of Object.entries(b)) {
        if (/^(sram|dram)_correctable$/.test(k)) corr = add(corr, v);
        if (/^(sram|dram)_uncorrectable(_parity|_secded)?$/.test(k)) unc = add(unc, v);
      }
      m[`ecc.errors.corrected.${kind}.total`] = corr === null ? NA : String(corr);
      m[`ecc.errors.uncorrected.${kind}.total`] = unc === null ? NA : String(unc);
    }
    const rp = g.retired_pages ?? {};
    m['retired_pages.single_bit_ecc.count'] = bare(rp.multiple_single_bit_retirement?.retired_count);
    m['retired_pages.double_bit.count'] = bare(rp.double_bit_retirement?.retired_count);
    m['retired_pages.pending'] = bare(rp.pending_retirement ?? rp.pending_blacklist);
    const rr = typeof g.remapped_rows === 'object' ? g.remapped_rows : {};
    m['remapped_rows.correctable'] = bare(rr.remapped_row_corr);
    m['remapped_rows.uncorrectable'] = bare(rr.remapped_row_unc);
    m['remapped_rows.pending'] = bare(rr.remapped_row_pending);
    m['remapped_rows.failure'] = bare(rr.remapped_row_failure);
    return m;
  });
}

// ---- CSV fixture: a field model straight from the capture, faults on the model ----
function csvModel(text) {
  const lines = text.split(/\r?\n/).filter((l) => l.trim() !== '');
  const header = lines.shift().split(',').map(normalise);
  let gpus = lines.map((l) => {
    const cells = l.split(',').map((c) => c.trim());
    const m = {};
    header.forEach((h, i) => {
      m[h] = bare(cells[i]);
    });
    return m;
  });
  const g0 = gpus[0];
  if (fault === 'ecc_uncorrected' && g0)
    g0['ecc.errors.uncorrected.volatile.total'] = String(
      Number(g0['ecc.errors.uncorrected.volatile.total'] === NA ? 0 : g0['ecc.errors.uncorrected.volatile.total']) + 2,
    );
  if (fault === 'thermal_slowdown' && g0) {
    g0['clocks_event_reasons.hw_thermal_slowdown'] = 'Active';
    g0['clocks_event_reasons.sw_thermal_slowdown'] = 'Active';
  }
  if (fault === 'sw_thermal_slowdown' && g0) g0['clocks_event_reasons.sw_thermal_slowdown'] = 'Active';
  if (fault === 'gpu_missing') gpus = gpus.slice(0, -1);
  return gpus;
}

function modelToXml(gpus) {
  const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;');
  const v = (m, k, unit = '') => (m[k] === undefined || m[k] === NA ? 'N/A' : esc(m[k]) + (unit ? ` ${unit}` : ''));
  const body = gpus
    .map(
      (m) => `\t<gpu id="${v(m, 'pci.bus_id')}">
\t\t<product_name>${v(m, 'name')}</product_name>
\t\t<persistence_mode>${v(m, 'persistence_mode')}</persistence_mode>
\t\t<uuid>${v(m, 'uuid')}</uuid>
\t\t<pci><pci_bus_id>${v(m, 'pci.bus_id')}</pci_bus_id></pci>
\t\t<clocks_event_reasons>
${REASONS.map((r) => `\t\t\t<clocks_event_reason_${r}>${v(m, `clocks_event_reasons.${r}`)}</clocks_event_reason_${r}>`).join('\n')}
\t\t</clocks_event_reasons>
\t\t<fb_memory_usage><total>${v(m, 'memory.total', 'MiB')}</total><used>${v(m, 'memory.used', 'MiB')}</used></fb_memory_usage>
\t\t<compute_mode>${v(m, 'compute_mode')}</compute_mode>
\t\t<utilization><gpu_util>${v(m, 'utilization.gpu', '%')}</gpu_util></utilization>
\t\t<ecc_errors>
\t\t\t<volatile><dram_correctable>${v(m, 'ecc.errors.corrected.volatile.total')}</dram_correctable><dram_uncorrectable>${v(m, 'ecc.errors.uncorrected.volatile.total')}</dram_uncorrectable></volatile>
\t\t\t<aggregate><dram_correctable>${v(m, 'ecc.errors.corrected.aggregate.total')}</dram_correctable><dram_uncorrectable>${v(m, 'ecc.errors.uncorrected.aggregate.total')}</dram_uncorrectable></aggregate>
\t\t</ecc_errors>
\t\t<remapped_rows><remapped_row_corr>${v(m, 'remapped_rows.correctable')}</remapped_row_corr><remapped_row_unc>${v(m, 'remapped_rows.uncorrectable')}</remapped_row_unc><remapped_row_pending>${v(m, 'remapped_rows.pending')}</remapped_row_pending><remapped_row_failure>${v(m, 'remapped_rows.failure')}</remapped_row_failure></remapped_rows>
\t\t<temperature><gpu_temp>${v(m, 'temperature.gpu', 'C')}</gpu_temp><memory_temp>${v(m, 'temperature.memory', 'C')}</memory_temp></temperature>
\t\t<gpu_power_readings><average_power_draw>${v(m, 'power.draw', 'W')}</average_power_draw><current_power_limit>${v(m, 'power.limit', 'W')}</current_power_limit></gpu_power_readings>
\t</gpu>`,
    )
    .join('\n');
  return `<?xml version="1.0" ?>\n<!DOCTYPE nvidia_smi_log SYSTEM "nvsmi_device_v12.dtd">\n<nvidia_smi_log>\n\t<attached_gpus>${gpus.length}</attached_gpus>\n${body}\n</nvidia_smi_log>\n`;
}

function main() {
  const path = resolveFixture(state.fixture);
  const isXml = path.endsWith('.xml');
  const raw = readFileSync(path, 'utf8');
  const xml = isXml ? applyXmlFaults(raw) : null;
  const gpus = isXml ? xmlModel(xml) : csvModel(raw);

  if (args.includes('-q') && args.includes('-x')) {
    if (gpus.length === 0) {
      process.stdout.write('No devices were found\n');
      process.exit(6);
    }
    process.stdout.write(isXml ? xml : modelToXml(gpus));
    return;
  }
  const q = args.find((a) => a.startsWith('--query-gpu='));
  if (q) {
    const fmt = (args.find((a) => a.startsWith('--format=')) ?? '--format=csv').slice('--format='.length).split(',');
    if (!fmt.includes('csv')) {
      process.stdout.write("Invalid combination of input arguments. Please run 'nvidia-smi -h' for help.\n");
      process.exit(2);
    }
    if (gpus.length === 0) {
      process.stdout.write('No devices were found\n');
      process.exit(6);
    }
    const fields = q
      .slice('--query-gpu='.length)
      .split(',')
      .map((f) => f.trim())
      .filter(Boolean);
    for (const f of fields) {
      if (!(normalise(f) in gpus[0])) {
        process.stdout.write(`Field "${f}" is not a valid field to query.\n\n`);
        process.exit(2);
      }
    }
    const out = [];
    if (!fmt.includes('noheader'))
      out.push(fields.map((f) => (UNIT[normalise(f)] && !fmt.includes('nounits') ? `${f} [${UNIT[normalise(f)]}]` : f)).join(', '));
    for (const m of gpus) {
      out.push(
        fields
          .map((f) => {
            const val = m[normalise(f)];
            const unit = UNIT[normalise(f)];
            return unit && val !== NA && !fmt.includes('nounits') ? `${val} ${unit}` : val;
          })
          .join(', '),
      );
    }
    process.stdout.write(out.join('\n') + '\n');
    return;
  }
  process.stdout.write('fake-nvidia-smi: supports --query-gpu=... --format=csv[,noheader][,nounits] and -q -x\n');
  process.exit(2);
}

// Dispatch last: the helpers above are module-level consts.
if (fault === 'hang') {
  // A GPU fallen off the bus makes nvidia-smi block in the driver: never answer.
  setInterval(() => {}, 1 << 30);
} else if (fault === 'fail') {
  process.stdout.write(readFileSync(join(fixturesDir, 'faults', 'device-handle-gpu-is-lost.txt'), 'utf8'));
  process.exit(15); // nvidia-smi: 15 = GPU has fallen off the bus or is otherwise inaccessible
} else {
  main();
}
