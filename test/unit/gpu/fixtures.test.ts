// Every copied nvidia-smi and kernel-log fixture parses (table-driven over the directory
// listing), plus spot checks of values against the fixture text.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseQueryXml } from '../../../node-agent/gpu/query-xml.ts';
import { parseQueryGpuCsv } from '../../../node-agent/gpu/query-csv.ts';
import { parseQueryText } from '../../helpers/nvidia-smi-text.ts';
import { parseNvidiaSmiError } from '../../../node-agent/gpu/errors.ts';
import { parseKernelLog } from '../../../node-agent/gpu/kernel-log.ts';
import { HealthPolicy } from '../../../node-agent/gpu/health-policy.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'fixtures');
const smi = join(root, 'nvidia-smi');
const list = (dir: string, ext: string): string[] =>
  readdirSync(dir)
    .filter((f) => f.endsWith(ext))
    .sort();
const read = (...p: string[]): string => readFileSync(join(...p), 'utf8');

for (const f of list(join(smi, 'xml'), '.xml')) {
  test(`xml parses: ${f}`, () => {
    const r = parseQueryXml(read(smi, 'xml', f));
    assert.equal(r.error, undefined);
    assert.ok(r.gpus.length >= 1);
    for (const g of r.gpus) {
      assert.match(g.uuid ?? '', /^GPU-/);
      assert.ok(g.name);
      assert.ok(g.memoryTotalMiB !== null && g.memoryTotalMiB > 0);
    }
  });
}

for (const f of list(join(smi, 'csv'), '.csv')) {
  test(`csv parses: ${f}`, () => {
    const r = parseQueryGpuCsv(read(smi, 'csv', f));
    assert.ok(r.readings.length >= 1, 'at least one row');
    for (const g of r.readings) assert.ok(g.name, 'name column');
    if (f.includes('query-gpu-all-fields')) {
      for (const g of r.readings) {
        assert.equal(g.index, 0);
        assert.ok(g.temperatureGpuC !== null && g.powerDrawW !== null && g.memoryTotalMiB !== null);
        assert.equal(typeof g.throttle.hw_slowdown, 'boolean');
      }
    }
  });
}

for (const f of list(join(smi, 'query-text'), '.txt')) {
  test(`-q text parses: ${f}`, () => {
    const r = parseQueryText(read(smi, 'query-text', f));
    assert.ok(r.gpus.length >= 1);
    for (const g of r.gpus) {
      assert.match(g.uuid ?? '', /^GPU-/);
      assert.ok(g.temperatureGpuC !== null);
    }
  });
}

for (const f of list(join(smi, 'faults'), '.txt')) {
  test(`fault capture parses: ${f}`, () => {
    const text = read(smi, 'faults', f);
    if (f.startsWith('device-handle')) {
      const e = parseNvidiaSmiError(text);
      assert.ok(e);
      assert.equal(e.kind, f.includes('gpu-is-lost') ? 'gpu_lost' : 'device_handle_unknown_error');
      assert.match(e.pci ?? '', /^0000:[0-9a-f]{2}:00$/);
    } else if (f.includes('-table-')) {
      // The default table shows a value nvidia-smi could not read as `ERR!`.
      assert.ok((text.match(/ERR!/g) ?? []).length >= 1);
    } else {
      assert.equal(parseQueryText(text).gpus.length, 1);
    }
  });
}

for (const f of list(join(root, 'kernel-log'), '.log')) {
  test(`kernel log parses: ${f}`, () => {
    const r = parseKernelLog(read(root, 'kernel-log', f));
    assert.ok(r.xids.length >= 1);
    for (const x of r.xids) {
      assert.match(x.pci, /^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}$/);
      assert.notEqual(x.timestamp.kind, 'none');
    }
  });
}

test('A10 remapped rows uncorrectable 4, pending yes -> UNHEALTHY remapped_rows_pending', () => {
  const [g] = parseQueryText(read(smi, 'faults', 'a10-driver535.129.03-q-remapped-rows-uncorrectable4-pending.txt')).gpus;
  assert.ok(g);
  assert.equal(g.remappedRows.uncorrectable, 4);
  assert.equal(g.remappedRows.pending, true);
  assert.equal(g.remappedRows.failure, false);
  assert.equal(g.pciBusId, '00000000:07:00.0');
  const v = new HealthPolicy().evaluateGpu(g);
  assert.equal(v.verdict, 'UNHEALTHY');
  assert.deepEqual(v.reasons, ['remapped_rows_pending']);
});

test('V100 HW slowdown + power brake (pre-535 names) -> UNHEALTHY', () => {
  const [g] = parseQueryText(read(smi, 'faults', 'v100-sxm2-32gb-q-excerpt-hw-power-brake-slowdown-active.txt')).gpus;
  assert.ok(g);
  assert.equal(g.throttle.hw_slowdown, true);
  assert.equal(g.throttle.hw_thermal_slowdown, false);
  assert.equal(g.throttle.hw_power_brake_slowdown, true);
  const v = new HealthPolicy().evaluateGpu(g);
  assert.equal(v.verdict, 'UNHEALTHY');
  assert.deepEqual(v.reasons.sort(), ['hw_power_brake', 'hw_slowdown']);
});

