// GpuMonitor against the fake nvidia-smi (real fixtures, injected faults).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import { GpuMonitor, type NodeGpuHealth } from '../../../node-agent/gpu/monitor.ts';
import { registerGpuMetrics } from '../../../node-agent/gpu/metrics.ts';
import { createFakeNvidiaSmi } from '../../sim/nvidia-smi/control.ts';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

function monitorFor(
  fake: ReturnType<typeof createFakeNvidiaSmi>,
  extra: Partial<ConstructorParameters<typeof GpuMonitor>[0]> = {},
): GpuMonitor {
  return new GpuMonitor({ nvidiaSmiPath: fake.path, env: fake.env, timeoutMs: 3000, xmlIntervalMs: 0, ...extra });
}

test('healthy P100, then an uncorrected ECC error appears -> UNHEALTHY + change; recovery after reset', async () => {
  const fake = createFakeNvidiaSmi({ fixture: 'tesla-p100-pcie-16gb-driver510.47.03.xml' });
  const m = monitorFor(fake);
  try {
    const changes: NodeGpuHealth[] = [];
    m.on('change', (h: NodeGpuHealth) => changes.push(h));
    const t0 = performance.now();
    const first = await m.pollOnce();
    const pollMs = performance.now() - t0;
    const t1 = performance.now();
    await m.pollOnce(); // xmlIntervalMs is 0 here, so this is CSV + XML again
    console.log(
      `# one poll (CSV + XML) with the fake nvidia-smi: ${pollMs.toFixed(0)} ms first, ${(performance.now() - t1).toFixed(0)} ms next`,
    );
    assert.equal(first.verdict, 'HEALTHY');
    assert.equal(first.gpus.length, 1);
    assert.equal(first.gpus[0]!.uuid, 'GPU-d3da8716-eaab-75db-efc1-60e88e1cd55e');
    assert.equal(first.gpus[0]!.readings['ecc_corrected_aggregate'], '3');
    assert.equal(first.gpus[0]!.readings['temperature_slowdown_c'], '82'); // from XML detail
    assert.equal(changes.length, 1);

    fake.setFault('ecc_uncorrected');
    const bad = await m.pollOnce();
    assert.equal(bad.verdict, 'UNHEALTHY');
    assert.deepEqual(bad.gpus[0]!.reasons, ['ecc_uncorrected_rising']);
    assert.equal(changes.length, 2);
    assert.equal(changes[1]!.verdict, 'UNHEALTHY');

    fake.setFault(null); // volatile counter back down: a GPU reset
    assert.equal((await m.pollOnce()).verdict, 'HEALTHY');
    assert.equal(changes.length, 3);
  } finally {
    m.stop();
    fake.cleanup();
  }
});

test('thermal slowdown fault -> UNHEALTHY (hw thermal + at threshold) with sw thermal listed', async () => {
  const fake = createFakeNvidiaSmi({ fixture: 'tesla-t4-driver515.105.01.xml' });
  const m = monitorFor(fake);
  try {
    assert.equal((await m.pollOnce()).verdict, 'HEALTHY');
    fake.setFault('thermal_slowdown');
    const h = await m.pollOnce();
    assert.equal(h.verdict, 'UNHEALTHY');
    assert.deepEqual(h.gpus[0]!.reasons.sort(), ['hw_thermal_slowdown', 'sw_thermal_slowdown', 'temperature_at_slowdown_threshold']);
  } finally {
    m.stop();
    fake.cleanup();
  }
});

test('hang -> timeouts -> nvidia_smi_failing after N; recovery back to HEALTHY', async () => {
  const fake = createFakeNvidiaSmi({ fixture: 'a10g-driver515.105.01.xml' });
  const m = monitorFor(fake, { timeoutMs: 1500, failuresBeforeUnhealthy: 3 });
  try {
    assert.equal((await m.pollOnce()).verdict, 'HEALTHY');
    fake.setFault('hang');
    const t0 = performance.now();
    assert.equal((await m.pollOnce()).verdict, 'HEALTHY'); // 1 failure: last verdict stands
    assert.ok(performance.now() - t0 < 4000, 'the hung process was killed at the timeout');
    assert.equal((await m.pollOnce()).verdict, 'HEALTHY'); // 2
    const h = await m.pollOnce(); // 3
    assert.equal(h.verdict, 'UNHEALTHY');
    assert.deepEqual(h.reasons, ['nvidia_smi_failing']);
    assert.deepEqual(h.gpus[0]!.reasons, ['nvidia_smi_failing']);
    assert.match(m.lastError ?? '', /timed out/);
    fake.setFault(null);
    assert.equal((await m.pollOnce()).verdict, 'HEALTHY');
  } finally {
    m.stop();
    fake.cleanup();
  }
});

test('fail ("GPU is lost", exit 15) -> gpu_lost on the first failed poll, not after N', async () => {
  const fake = createFakeNvidiaSmi({ fixture: 'a10g-driver515.105.01.xml', fault: 'fail' });
  const m = monitorFor(fake, { failuresBeforeUnhealthy: 2 });
  try {
    const h = await m.pollOnce();
    assert.equal(h.verdict, 'UNHEALTHY');
    assert.deepEqual(h.reasons, ['gpu_lost']);
    assert.match(m.lastError ?? '', /GPU is lost/);
  } finally {
    m.stop();
    fake.cleanup();
  }
});

