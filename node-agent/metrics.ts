// The agent's own Prometheus metrics (engine load, readiness, generations), declared in one place
// with their help text; docs/metrics.md lists them and a test checks the two agree.
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { EngineWatcher } from './engine-watcher.ts';
import type { Readiness } from './readiness.ts';
import type { AgentState } from './grpc-service.ts';

export interface AgentMetrics {
  registry: Registry;
  generations: Counter<'outcome'>;
  promptTokens: Counter;
  generationTokens: Counter;
}

export function createAgentMetrics(deps: {
  watcher: EngineWatcher;
  readiness: Readiness;
  state: AgentState;
  nodeId: string;
}): AgentMetrics {
  const registry = new Registry();
  registry.setDefaultLabels({ node: deps.nodeId });
  collectDefaultMetrics({ register: registry });
  const gauge = (name: string, help: string, read: () => number) =>
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        this.set(read());
      },
    });
  gauge('agent_engine_requests_running', "Requests in the engine's running batch (engine metric).", () => deps.watcher.load.running);
  gauge('agent_engine_requests_waiting', "Requests waiting in the engine's queue (engine metric).", () => deps.watcher.load.waiting);
  gauge('agent_engine_kv_cache_usage_ratio', 'KV-cache use of the engine, 0..1.', () => deps.watcher.load.kvCacheUsage);
  gauge(
    'agent_engine_ttft_recent_seconds',
    'Mean time to first token over the last scrape window.',
    () => deps.watcher.load.ttftRecentSeconds,
  );
  gauge(
    'agent_engine_prefix_cache_hit_ratio',
    'Prefix-cache hit rate over the last scrape window, 0..1.',
    () => deps.watcher.load.prefixCacheHitRate,
  );
  gauge('agent_engine_healthy', 'Engine answers its health check: 1, else 0.', () => (deps.watcher.healthy ? 1 : 0));
  gauge('agent_ready', 'Node ready (engine healthy, warmed up, GPUs not unhealthy): 1, else 0.', () => (deps.readiness.ready ? 1 : 0));
  gauge('agent_draining', 'Node draining: 1, else 0.', () => (deps.state.draining ? 1 : 0));
  gauge('agent_generations_in_flight', 'Generations the agent is forwarding now.', () => deps.state.inFlight);
  return {
    registry,
    generations: new Counter({
      name: 'agent_generations_total',
      help: 'Generations forwarded, by outcome (ok, error kind, cancelled).',
      labelNames: ['outcome'],
      registers: [registry],
    }),
    promptTokens: new Counter({
      name: 'agent_prompt_tokens_total',
      help: 'Prompt tokens of finished generations (engine usage).',
      registers: [registry],
    }),
    generationTokens: new Counter({
      name: 'agent_generation_tokens_total',
      help: 'Generated tokens of finished generations (engine usage).',
      registers: [registry],
    }),
  };
}