test('RTX 3090 SW power cap Active alone -> HEALTHY', () => {
  const [g] = parseQueryXml(read(smi, 'xml', 'rtx-3090-driver590.44.01-sw-power-cap-active.xml')).gpus;
  assert.ok(g);
  assert.equal(g.throttle.sw_power_cap, true);
  assert.equal(g.temperatureGpuC, 32);
  assert.equal(g.temperatureSlowdownC, 95);
  assert.equal(g.powerDrawW, 35.06);
  assert.equal(new HealthPolicy().evaluateGpu(g).verdict, 'HEALTHY');
});

test('8x V100S: eight GPUs, SW power cap on two, utilisation not taken from accounted processes', () => {
  const r = parseQueryXml(read(smi, 'xml', '8x-tesla-v100s-pcie-32gb-driver460.73.01-load.xml'));
  assert.equal(r.gpus.length, 8);
  assert.equal(r.gpus.filter((g) => g.throttle.sw_power_cap === true).length, 2);
  assert.deepEqual(
    r.gpus.map((g) => g.index),
    [0, 1, 2, 3, 4, 5, 6, 7],
  );
  for (const g of r.gpus) assert.ok(g.utilizationGpuPct !== null && g.utilizationGpuPct >= 23 && g.utilizationGpuPct <= 99);
  const policy = new HealthPolicy();
  for (const g of r.gpus) assert.equal(policy.evaluateGpu(g).verdict, 'HEALTHY');
});

test('P100 aggregate SBE 3, steady -> HEALTHY on repeated readings', () => {
  const text = read(smi, 'xml', 'tesla-p100-pcie-16gb-driver510.47.03.xml');
  const policy = new HealthPolicy();
  for (let i = 0; i < 3; i++) {
    const [g] = parseQueryXml(text).gpus;
    assert.ok(g);
    assert.equal(g.ecc.correctedAggregate, 3);
    assert.equal(g.ecc.uncorrectedAggregate, 0);
    assert.equal(g.remappedRows.pending, null); // <remapped_rows>N/A</remapped_rows>
    assert.deepEqual(policy.evaluateGpu(g, 1000 * i), { verdict: 'HEALTHY', reasons: [] });
  }
});

test('A100 MIG (535, v12): MIG mode, remapped rows N/A, new event-reason names', () => {
  const [g] = parseQueryXml(read(smi, 'xml', 'a100-sxm4-80gb-mig-driver535.54.03.xml')).gpus;
  assert.ok(g);
  assert.equal(g.migMode, 'Enabled');
  assert.equal(g.remappedRows.pending, null);
  assert.equal(g.throttle.hw_slowdown, false);
  assert.equal(g.powerDrawW, 67.03);
});

test('H100 CSV (590, header + units): values, deprecated -> null, T.Limit', () => {
  const [g] = parseQueryGpuCsv(read(smi, 'csv', 'h100-80gb-hbm3-driver590.48.01-query-gpu-all-fields-load.csv')).readings;
  assert.ok(g);
  assert.equal(g.name, 'NVIDIA H100 80GB HBM3');
  assert.equal(g.pciBusId, '00000000:00:09.0');
  assert.equal(g.temperatureGpuC, 59);
  assert.equal(g.temperatureMemoryC, 54);
  assert.equal(g.powerDrawW, 631.95);
  assert.equal(g.powerLimitW, 700);
  assert.equal(g.memoryUsedMiB, 19818);
  assert.equal(g.memoryTotalMiB, 81559);
  assert.equal(g.utilizationGpuPct, 100);
  assert.equal(g.remappedRows.pending, false);
  assert.equal(g.retiredPages.singleBit, null);
  assert.equal(g.temperatureTlimitC, 26);
});

test('P100 csv,nounits subset (header keeps units, values do not)', () => {
  const [g] = parseQueryGpuCsv(read(smi, 'csv', 'tesla-p100-pcie-16gb-query-gpu-subset.csv')).readings;
  assert.ok(g);
  assert.equal(g.memoryUsedMiB, 0);
  assert.equal(g.powerDrawW, 28.16);
  assert.equal(g.temperatureGpuC, 37);
});

test('8x H100 -q (535.161.08): HW slowdown + power brake Active on real GPUs', () => {
  const r = parseQueryText(read(smi, 'query-text', '8x-h100-80gb-hbm3-driver535.161.08-q.txt'));
  assert.equal(r.gpus.length, 8);
  assert.equal(r.gpus[0]!.throttle.hw_slowdown, true);
  assert.equal(r.gpus[0]!.throttle.hw_power_brake_slowdown, true);
});
