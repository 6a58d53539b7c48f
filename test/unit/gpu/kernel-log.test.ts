import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { canonicalPciAddress, classifyXid, parseKernelLog } from '../../../node-agent/gpu/kernel-log.ts';
import { parseQueryGpuCsv } from '../../../node-agent/gpu/query-csv.ts';

const dir = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'fixtures', 'kernel-log');
const read = (f: string): string => readFileSync(join(dir, f), 'utf8');

test('PCI spellings map to one canonical address', () => {
  for (const s of ['00000000:9B:00.0', 'PCI:0000:9b:00', '0000:9b:00.0', 'GPU0000:9B:00.0', 'GPU 0000:9B:00.0']) {
    assert.equal(canonicalPciAddress(s), '0000:9b:00', s);
  }
  assert.equal(canonicalPciAddress('not an address'), null);
});

test('Xid 48 + 63 + 94 (ISO timestamps) attach to the nvidia-smi bus id', () => {
  const r = parseKernelLog(read('xid-48-63-94-dbe-rowremap-contained.dmesg-time-format-iso.log'));
  assert.deepEqual([...new Set(r.xids.map((x) => x.xid))], [48, 63, 94]);
  assert.ok(r.xids.every((x) => x.pci === canonicalPciAddress('00000000:19:00.0')));
  const dbe = r.xids[0]!;
  assert.equal(dbe.severity, 'unhealthy');
  assert.equal(dbe.timestamp.epochMs, Date.parse('2024-11-15T12:02:03.470068+00:00'));
  const withPid = r.xids.find((x) => x.pid === '1248209');
  assert.equal(withPid?.process, 'python3.10');
});

test('Xid 13 / 43 (dmesg --decode) are informational', () => {
  const r = parseKernelLog(read('xid-13-and-43-graphics-exceptions.dmesg-decode-iso.log'));
  assert.ok(r.xids.some((x) => x.xid === 13) && r.xids.some((x) => x.xid === 43));
  assert.ok(r.xids.every((x) => x.severity === 'informational' && x.pci === '0000:38:00'));
});

test('Xid 119 (dmesg -T) with UUID mapping line', () => {
  const r = parseKernelLog(read('xid-119-gsp-rpc-timeout-poweredge-xe9680.dmesg-ctime.log'));
  assert.equal(r.xids[0]!.xid, 119);
  assert.equal(r.xids[0]!.timestamp.kind, 'ctime');
  assert.equal(r.xids[0]!.process, 'nvidia-smi');
  assert.equal(r.uuidByPci['0000:9b:00'], 'GPU-509665ad-b600-ac93-3616-d754b23d636d');
});

test('Xid 79 (boot-seconds) and NVSwitch SXids', () => {
  const r = parseKernelLog(read('xid-79-fallen-off-bus-with-nvswitch-sxid-20034.excerpt.log'));
  assert.equal(r.xids.length, 1);
  assert.equal(r.xids[0]!.xid, 79);
  assert.equal(r.xids[0]!.timestamp.bootSeconds, 6781741.548779);
  assert.ok(r.sxids.length >= 1 && r.sxids.every((s) => s.sxid === 20034));
});

test('multi-line fallen-off-the-bus without an Xid number -> inferred Xid 79', () => {
  const r = parseKernelLog(read('gpu-fallen-off-bus-without-xid-driver570.158.01.excerpt.log'));
  assert.equal(r.xids.length, 1);
  assert.equal(r.xids[0]!.xid, 79);
  assert.equal(r.xids[0]!.inferred, true);
  assert.equal(r.xids[0]!.pci, '0000:b3:00');
});

test('classifyXid table', () => {
  assert.equal(classifyXid(95).severity, 'unhealthy');
  assert.equal(classifyXid(64).severity, 'unhealthy');
  assert.equal(classifyXid(120).severity, 'unhealthy');
  assert.equal(classifyXid(31).severity, 'informational');
  assert.equal(classifyXid(9999).severity, 'unknown');
});

test('csv noheader form with the monitor field list', () => {
  const r = parseQueryGpuCsv('0, GPU-a, Tesla T4, 00000000:00:1E.0, 40, [N/A], 26.78, 70.00, 0, 0, 15360\n', [
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
  ]);
  assert.equal(r.readings[0]!.temperatureMemoryC, null);
  assert.equal(r.readings[0]!.powerLimitW, 70);
  assert.equal(canonicalPciAddress(r.readings[0]!.pciBusId!), '0000:00:1e');
});

test('docs/metrics.md lists every GPU metric the code declares', async () => {
  const { GPU_METRICS } = await import('../../../node-agent/gpu/metrics.ts');
  const doc = readFileSync(join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'docs', 'metrics.md'), 'utf8');
  const names = [
    ...GPU_METRICS.map((m) => m.name),
    'gpu_throttle_reason_active',
    'gpu_health_verdict',
    'gpu_node_health_verdict',
    'gpu_last_poll_timestamp_seconds',
  ];
  for (const n of names) assert.ok(doc.includes(`\`${n}\``), n);
});
