// Watches the local engine: /health and /metrics every `intervalMs`, turning cumulative counters
// into recent rates (TTFT over the last window, prefix-cache hit rate). Never throws: a failed
// scrape marks the engine unhealthy and keeps the last load reading.
import { EventEmitter } from 'node:events';
import type { EngineAdapter } from './engines/engine.ts';
import type { EngineMetricsSnapshot } from './engines/vllm-metrics.ts';

export interface EngineLoadView {
  running: number;
  waiting: number;
  kvCacheUsage: number;
  ttftRecentSeconds: number;
  prefixCacheHitRate: number;
}

export class EngineWatcher extends EventEmitter {
  healthy = false;
  load: EngineLoadView = { running: 0, waiting: 0, kvCacheUsage: 0, ttftRecentSeconds: 0, prefixCacheHitRate: 0 };
  lastScrapeAt = 0;
  private previous: EngineMetricsSnapshot | undefined;
  private timer: NodeJS.Timeout | undefined;
  private inFlight = false;

  constructor(
    private readonly engine: EngineAdapter,
    private readonly intervalMs: number,
  ) {
    super();
  }

  start(): void {
    const tick = () => {
      void this.scrapeOnce().finally(() => {
        if (this.timer !== undefined) this.timer = setTimeout(tick, this.intervalMs);
      });
    };
    this.timer = setTimeout(tick, 0);
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  async scrapeOnce(): Promise<void> {
    if (this.inFlight) return;
    this.inFlight = true;
    try {
      const signal = AbortSignal.timeout(Math.max(1_000, this.intervalMs * 2));
      const healthy = await this.engine.health(signal);
      let load = this.load;
      if (healthy) {
        try {
          const m = await this.engine.metrics(signal);
          load = this.derive(m);
        } catch {
          // Metrics failing while /health answers: keep serving on the last known load.
        }
      }
      this.lastScrapeAt = Date.now();
      const changed = healthy !== this.healthy || !sameLoad(load, this.load);
      const becameUnhealthy = this.healthy && !healthy;
      this.healthy = healthy;
      this.load = load;
      if (becameUnhealthy) this.emit('unhealthy');
      if (changed) this.emit('change');
    } finally {
      this.inFlight = false;
    }
  }

  private derive(m: EngineMetricsSnapshot): EngineLoadView {
    const prev = this.previous;
    this.previous = m;
    let ttft = this.load.ttftRecentSeconds;
    let hitRate = this.load.prefixCacheHitRate;
    if (prev) {
      const dCount = m.ttft.count - prev.ttft.count;
      if (dCount > 0) ttft = (m.ttft.sum - prev.ttft.sum) / dCount;
      const dQueries = m.prefixCacheQueriesTotal - prev.prefixCacheQueriesTotal;
      if (dQueries > 0) hitRate = (m.prefixCacheHitsTotal - prev.prefixCacheHitsTotal) / dQueries;
    } else if (m.ttft.count > 0) {
      ttft = m.ttft.sum / m.ttft.count;
    }
    return { running: m.running, waiting: m.waiting, kvCacheUsage: m.kvCacheUsage, ttftRecentSeconds: ttft, prefixCacheHitRate: hitRate };
  }
}

function sameLoad(a: EngineLoadView, b: EngineLoadView): boolean {
  return (
    a.running === b.running &&
    a.waiting === b.waiting &&
    Math.abs(a.kvCacheUsage - b.kvCacheUsage) < 0.005 &&
    Math.abs(a.ttftRecentSeconds - b.ttftRecentSeconds) < 0.001
  );
}
