// Where each store's Redis is, resolved once (cli/config.ts calls this when it composes a
// service's inputs); the stores receive a URL and never read the environment themselves.
//
// One precedence for every role, most specific first:
//   1. the role's own setting (router.batch.redisUrl, router.cache.redisUrl,
//      controlPlane.capacity.store.redisUrl),
//   2. REDIS_URL in the environment (what a deployment sets for the whole cluster),
//   3. the shared router.auth.redisUrl of the config file.
// No URL for a role: that store runs in memory or on files.

/** The stores that can live in Redis. */
export const REDIS_ROLES = ['limits', 'usage', 'idempotency', 'cache', 'batch', 'shadow', 'capacityHistory'] as const;
export type RedisRole = (typeof REDIS_ROLES)[number];
export type RedisUrls = Partial<Record<RedisRole, string>>;

export interface RedisSettings {
  /** The config file's shared URL (router.auth.redisUrl). */
  shared?: string;
  /** Per-role URLs from the config file. */
  own?: RedisUrls;
  /** Roles that use no Redis whatever the URLs say (usage records need auth.mode `required`). */
  off?: readonly RedisRole[];
}

export function resolveRedisUrls(settings: RedisSettings, env: NodeJS.ProcessEnv = process.env): RedisUrls {
  const fromEnv = env.REDIS_URL || undefined;
  const urls: RedisUrls = {};
  for (const role of REDIS_ROLES) {
    if (settings.off?.includes(role)) continue;
    const url = settings.own?.[role] || fromEnv || settings.shared || undefined;
    if (url) urls[role] = url;
  }
  return urls;
}
