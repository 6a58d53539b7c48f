// Wires the capacity pieces for the control plane: store -> history -> sampler, and the report
// over them. control-plane/main.ts creates one when controlPlane.capacity.enabled.
import { resolve } from 'node:path';
import type { CapacityConfig } from '../config.ts';
import type { AgentChannelSecurity } from '../../common/tls.ts';
import type { Logger } from '../../common/logger.ts';
import type { NodeRecord, NodeRegistry } from '../registry/node-registry.ts';
import { History } from './history.ts';
import { buildCapacityReport, type CapacityReport, type ReportParams } from './report.ts';
import { Sampler } from './sampler.ts';
import { FileHistoryStore, type HistoryStore } from './store.ts';
import { RedisHistoryStore } from './redis-store.ts';
import { own } from '../../common/own.ts';

export type { CapacityConfig } from '../config.ts';

/** Agent HTTP base URLs: explicit `controlPlane.capacity.metricsUrls`, then those known from the agents' config (cli/config.ts agentMetricsUrls). */
export function metricsUrlResolver(
  explicit: Record<string, string>,
  fromAgents: Record<string, string>,
): (node: NodeRecord) => string | undefined {
  return (node) => own(explicit, node.id) ?? own(fromAgents, node.id);
}

export interface CapacityServiceOptions {
  config: CapacityConfig;
  registry: NodeRegistry;
  logger: Logger;
  metricsUrl: (node: NodeRecord) => string | undefined;
  /** The history's Redis when store.kind is redis (resolved by common/infrastructure.ts). */
  redisUrl?: string;
  store?: HistoryStore;
  now?: () => number;
  /** How the sampler reaches agents: their TLS (controlPlane.agentTls) and each node's control token. */
  agentSecurity?: AgentChannelSecurity;
  controlToken?: (nodeId: string) => string | undefined;
}

export class CapacityService {
  readonly history: History;
  readonly sampler: Sampler;
  private readonly now: () => number;

  constructor(readonly opts: CapacityServiceOptions) {
    this.now = opts.now ?? Date.now;
    const c = opts.config;
    const store = opts.store ?? historyStore(c.store, opts.redisUrl);
    this.history = new History(
      store,
      { rawRetentionMs: c.rawRetentionMs, bucketMs: c.bucketMs, bucketRetentionMs: c.bucketRetentionMs, compactEveryMs: c.compactEveryMs },
      this.now,
    );
    this.sampler = new Sampler({
      registry: opts.registry,
      history: this.history,
      intervalMs: c.sampleIntervalMs,
      metricsUrl: opts.metricsUrl,
      logger: opts.logger,
      now: this.now,
      agentSecurity: opts.agentSecurity,
      controlToken: opts.controlToken,
    });
  }

  async start(): Promise<void> {
    await this.history.load();
    this.sampler.start();
  }

  async stop(): Promise<void> {
    await this.sampler.stop();
    await this.history.maintain(true);
    await this.history.close();
  }

  defaults(): ReportParams {
    const c = this.opts.config;
    return {
      windowMs: c.defaultWindowMs,
      growth: 1,
      sloTtftSeconds: c.sloTtftSeconds,
      slotMs: Math.max(10_000, c.sampleIntervalMs),
      whatIf: [],
    };
  }

  /** Each node's last sample, if recent: an older one belongs to a node that has left. */
  latestFresh(now = this.now()): Map<string, import('./types.ts').NodeSample> {
    const maxAge = 3 * this.opts.config.sampleIntervalMs + 2_000;
    return new Map([...this.history.latest()].filter(([, s]) => now - s.t <= maxAge));
  }

  report(params: ReportParams): CapacityReport {
    const now = this.now();
    const from = now - params.windowMs;
    const useRaw = this.history.rawCovers(from);
    return buildCapacityReport(
      {
        now,
        raw: useRaw ? this.history.rawSamples(from) : undefined,
        buckets: useRaw ? [] : this.history.bucketRecords(from),
        latest: this.latestFresh(now),
      },
      params,
    );
  }
}

function historyStore(s: CapacityConfig['store'], url: string | undefined): HistoryStore {
  if (s.kind === 'file') return new FileHistoryStore(resolve(s.path));
  if (!url) throw new Error('controlPlane.capacity.store.kind is redis but none of store.redisUrl, REDIS_URL, router.auth.redisUrl is set');
  return new RedisHistoryStore(url, s.key);
}
