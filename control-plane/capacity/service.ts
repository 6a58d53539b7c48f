// Wires the capacity pieces for the control plane: store -> history -> sampler, and the report
// over them. control-plane/main.ts creates one when controlPlane.capacity.enabled.
import { resolve } from 'node:path';
import type { Config } from '../../common/config.ts';
import type { Logger } from '../../common/logger.ts';
import type { NodeRecord, NodeRegistry } from '../registry/node-registry.ts';
import { History } from './history.ts';
import { buildCapacityReport, type CapacityReport, type ReportParams } from './report.ts';
import { Sampler } from './sampler.ts';
import { FileHistoryStore, type HistoryStore } from './store.ts';
import { RedisHistoryStore } from './redis-store.ts';

export type CapacityConfig = Config['controlPlane']['capacity'];

/**
 * Agent HTTP base URLs: explicit `controlPlane.capacity.metricsUrls`, then agents of the same
 * config file whose httpListen has a fixed port (host 0.0.0.0/:: -> the advertised gRPC host).
 */
export function metricsUrlResolver(config: Config): (node: NodeRecord) => string | undefined {
  const fromAgents = new Map<string, string>();
  for (const a of config.agents) {
    if (!a.httpListen || a.httpListen.port === 0) continue;
    let host = a.httpListen.host;
    if (host === '0.0.0.0' || host === '::') host = (a.advertiseAddress ?? '').replace(/:\d+$/, '') || '127.0.0.1';
    fromAgents.set(a.id, `http://${host.includes(':') && !host.startsWith('[') ? `[${host}]` : host}:${a.httpListen.port}`);
  }
  const explicit = config.controlPlane.capacity.metricsUrls;
  return (node) => explicit[node.id] ?? fromAgents.get(node.id);
}

export interface CapacityServiceOptions {
  config: CapacityConfig;
  registry: NodeRegistry;
  logger: Logger;
  metricsUrl: (node: NodeRecord) => string | undefined;
  store?: HistoryStore;
  now?: () => number;
}

export class CapacityService {
  readonly history: History;
  readonly sampler: Sampler;
  private readonly now: () => number;

  constructor(readonly opts: CapacityServiceOptions) {
    this.now = opts.now ?? Date.now;
    const c = opts.config;
    const store = opts.store ?? historyStore(c.store);
    this.history = new History(store, { rawRetentionMs: c.rawRetentionMs, bucketMs: c.bucketMs, bucketRetentionMs: c.bucketRetentionMs, compactEveryMs: c.compactEveryMs }, this.now);
    this.sampler = new Sampler({ registry: opts.registry, history: this.history, intervalMs: c.sampleIntervalMs, metricsUrl: opts.metricsUrl, logger: opts.logger, now: this.now });
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
    return { windowMs: c.defaultWindowMs, growth: 1, sloTtftSeconds: c.sloTtftSeconds, slotMs: Math.max(10_000, c.sampleIntervalMs), whatIf: [] };
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
    return buildCapacityReport({
      now,
      raw: useRaw ? this.history.rawSamples(from) : undefined,
      buckets: useRaw ? [] : this.history.bucketRecords(from),
      latest: this.latestFresh(now),
    }, params);
  }
}

function historyStore(s: CapacityConfig['store']): HistoryStore {
  if (s.kind === 'file') return new FileHistoryStore(resolve(s.path));
  const url = s.redisUrl ?? process.env.REDIS_URL;
  if (!url) throw new Error('controlPlane.capacity.store.kind is redis but neither store.redisUrl nor REDIS_URL is set');
  return new RedisHistoryStore(url, s.key);
}
