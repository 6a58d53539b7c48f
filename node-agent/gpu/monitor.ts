// Runs nvidia-smi on a schedule and turns its output into health verdicts.
// CSV poll (fast readings) every queryIntervalMs; XML read (thresholds, remapped rows, MIG)
// every xmlIntervalMs; optional kernel-log read for Xids at the XML cadence. execa, no shell,
// each run bounded by timeoutMs and killed when it overruns: a GPU that fell off the bus makes
// nvidia-smi hang, and a hung poll must count as a failure rather than stall the agent.
import { EventEmitter } from 'node:events';
import { execa } from 'execa';
import { invalidFieldFromError, parseQueryGpuCsv, QUERY_GPU_FIELDS, queryGpuArgs } from './query-csv.ts';
import { parseQueryXml, QUERY_XML_ARGS } from './query-xml.ts';
import { canonicalPciAddress, parseKernelLog, readKernelLog, type XidEvent } from './kernel-log.ts';
import { HealthPolicy, nodeVerdict, type HealthThresholds, type HealthVerdictName, type Verdict } from './health-policy.ts';
import { mergeReadings, type GpuReading } from './types.ts';
import { parseNvidiaSmiError, type SmiErrorKind } from './errors.ts';
import { setOwn } from '../../common/own.ts';

export type { HealthVerdictName } from './health-policy.ts';

export interface GpuHealthReport {
  index: number;
  uuid: string;
  name: string;
  verdict: HealthVerdictName;
  reasons: string[];
  /** Raw values as strings, e.g. temperature_gpu_c, power_draw_w, ecc_uncorrected_volatile. */
  readings: Record<string, string>;
}
export interface NodeGpuHealth {
  verdict: HealthVerdictName;
  reasons: string[];
  gpus: GpuHealthReport[];
  lastPollAt: number | null;
}

export interface GpuMonitorOptions {
  nvidiaSmiPath: string;
  queryIntervalMs?: number;
  xmlIntervalMs?: number;
  timeoutMs?: number;
  failuresBeforeUnhealthy?: number;
  kernelLog?: { enabled: boolean };
  thresholds?: Partial<HealthThresholds>;
  /** Extra environment for nvidia-smi (tests point the fake at its state file). */
  env?: Record<string, string>;
}

interface RunResult {
  ok: boolean;
  stdout: string;
  error?: string;
  noDevices?: boolean;
  errorKind?: SmiErrorKind;
}

export class GpuMonitor extends EventEmitter {
  private readonly opts: Required<Omit<GpuMonitorOptions, 'thresholds' | 'env' | 'kernelLog'>> & {
    env: Record<string, string>;
    kernelLog: boolean;
  };
  private readonly policy: HealthPolicy;
  private fields: string[] = [...QUERY_GPU_FIELDS];
  private detail = new Map<string, GpuReading>(); // last XML reading by GPU key
  private inventory: { key: string; index: number; uuid: string; name: string; pci: string | null }[] | null = null;
  private lastKnown = new Map<string, GpuHealthReport>();
  private xids: XidEvent[] = [];
  private consecutiveFailures = 0;
  private lastXmlAt = 0;
  private current: NodeGpuHealth = { verdict: 'HEALTHY', reasons: [], gpus: [], lastPollAt: null };
  private signature = '';
  private timer: NodeJS.Timeout | null = null;
  private running = false;
  private abort = new AbortController();
  /** Last error text from nvidia-smi, for logs. */
  lastError: string | null = null;

  constructor(opts: GpuMonitorOptions) {
    super();
    this.opts = {
      nvidiaSmiPath: opts.nvidiaSmiPath,
      queryIntervalMs: opts.queryIntervalMs ?? 5000,
      xmlIntervalMs: opts.xmlIntervalMs ?? 30000,
      timeoutMs: opts.timeoutMs ?? 10000,
      failuresBeforeUnhealthy: opts.failuresBeforeUnhealthy ?? 3,
      env: opts.env ?? {},
      kernelLog: opts.kernelLog?.enabled ?? false,
    };
    this.policy = new HealthPolicy(opts.thresholds);
  }

  /** Resolves after the first poll, then polls every queryIntervalMs until stop(). */
  async start(): Promise<void> {
    this.running = true;
    this.abort = new AbortController();
    await this.pollOnce();
    this.schedule();
  }

  stop(): void {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.abort.abort(); // kills an in-flight nvidia-smi
  }

  snapshot(): NodeGpuHealth {
    return structuredClone(this.current);
  }

  // setTimeout chain, not setInterval: a slow poll never overlaps the next one.
  private schedule(): void {
    if (!this.running) return;
    this.timer = setTimeout(() => {
      this.pollOnce()
        .catch((err: unknown) => {
          this.lastError = String(err);
        })
        .finally(() => this.schedule());
    }, this.opts.queryIntervalMs);
    this.timer.unref();
  }

