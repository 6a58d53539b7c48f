// Prometheus gauges for the GPU monitor. Values are read from monitor.snapshot() at scrape time
// (collect callbacks), so nothing is stored twice. Labels: `gpu` (index) and `uuid` only, plus
// `reason` on the throttle gauge: cardinality is bounded by GPUs x a fixed reason list.
import { Gauge, type Registry } from 'prom-client';
import type { GpuMonitor, GpuHealthReport, HealthVerdictName } from './monitor.ts';
import { THROTTLE_REASONS } from './types.ts';

const MIB = 1024 * 1024;
export const VERDICT_VALUE: Record<HealthVerdictName, number> = { HEALTHY: 0, DEGRADED: 1, UNHEALTHY: 2 };

/** One place that names every GPU metric; docs/metrics.md is checked against it in a test. */
export const GPU_METRICS = [
  { name: 'gpu_temperature_celsius', help: 'GPU core temperature.', key: 'temperature_gpu_c', scale: 1 },
  { name: 'gpu_memory_temperature_celsius', help: 'GPU memory (HBM) temperature, where reported.', key: 'temperature_memory_c', scale: 1 },
  {
    name: 'gpu_slowdown_temperature_celsius',
    help: "The GPU's own HW slowdown temperature threshold, where reported.",
    key: 'temperature_slowdown_c',
    scale: 1,
  },
  { name: 'gpu_power_draw_watts', help: 'Power draw.', key: 'power_draw_w', scale: 1 },
  { name: 'gpu_power_limit_watts', help: 'Enforced power limit.', key: 'power_limit_w', scale: 1 },
  { name: 'gpu_utilization_ratio', help: 'Share of time a kernel was running (0-1).', key: 'utilization_gpu_pct', scale: 0.01 },
  { name: 'gpu_memory_used_bytes', help: 'Framebuffer memory in use.', key: 'memory_used_mib', scale: MIB },
  { name: 'gpu_memory_total_bytes', help: 'Framebuffer memory size.', key: 'memory_total_mib', scale: MIB },
  {
    name: 'gpu_ecc_corrected_volatile_errors',
    help: 'Corrected ECC errors since the last driver load (gauge: resets with the driver).',
    key: 'ecc_corrected_volatile',
    scale: 1,
  },
  {
    name: 'gpu_ecc_uncorrected_volatile_errors',
    help: 'Uncorrected ECC errors since the last driver load.',
    key: 'ecc_uncorrected_volatile',
    scale: 1,
  },
  {
    name: 'gpu_ecc_corrected_aggregate_errors',
    help: "Corrected ECC errors over the GPU's lifetime.",
    key: 'ecc_corrected_aggregate',
    scale: 1,
  },
  {
    name: 'gpu_ecc_uncorrected_aggregate_errors',
    help: "Uncorrected ECC errors over the GPU's lifetime.",
    key: 'ecc_uncorrected_aggregate',
    scale: 1,
  },
  { name: 'gpu_remapped_rows_pending', help: '1 when a row remap is pending (GPU reset needed).', key: 'remapped_rows_pending', scale: 1 },
  { name: 'gpu_remapped_rows_failure', help: '1 when a row remapping failed.', key: 'remapped_rows_failure', scale: 1 },
] as const;

function value(raw: string | undefined, scale: number): number | null {
  if (raw === undefined) return null;
  if (raw === 'true') return 1;
  if (raw === 'false') return 0;
  const n = Number(raw);
  return Number.isFinite(n) ? n * scale : null;
}

function labels(g: GpuHealthReport): { gpu: string; uuid: string } {
  return { gpu: String(g.index), uuid: g.uuid };
}

export function registerGpuMetrics(registry: Registry, monitor: GpuMonitor): void {
  for (const m of GPU_METRICS) {
    new Gauge({
      name: m.name,
      help: m.help,
      labelNames: ['gpu', 'uuid'],
      registers: [registry],
      collect() {
        this.reset(); // a GPU that vanished must not keep its last value
        for (const g of monitor.snapshot().gpus) {
          const v = value(g.readings[m.key], m.scale);
          if (v !== null) this.set(labels(g), v);
        }
      },
    });
  }
  new Gauge({
    name: 'gpu_throttle_reason_active',
    help: 'Clock event (throttle) reason active: 1, inactive: 0.',
    labelNames: ['gpu', 'uuid', 'reason'],
    registers: [registry],
    collect() {
      this.reset();
      for (const g of monitor.snapshot().gpus) {
        for (const reason of THROTTLE_REASONS) {
          const v = value(g.readings[`throttle_${reason}`], 1);
          if (v !== null) this.set({ ...labels(g), reason }, v);
        }
      }
    },
  });
  new Gauge({
    name: 'gpu_health_verdict',
    help: 'Health verdict per GPU: 0 healthy, 1 degraded, 2 unhealthy.',
    labelNames: ['gpu', 'uuid'],
    registers: [registry],
    collect() {
      this.reset();
      for (const g of monitor.snapshot().gpus) this.set(labels(g), VERDICT_VALUE[g.verdict]);
    },
  });
  new Gauge({
    name: 'gpu_node_health_verdict',
    help: 'Node GPU verdict: 0 healthy, 1 degraded, 2 unhealthy.',
    registers: [registry],
    collect() {
      this.set(VERDICT_VALUE[monitor.snapshot().verdict]);
    },
  });
  new Gauge({
    name: 'gpu_last_poll_timestamp_seconds',
    help: 'Unix time of the last successful nvidia-smi poll.',
    registers: [registry],
    collect() {
      const t = monitor.snapshot().lastPollAt;
      if (t !== null) this.set(t / 1000);
    },
  });
}