test('a GPU disappears from the inventory -> gpu_missing; comes back -> HEALTHY', async () => {
  const fake = createFakeNvidiaSmi({ fixture: '8x-tesla-v100s-pcie-32gb-driver460.73.01-load.xml' });
  const m = monitorFor(fake);
  try {
    const first = await m.pollOnce();
    assert.equal(first.gpus.length, 8);
    assert.equal(first.verdict, 'HEALTHY'); // SW power cap on two GPUs is not a fault
    fake.setFault('gpu_missing');
    const h = await m.pollOnce();
    assert.equal(h.verdict, 'UNHEALTHY');
    assert.deepEqual(h.reasons, ['gpu_missing']);
    const missing = h.gpus.filter((g) => g.reasons.includes('gpu_missing'));
    assert.equal(missing.length, 1);
    assert.equal(missing[0]!.index, 7);
    fake.setFault(null);
    assert.equal((await m.pollOnce()).verdict, 'HEALTHY');
  } finally {
    m.stop();
    fake.cleanup();
  }
});

test('CSV-only fixture (H100, 590) through the fake; start/stop polling loop; metrics', async () => {
  const fake = createFakeNvidiaSmi({ fixture: 'h100-80gb-hbm3-driver590.48.01-query-gpu-all-fields-load.csv' });
  const m = monitorFor(fake, { queryIntervalMs: 50 });
  try {
    await m.start();
    const s = m.snapshot();
    assert.equal(s.verdict, 'HEALTHY');
    assert.equal(s.gpus[0]!.readings['power_draw_w'], '631.95');
    const registry = new Registry();
    registerGpuMetrics(registry, m);
    const text = await registry.metrics();
    assert.match(text, /gpu_temperature_celsius\{gpu="0",uuid="GPU-00000000-0000-0000-0000-000000000000"\} 59/);
    assert.match(text, /gpu_memory_used_bytes\{gpu="0",uuid="[^"]+"\} 20780679168/);
    assert.match(text, /gpu_utilization_ratio\{gpu="0",uuid="[^"]+"\} 1/);
    assert.match(text, /gpu_throttle_reason_active\{gpu="0",uuid="[^"]+",reason="hw_slowdown"\} 0/);
    assert.match(text, /gpu_health_verdict\{gpu="0",uuid="[^"]+"\} 0/);
    const changed = new Promise<NodeGpuHealth>((resolve) => m.once('change', resolve));
    fake.setFault('thermal_slowdown');
    const keepAlive = setTimeout(() => {}, 10_000); // the monitor's timer is unref'd
    const h = await changed; // picked up by the timer loop
    clearTimeout(keepAlive);
    assert.equal(h.verdict, 'UNHEALTHY');
    assert.match(await registry.metrics(), /gpu_health_verdict\{gpu="0",uuid="[^"]+"\} 2/);
  } finally {
    m.stop();
    fake.cleanup();
  }
});

test('unknown CSV field on an old driver is dropped and the query retried', async () => {
  // The fake rejects fields its fixture has no column for, as nvidia-smi does for unknown fields.
  const fake = createFakeNvidiaSmi({ fixture: 'tesla-p100-pcie-16gb-query-gpu-subset.csv' });
  const m = monitorFor(fake);
  try {
    const h = await m.pollOnce();
    assert.equal(h.gpus.length, 1);
    assert.equal(h.gpus[0]!.readings['temperature_gpu_c'], '37');
  } finally {
    m.stop();
    fake.cleanup();
  }
});

test('nvidia-smi saying "GPU is lost" makes the node UNHEALTHY at once (gpu_lost); other failures wait for the threshold', async () => {
  const fake = createFakeNvidiaSmi({ fixture: 'tesla-p100-pcie-16gb-driver510.47.03.xml' });
  const dir = mkdtempSync(join(tmpdir(), 'smi-lost-'));
  // A real nvidia-smi failure text (test/fixtures/nvidia-smi/faults), printed with its non-zero exit.
  const lost = join(dir, 'nvidia-smi');
  const fixture = fileURLToPath(new URL('../../fixtures/nvidia-smi/faults/device-handle-gpu-is-lost.txt', import.meta.url));
  const m = monitorFor(fake, { failuresBeforeUnhealthy: 3 });
  try {
    assert.equal((await m.pollOnce()).verdict, 'HEALTHY'); // inventory known from the fake
    writeFileSync(lost, `#!/bin/sh\ncat '${fixture}'\nexit 15\n`, { mode: 0o755 });
    (m as unknown as { opts: { nvidiaSmiPath: string } }).opts.nvidiaSmiPath = lost;
    const h = await m.pollOnce();
    assert.equal(h.verdict, 'UNHEALTHY');
    assert.deepEqual(h.reasons, ['gpu_lost']);
    assert.deepEqual(
      h.gpus.map((g) => g.reasons),
      [['gpu_lost']],
    );
    assert.match(m.lastError ?? '', /GPU is lost/);

    // A failure nvidia-smi does not name: the last verdict stands below the threshold.
    const m2 = monitorFor(fake, { failuresBeforeUnhealthy: 3 });
    assert.equal((await m2.pollOnce()).verdict, 'HEALTHY');
    writeFileSync(lost, '#!/bin/sh\necho "something odd" >&2\nexit 3\n', { mode: 0o755 });
    (m2 as unknown as { opts: { nvidiaSmiPath: string } }).opts.nvidiaSmiPath = lost;
    assert.equal((await m2.pollOnce()).verdict, 'HEALTHY');
    m2.stop();
  } finally {
    m.stop();
    fake.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});