  private async run(args: string[]): Promise<RunResult> {
    try {
      const r = await execa(this.opts.nvidiaSmiPath, args, {
        timeout: this.opts.timeoutMs,
        forceKillAfterDelay: 1000, // SIGKILL if SIGTERM is ignored (a process stuck in the driver)
        reject: false,
        stdin: 'ignore',
        env: this.opts.env,
        cancelSignal: this.abort.signal,
        maxBuffer: 64 * 1024 * 1024,
      });
      const out = `${r.stdout}\n${r.stderr}`;
      const known = parseNvidiaSmiError(out);
      if (known?.kind === 'no_devices') return { ok: true, stdout: '', noDevices: true };
      if (r.timedOut) return { ok: false, stdout: '', error: `nvidia-smi timed out after ${this.opts.timeoutMs} ms` };
      if (r.exitCode !== 0)
        return { ok: false, stdout: r.stdout, error: (out.trim().split('\n')[0] ?? '') || `exit ${r.exitCode}`, errorKind: known?.kind };
      return { ok: true, stdout: r.stdout };
    } catch (err) {
      return { ok: false, stdout: '', error: (err as Error).message };
    }
  }

  private async queryCsv(): Promise<RunResult & { readings: GpuReading[]; rows: Record<string, string>[] }> {
    // An unknown field fails the whole query on that driver: drop it and ask again.
    for (let attempt = 0; attempt <= QUERY_GPU_FIELDS.length; attempt++) {
      const r = await this.run(queryGpuArgs(this.fields));
      const bad = !r.ok ? invalidFieldFromError(r.stdout + (r.error ?? '')) : null;
      if (bad && this.fields.includes(bad) && this.fields.length > 1) {
        this.fields = this.fields.filter((f) => f !== bad);
        continue;
      }
      if (!r.ok || r.noDevices) return { ...r, readings: [], rows: [] };
      const parsed = parseQueryGpuCsv(r.stdout, this.fields);
      parsed.readings.forEach((g, i) => {
        g.index ??= i;
      }); // rows come in enumeration order
      if (parsed.readings.length === 0)
        return { ok: false, stdout: r.stdout, error: `unparseable nvidia-smi output: ${r.stdout.slice(0, 200)}`, readings: [], rows: [] };
      return { ...r, ...parsed };
    }
    return { ok: false, stdout: '', error: 'too many invalid fields', readings: [], rows: [] };
  }

  async pollOnce(): Promise<NodeGpuHealth> {
    const now = Date.now();
    const csv = await this.queryCsv();
    if (!csv.ok) {
      this.consecutiveFailures++;
      this.lastError = csv.error ?? 'nvidia-smi failed';
      return this.publish(this.failedHealth(now, csv.errorKind));
    }
    this.consecutiveFailures = 0;
    this.lastError = null;

    if (now - this.lastXmlAt >= this.opts.xmlIntervalMs || this.lastXmlAt === 0) {
      const xml = await this.run([...QUERY_XML_ARGS]);
      if (xml.ok && !xml.noDevices) {
        const parsed = parseQueryXml(xml.stdout);
        if (!parsed.error) {
          this.detail = new Map(parsed.gpus.map((g) => [g.uuid ?? `pci:${canonicalPciAddress(g.pciBusId ?? '')}`, g]));
          this.lastXmlAt = now;
        }
      }
      if (this.opts.kernelLog) await this.readXids();
    }

    const readings = csv.readings.map((r) => mergeReadings(r, (r.uuid && this.detail.get(r.uuid)) || undefined));
    if (this.inventory === null && readings.length > 0) {
      this.inventory = readings.map((r) => ({
        key: HealthPolicy.key(r),
        index: r.index ?? 0,
        uuid: r.uuid ?? '',
        name: r.name ?? '',
        pci: r.pciBusId ? canonicalPciAddress(r.pciBusId) : null,
      }));
    }
    const verdicts: Verdict[] = [];
    const gpus: GpuHealthReport[] = readings.map((r) => {
      const pci = r.pciBusId ? canonicalPciAddress(r.pciBusId) : null;
      const v = this.policy.evaluateGpu(
        r,
        now,
        this.xids.filter((x) => x.pci === pci),
      );
      verdicts.push(v);
      const report: GpuHealthReport = {
        index: r.index ?? 0,
        uuid: r.uuid ?? '',
        name: r.name ?? '',
        verdict: v.verdict,
        reasons: v.reasons,
        readings: readingsRecord(r),
      };
      this.lastKnown.set(HealthPolicy.key(r), report);
      return report;
    });
    const nodeReasons: string[] = [];
    const present = new Set(readings.map((r) => HealthPolicy.key(r)));
    for (const inv of this.inventory ?? []) {
      if (present.has(inv.key)) continue;
      const last = this.lastKnown.get(inv.key);
      gpus.push({
        index: inv.index,
        uuid: inv.uuid,
        name: inv.name,
        verdict: 'UNHEALTHY',
        reasons: ['gpu_missing'],
        readings: last?.readings ?? {},
      });
      if (!nodeReasons.includes('gpu_missing')) nodeReasons.push('gpu_missing');
      this.policy.forget(inv.key); // its counters restart if it comes back
    }
    gpus.sort((a, b) => a.index - b.index);
    const node = nodeVerdict(verdicts, nodeReasons);
    return this.publish({ verdict: node.verdict, reasons: node.reasons, gpus, lastPollAt: now });
  }

