// Samples every registered node into the history. Load and GPU health come from the node's own
// WatchStatus stream (common/status-watch.ts, the client routers build on).
// Request and token rates come from the agent's /metrics counters when the node's agent HTTP
// address is known (config): the status carries no counters, and the proto stays as it is.
import { request } from 'undici';
import type { AgentChannelSecurity } from '../../common/tls.ts';
import type { Logger } from '../../common/logger.ts';
import type { NodeStatus__Output } from '../../common/grpc.ts';
import { StatusWatch } from '../../common/status-watch.ts';
import { parseSamples } from '../../common/prometheus-text.ts';
import type { NodeRecord, NodeRegistry } from '../registry/node-registry.ts';
import type { History } from './history.ts';
import { toVerdict, type GpuSample, type NodeSample } from './types.ts';

export interface AgentCounters {
  requests: number;
  promptTokens: number;
  generationTokens: number;
}

/** Sums the agent's counters from its /metrics text (every outcome counts as demand). */
export function readAgentCounters(text: string): AgentCounters | undefined {
  const out: AgentCounters = { requests: 0, promptTokens: 0, generationTokens: 0 };
  let seen = false;
  for (const s of parseSamples(text)) {
    if (s.name === 'agent_generations_total') {
      out.requests += s.value;
      seen = true;
    } else if (s.name === 'agent_prompt_tokens_total') {
      out.promptTokens += s.value;
      seen = true;
    } else if (s.name === 'agent_generation_tokens_total') {
      out.generationTokens += s.value;
      seen = true;
    }
  }
  return seen ? out : undefined;
}

const num = (v: string | undefined, scale = 1): number | undefined => {
  if (v === undefined) return undefined;
  const n = Number(v);
  return Number.isFinite(n) ? n * scale : undefined;
};

export function gpuSamples(status: NodeStatus__Output | undefined): GpuSample[] {
  return (status?.gpus ?? []).map((g) => {
    const r = g.readings ?? {};
    const out: GpuSample = { index: g.index, uuid: g.uuid, name: g.name, verdict: toVerdict(g.verdict), reasons: [...g.reasons] };
    const put = (k: 'utilization' | 'memoryUsedBytes' | 'memoryTotalBytes' | 'temperatureC' | 'powerW', v: number | undefined) => {
      if (v !== undefined) out[k] = v;
    };
    put('utilization', num(r.utilization_gpu_pct, 0.01));
    put('memoryUsedBytes', num(r.memory_used_mib, 1024 * 1024));
    put('memoryTotalBytes', num(r.memory_total_mib, 1024 * 1024));
    put('temperatureC', num(r.temperature_gpu_c));
    put('powerW', num(r.power_draw_w));
    return out;
  });
}

export interface SamplerOptions {
  registry: NodeRegistry;
  history: History;
  intervalMs: number;
  /** Agent HTTP base URL for a node, if known. */
  metricsUrl: (node: NodeRecord) => string | undefined;
  logger: Logger;
  now?: () => number;
  agentSecurity?: AgentChannelSecurity;
  controlToken?: (nodeId: string) => string | undefined;
}

export class Sampler {
  readonly connections = new Map<string, StatusWatch>();
  private readonly prev = new Map<string, { t: number; c: AgentCounters }>();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private readonly sync = () => this.syncConnections();
  private readonly now: () => number;

  constructor(private readonly opts: SamplerOptions) {
    this.now = opts.now ?? Date.now;
  }

  start(): void {
    this.opts.registry.on('change', this.sync);
    this.syncConnections();
    this.timer = setInterval(() => {
      if (!this.running)
        this.running = this.tick()
          .then(
            () => undefined,
            (err: unknown) => this.opts.logger.warn({ err: (err as Error).message }, 'capacity sampling failed'),
          )
          .finally(() => {
            this.running = undefined;
          });
    }, this.opts.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.opts.registry.off('change', this.sync);
    await this.running;
    for (const c of this.connections.values()) c.close();
    this.connections.clear();
  }

  /** One status connection per registered node; re-dialled when a node's address changes. */
  private syncConnections(): void {
    const nodes = new Map(this.opts.registry.list().map((n) => [n.id, n]));
    for (const [id, c] of this.connections) {
      const n = nodes.get(id);
      if (!n || n.address !== c.address) {
        c.close();
        this.connections.delete(id);
      }
    }
    for (const n of nodes.values()) {
      if (this.connections.has(n.id)) continue;
      const c = new StatusWatch(
        n.id,
        n.address,
        'control-plane-capacity',
        this.opts.logger,
        this.opts.agentSecurity,
        this.opts.controlToken?.(n.id),
      );
      c.on('error', () => undefined);
      this.connections.set(n.id, c);
      c.start();
    }
  }

  /** Samples every node once (also called by tests). */
  async tick(): Promise<NodeSample[]> {
    const nodes = this.opts.registry.list();
    const samples = await Promise.all(nodes.map((n) => this.sampleNode(n)));
    await this.opts.history.add(samples);
    return samples;
  }

  private async sampleNode(node: NodeRecord): Promise<NodeSample> {
    const conn = this.connections.get(node.id);
    const status = conn?.status;
    const t = this.now();
    const staleMs = 3 * Math.max(status?.heartbeatIntervalMs ?? 500, 250) + 1_000;
    const fresh = !!conn?.connected && !!status && Date.now() - conn.statusReceivedAt < staleMs;
    const load = status?.load;
    const sample: NodeSample = {
      kind: 'raw',
      t,
      node: node.id,
      models: status?.models.length ? status.models.map((m) => m.name) : node.models,
      connected: fresh,
      ready: fresh && !!status?.ready,
      draining: !!status?.draining,
      cordoned: node.cordoned,
      gpuVerdict: status && status.gpus.length ? toVerdict(status.gpuVerdict) : status ? 'HEALTHY' : 'UNKNOWN',
      running: fresh ? (load?.running ?? 0) : 0,
      waiting: fresh ? (load?.waiting ?? 0) : 0,
      kvCacheUsage: fresh ? (load?.kvCacheUsage ?? 0) : 0,
      ttftSeconds: fresh ? (load?.ttftRecentSeconds ?? 0) : 0,
      prefixCacheHitRate: fresh ? (load?.prefixCacheHitRate ?? 0) : 0,
      maxNumSeqs: load?.maxNumSeqs ?? 0,
      gpus: gpuSamples(status),
    };
    const url = this.opts.metricsUrl(node);
    if (url) {
      const c = await this.scrape(url);
      const p = this.prev.get(node.id);
      if (c) {
        if (
          p &&
          t > p.t &&
          c.requests >= p.c.requests &&
          c.promptTokens >= p.c.promptTokens &&
          c.generationTokens >= p.c.generationTokens
        ) {
          const dt = (t - p.t) / 1000;
          sample.requestsPerSecond = (c.requests - p.c.requests) / dt;
          sample.promptTokensPerSecond = (c.promptTokens - p.c.promptTokens) / dt;
          sample.generationTokensPerSecond = (c.generationTokens - p.c.generationTokens) / dt;
        }
        this.prev.set(node.id, { t, c });
      } else {
        this.prev.delete(node.id);
      }
    }
    return sample;
  }

  private async scrape(base: string): Promise<AgentCounters | undefined> {
    try {
      const res = await request(base.replace(/\/+$/, '') + '/metrics', { headersTimeout: 1_500, bodyTimeout: 1_500 });
      const text = await res.body.text();
      return res.statusCode === 200 ? readAgentCounters(text) : undefined;
    } catch {
      return undefined;
    }
  }
}
