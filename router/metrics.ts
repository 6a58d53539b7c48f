// The router's Prometheus metrics, declared in one place with their help text (docs/metrics.md
// lists them; a test checks the two agree). Labels are bounded: lanes and operations are fixed
// sets, models are served model names (never the raw requested string), nodes are registry ids.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { LANES, type Lane } from '../common/contracts.ts';

/** LLM latencies span milliseconds (cached, short) to minutes (long generations, queueing). */
const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120, 300];
const TOKEN_LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.15, 0.3, 0.6, 1.2, 2.5];

export function createRouterMetrics(
  queueDepth?: (lane: Lane) => number,
  nodeInFlight?: () => Iterable<[string, number]>,
  nodeRoutable?: () => Iterable<[string, boolean]>,
) {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const m = {
    registry,
    requests: new Counter({
      name: 'router_requests_total',
      help: 'Generation requests by operation, served model, lane, backend kind, HTTP status and outcome (ok, error, refused: admission turned it away, cancelled: the client left first; HTTP 499 when it left before an answer started).',
      labelNames: ['operation', 'model', 'lane', 'backend', 'status', 'outcome'],
      registers: [registry],
    }),
    ttft: new Histogram({
      name: 'router_time_to_first_token_seconds',
      help: 'From request arrival to the first token written to the client (streaming), queueing included (mirrors gen_ai.server.time_to_first_token).',
      labelNames: ['model', 'lane'],
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    }),
    tpot: new Histogram({
      name: 'router_time_per_output_token_seconds',
      help: 'Mean time per output token after the first, per streamed request (mirrors gen_ai.server.time_per_output_token).',
      labelNames: ['model'],
      buckets: TOKEN_LATENCY_BUCKETS,
      registers: [registry],
    }),
    duration: new Histogram({
      name: 'router_request_duration_seconds',
      help: 'End-to-end generation request duration, queueing included (mirrors gen_ai.server.request.duration).',
      labelNames: ['operation', 'model', 'lane'],
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    }),
    tokens: new Counter({
      name: 'router_tokens_total',
      help: "Tokens by type (input, output), from the engine's usage (mirrors gen_ai.client.token.usage).",
      labelNames: ['model', 'type'],
      registers: [registry],
    }),
    queueWait: new Histogram({
      name: 'router_queue_wait_seconds',
      help: 'Time an admitted request waited in its lane queue (0 when it went straight through).',
      labelNames: ['lane'],
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    }),
    refusals: new Counter({
      name: 'router_refusals_total',
      help: 'Requests refused by admission, by lane and reason (shed, queue_full, queue_timeout, evicted).',
      labelNames: ['lane', 'reason'],
      registers: [registry],
    }),
    picks: new Counter({
      name: 'router_node_picks_total',
      help: 'Scheduling decisions that picked a node.',
      labelNames: ['node'],
      registers: [registry],
    }),
    breakerTransitions: new Counter({
      name: 'router_circuit_breaker_transitions_total',
      help: 'Circuit breaker state changes, per breaker (node:<id>, provider:<name>) and target state (open, half_open, closed).',
      labelNames: ['breaker', 'to'],
      registers: [registry],
    }),
    breakerState: new Gauge({
      name: 'router_circuit_breaker_state',
      help: 'Circuit breaker state per breaker: 0 closed, 1 half-open, 2 open.',
      labelNames: ['breaker'],
      registers: [registry],
    }),
    fallbacks: new Counter({
      name: 'router_fallback_requests_total',
      help: 'Requests offered to a hosted provider, by provider, trigger (no_ready_node, lane_saturated, node_failed, breaker_open) and outcome (served, failed, denied).',
      labelNames: ['provider', 'trigger', 'outcome'],
      registers: [registry],
    }),
    budgetEvents: new Counter({
      name: 'router_budget_events_total',
      help: 'Budget thresholds crossed, by scope (tenant, key, tag), period (day, month) and level (warning at router.budgets.warnAt, exhausted at 100%).',
      labelNames: ['scope', 'period', 'level'],
      registers: [registry],
    }),
    limitStoreFailures: new Counter({
      name: 'router_limit_store_failures_total',
      help: 'Admissions whose limit or budget store (Redis) could not answer, by store (limits, budgets) and the router.auth.onStoreError policy applied (open: served without the check, closed: refused with 503).',
      labelNames: ['store', 'policy'],
      registers: [registry],
    }),
    budgetActions: new Counter({
      name: 'router_budget_actions_total',
      help: 'Requests met with an exhausted budget, by action (refused: 429 insufficient_quota, downgraded: sent to a cheaper alias).',
      labelNames: ['action'],
      registers: [registry],
    }),
    spend: new Counter({
      name: 'router_spend_usd_total',
      help: 'Cost of finished requests in USD from the catalog prices, per served model.',
      labelNames: ['model'],
      registers: [registry],
    }),
    usageRecords: new Counter({
      name: 'router_usage_records_total',
      help: 'Usage records by result (written to the stream or control plane, refused: the control plane answered 4xx, set aside; dropped: buffer overflow or retries spent).',
      labelNames: ['result'],
      registers: [registry],
    }),
    idempotent: new Counter({
      name: 'router_idempotent_requests_total',
      help: "Requests with an Idempotency-Key by outcome: executed (generated here), taken_over (the previous owner's lease had expired), joined (followed a running generation), replayed (served the stored answer), conflict (409: same key, other body).",
      labelNames: ['outcome'],
      registers: [registry],
    }),
    idempotencyEvictions: new Counter({
      name: 'router_idempotency_evictions_total',
      help: 'Idempotent answers not kept by reason: lru (the memory store was at maxBytes), tenant_cap (the tenant was at its share), too_large (over maxEntryBytes: served, not stored).',
      labelNames: ['reason'],
      registers: [registry],
    }),
    batchItems: new Counter({
      name: 'router_batch_items_total',
      help: 'Batch items by outcome: succeeded, failed (4xx: error file at once), retried, yielded (the sheddable lane was busy; no attempt counted), dead_lettered, expired, lease_lost (another replica finished it).',
      labelNames: ['outcome'],
      registers: [registry],
    }),
    batchJobs: new Counter({
      name: 'router_batch_jobs_total',
      help: 'Batch jobs ended by this replica, by final status (completed, expired, cancelled).',
      labelNames: ['status'],
      registers: [registry],
    }),
    batchWebhooks: new Counter({
      name: 'router_batch_webhooks_total',
      help: 'Batch completion webhook attempts by result (delivered, retried, failed: gave up).',
      labelNames: ['result'],
      registers: [registry],
    }),
    attempts: new Counter({
      name: 'router_node_attempts_total',
      help: 'Dispatch attempts per node by outcome (ok, retried, failed).',
      labelNames: ['node', 'outcome'],
      registers: [registry],
    }),
    cacheLookups: new Counter({
      name: 'router_cache_lookups_total',
      help: 'Response cache lookups per served model by result: hit, semantic_hit, miss, or not looked up (no_cache: Cache-Control, non_deterministic, tools). Hit rate = (hit + semantic_hit) / (hit + semantic_hit + miss).',
      labelNames: ['model', 'result'],
      registers: [registry],
    }),
    cacheSavedTokens: new Counter({
      name: 'router_cache_saved_tokens_total',
      help: "Tokens the cache saved (the stored answer's usage, served without an engine call), per served model and type (input, output).",
      labelNames: ['model', 'type'],
      registers: [registry],
    }),
    cacheStores: new Counter({
      name: 'router_cache_stores_total',
      help: 'Completed responses offered to the response cache by result (stored, too_large, failed).',
      labelNames: ['result'],
      registers: [registry],
    }),
    shadowRequests: new Counter({
      name: 'router_shadow_requests_total',
      help: 'Shadow requests per alias and target by outcome (ok, error, shed, budget_exhausted, concurrency_limit, denied).',
      labelNames: ['alias', 'target', 'outcome'],
      registers: [registry],
    }),
    shadowRecords: new Counter({
      name: 'router_shadow_records_total',
      help: 'Shadow records by result (written to the control plane, dropped: no control plane or buffer overflow).',
      labelNames: ['result'],
      registers: [registry],
    }),
  };
  new Gauge({
    name: 'router_queue_depth',
    help: 'Requests waiting in each lane queue.',
    labelNames: ['lane'],
    registers: [registry],
    collect() {
      for (const lane of LANES) this.set({ lane }, queueDepth?.(lane) ?? 0);
    },
  });
  new Gauge({
    name: 'router_node_in_flight_depth',
    help: 'Generations this router has in flight on each node (the count the scheduler uses; back to 0 when idle, or a request leaked).',
    labelNames: ['node'],
    registers: [registry],
    collect() {
      // Reset first: a node that left the pool must not keep its last value.
      this.reset();
      for (const [node, n] of nodeInFlight?.() ?? []) this.set({ node }, n);
    },
  });
  new Gauge({
    name: 'router_node_routable_state',
    help: 'Whether this router sends new work to each node now (1: connected, fresh status, ready, not draining or cordoned, no UNHEALTHY GPU; 0: not).',
    labelNames: ['node'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [node, ok] of nodeRoutable?.() ?? []) this.set({ node }, ok ? 1 : 0);
    },
  });
  return m;
}

export type RouterMetrics = ReturnType<typeof createRouterMetrics>;