  /**
   * Below the failure threshold the last verdicts stand; at it, everything is unhealthy. "GPU is
   * lost" is nvidia-smi's own word that a GPU fell off the bus (only a reset or reboot brings it
   * back): unhealthy at once, named `gpu_lost`, without waiting out the threshold.
   */
  private failedHealth(now: number, kind?: SmiErrorKind): NodeGpuHealth {
    if (kind !== 'gpu_lost' && this.consecutiveFailures < this.opts.failuresBeforeUnhealthy) return { ...this.current };
    const reason = kind === 'gpu_lost' ? 'gpu_lost' : 'nvidia_smi_failing';
    const gpus = (this.inventory ?? []).map((inv) => ({
      index: inv.index,
      uuid: inv.uuid,
      name: inv.name,
      verdict: 'UNHEALTHY' as const,
      reasons: [reason],
      readings: this.lastKnown.get(inv.key)?.readings ?? {},
    }));
    void now;
    return { verdict: 'UNHEALTHY', reasons: [reason], gpus, lastPollAt: this.current.lastPollAt };
  }

  private async readXids(): Promise<void> {
    const log = await readKernelLog({ timeoutMs: this.opts.timeoutMs });
    if (!log.available) return;
    this.xids = parseKernelLog(log.text).xids;
  }

  private publish(h: NodeGpuHealth): NodeGpuHealth {
    this.current = h;
    const sig = JSON.stringify([h.verdict, h.reasons, h.gpus.map((g) => [g.uuid, g.verdict, g.reasons])]);
    if (sig !== this.signature) {
      this.signature = sig;
      this.emit('change', this.snapshot());
    }
    return this.snapshot();
  }
}

/** Flat string map of a reading (non-null values only) for NodeStatus and logs. */
export function readingsRecord(r: GpuReading): Record<string, string> {
  const out: Record<string, string> = {};
  const put = (k: string, v: number | string | boolean | null): void => {
    if (v !== null) setOwn(out, k, String(v));
  };
  put('pci_bus_id', r.pciBusId);
  put('temperature_gpu_c', r.temperatureGpuC);
  put('temperature_memory_c', r.temperatureMemoryC);
  put('temperature_slowdown_c', r.temperatureSlowdownC);
  put('temperature_shutdown_c', r.temperatureShutdownC);
  put('temperature_memory_max_c', r.temperatureMemoryMaxC);
  put('temperature_tlimit_c', r.temperatureTlimitC);
  put('power_draw_w', r.powerDrawW);
  put('power_limit_w', r.powerLimitW);
  put('utilization_gpu_pct', r.utilizationGpuPct);
  put('memory_used_mib', r.memoryUsedMiB);
  put('memory_total_mib', r.memoryTotalMiB);
  put('ecc_corrected_volatile', r.ecc.correctedVolatile);
  put('ecc_corrected_aggregate', r.ecc.correctedAggregate);
  put('ecc_uncorrected_volatile', r.ecc.uncorrectedVolatile);
  put('ecc_uncorrected_aggregate', r.ecc.uncorrectedAggregate);
  put('retired_pages_sbe', r.retiredPages.singleBit);
  put('retired_pages_dbe', r.retiredPages.doubleBit);
  put('retired_pages_pending', r.retiredPages.pending);
  put('remapped_rows_correctable', r.remappedRows.correctable);
  put('remapped_rows_uncorrectable', r.remappedRows.uncorrectable);
  put('remapped_rows_pending', r.remappedRows.pending);
  put('remapped_rows_failure', r.remappedRows.failure);
  for (const [reason, active] of Object.entries(r.throttle)) put(`throttle_${reason}`, active ?? null);
  put('persistence_mode', r.persistenceMode);
  put('compute_mode', r.computeMode);
  put('mig_mode', r.migMode);
  return out;
}
