// docs/metrics.md must list every agent metric the code declares, and nothing the code lacks.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { EventEmitter } from 'node:events';
import { createAgentMetrics } from '../../../node-agent/metrics.ts';
import { createRouterMetrics } from '../../../router/metrics.ts';
import type { EngineWatcher } from '../../../node-agent/engine-watcher.ts';
import type { Readiness } from '../../../node-agent/readiness.ts';

describe('docs/metrics.md agrees with the agent registry', () => {
  it('documents every agent_* metric, and only those', async () => {
    const watcher = Object.assign(new EventEmitter(), {
      healthy: true,
      load: { running: 1, waiting: 2, kvCacheUsage: 0.5, ttftRecentSeconds: 0.1, prefixCacheHitRate: 0 },
    }) as unknown as EngineWatcher;
    const readiness = Object.assign(new EventEmitter(), { ready: true }) as unknown as Readiness;
    const m = createAgentMetrics({ watcher, readiness, state: { ready: true, draining: false, inFlight: 3 }, nodeId: 'n1' });
    const declared = (await m.registry.getMetricsAsJSON())
      .map((x) => x.name)
      .filter((n) => n.startsWith('agent_'))
      .sort();
    const doc = readFileSync(new URL('../../../docs/metrics.md', import.meta.url), 'utf8');
    const section = doc.slice(doc.indexOf('## Node agent: engine and generations'));
    const documented = [...section.matchAll(/^\| `(agent_[a-z_]+)` \|/gm)].map((x) => x[1]!).sort();
    assert.deepEqual(documented, declared);
    const text = await m.registry.metrics();
    assert.match(text, /agent_engine_requests_waiting\{node="n1"\} 2/);
    assert.match(text, /agent_generations_in_flight\{node="n1"\} 3/);
  });

  it('documents every router_* metric, and only those', async () => {
    const m = createRouterMetrics(() => 0);
    const declared = (await m.registry.getMetricsAsJSON())
      .map((x) => x.name)
      .filter((n) => n.startsWith('router_'))
      .sort();
    const doc = readFileSync(new URL('../../../docs/metrics.md', import.meta.url), 'utf8');
    const section = doc.slice(doc.indexOf('## Router'));
    const documented = [...section.matchAll(/^\| `(router_[a-z_]+)` \|/gm)].map((x) => x[1]!).sort();
    assert.deepEqual(documented, declared);
    // `_state`: an enum gauge (0/1/2), as the breaker state is.
    for (const name of declared) assert.match(name, /_(total|seconds|depth|state)$/, `${name} follows Prometheus naming`);
  });
});
