// Wiring for control-plane/main.ts: the shadow record store from `controlPlane.shadow`.
import type { ControlPlaneConfig } from '../config.ts';
import { FileShadowStore, RedisShadowStore, type ShadowStore } from './store.ts';

export { shadowApi } from './api.ts';
export type { ShadowStore } from './store.ts';

/** Redis when the routers share one (`redisUrl`, resolved by common/infrastructure.ts), else the file store. */
export async function createShadowStore(cfg: ControlPlaneConfig['shadow'], redisUrl: string | undefined): Promise<ShadowStore> {
  if (redisUrl) return new RedisShadowStore(redisUrl, cfg.maxRecords);
  const store = new FileShadowStore(cfg.store.path, cfg.maxRecords);
  await store.load();
  return store;
}
