// Wires tenancy for the router: the limit store (Redis when one is configured, else memory), the key
// directory fed by the control plane's policy watch, and the enforcement hook.
import type { RouterProcessConfig } from '../config.ts';
import type { Logger } from '../../common/logger.ts';
import type { LimitStore } from '../../common/store/limits.ts';
import { MemoryLimitStore } from '../../common/store/memory-limits.ts';
import { RedisLimitStore } from '../../common/store/redis-limits.ts';
import { policySnapshotSchema, type PolicySnapshot } from '../../common/contracts.ts';
import { SnapshotWatch } from '../nodes/membership.ts';
import { KeyDirectory } from './key-directory.ts';
import { createTenancyHook, type TenancyOptions } from './enforcement.ts';
import { budgetCheckKeys } from '../accounting/budgets.ts';
import { controlPlaneAuthHeaders } from '../control-plane-auth.ts';

export async function startTenancy(
  config: RouterProcessConfig,
  logger: Logger,
  onStoreFailure?: () => void,
  countTokens?: TenancyOptions['countTokens'],
) {
  const auth = config.router.auth;
  if (!config.controlPlaneUrl)
    throw new Error('router.auth.mode "required" needs controlPlaneUrl: keys and tenants come from the control plane');
  const redisUrl = config.redis.limits;
  let store: LimitStore;
  if (redisUrl) {
    const redis = new RedisLimitStore(redisUrl, { commandTimeoutMs: auth.commandTimeoutMs });
    // Not reachable at start: keep going; each request follows `onStoreError` until it is.
    await redis.ready(3_000).catch(() => logger.warn('Redis not reachable at start; limits follow router.auth.onStoreError until it is'));
    store = redis;
  } else {
    store = new MemoryLimitStore();
  }
  const directory = new KeyDirectory();
  const budgetsConfig = config.router.budgets;
  const watch = new SnapshotWatch(
    config.controlPlaneUrl,
    logger,
    '/v1/policy/watch',
    policySnapshotSchema,
    controlPlaneAuthHeaders(config),
  );
  watch.on('snapshot', (snap: PolicySnapshot) => directory.load(snap));
  watch.start();
  // Limit-store failures since start, for /readyz (the metric counts them too).
  let storeFailures = 0;
  let lastStoreFailureAt: number | undefined;
  const failed = () => {
    storeFailures += 1;
    lastStoreFailureAt = Date.now();
    onStoreFailure?.();
  };
  const hook = createTenancyHook({
    directory,
    store,
    onStoreError: auth.onStoreError,
    leaseTtlMs: auth.leaseTtlMs,
    defaultMaxTokens: auth.defaultMaxTokens,
    logger,
    onStoreFailure: failed,
    countTokens,
    // With Redis, the budget check's spend is read by the admission script (one round trip for both).
    budgetKeysOf: (p, at) => budgetCheckKeys(p, budgetsConfig, at),
  });
  return {
    hook,
    store,
    directory,
    status: () => ({
      policySynced: directory.version >= 0,
      keys: directory.size,
      store: store.kind,
      // Redis down: the router keeps serving by `onStoreError` (open: without limits; closed: 503) and says so here.
      storeReachable: store.connected?.() ?? true,
      onStoreError: auth.onStoreError,
      storeFailures,
      lastStoreFailureAt: lastStoreFailureAt === undefined ? null : new Date(lastStoreFailureAt).toISOString(),
    }),
    async close() {
      watch.stop();
      await store.close();
    },
  };
}
