// Wiring for control-plane/main.ts: the shadow record store from `controlPlane.shadow`.
import type { Config } from '../../common/config.ts';
import { FileShadowStore, RedisShadowStore, type ShadowStore } from './store.ts';

export { shadowApi } from './api.ts';
export type { ShadowStore } from './store.ts';

/** Redis when the routers share one (REDIS_URL or router.auth.redisUrl), else the file store. */
export async function createShadowStore(config: Config): Promise<ShadowStore> {
  const cfg = config.controlPlane.shadow;
  const redisUrl = process.env.REDIS_URL || config.router.auth.redisUrl;
  if (redisUrl) return new RedisShadowStore(redisUrl, cfg.maxRecords);
  const store = new FileShadowStore(cfg.store.path, cfg.maxRecords);
  await store.load();
  return store;
}
