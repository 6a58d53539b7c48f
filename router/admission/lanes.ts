// Priority lanes, after the Kubernetes Gateway API Inference Extension's criticality levels.
// A request asks for one with the `x-priority-lane` header; its API key's policy caps it. The
// lanes themselves (highest priority first: dispatch order) are common/contracts.ts's LANES.
import { LANES, laneSchema, type Lane } from '../../common/contracts.ts';

export const LANE_HEADER = 'x-priority-lane';

export function laneRank(l: Lane): number {
  return LANES.indexOf(l);
}

export function isLane(v: unknown): v is Lane {
  return laneSchema.safeParse(v).success;
}

export interface LanePolicy {
  /** API key -> highest lane it may use (until tenants exist in the control plane). */
  keys: Record<string, Lane>;
  /** Highest lane for keys not in the map (and for requests without a key). */
  defaultMaxLane: Lane;
}

/** The bearer token of an `Authorization` header, if any. */
export function apiKeyOf(authorization: string | undefined): string | undefined {
  if (!authorization) return undefined;
  const m = /^Bearer\s+(.+)$/i.exec(authorization.trim());
  return m ? m[1]!.trim() : undefined;
}

/**
 * The lane a request gets: what it asked for (or the default), lowered to its cap: the tenant's
 * `maxLane` when the control plane's policy sets one, else the config's key map, else the default.
 */
export function resolveLane(
  requested: string | undefined,
  apiKey: string | undefined,
  policy: LanePolicy,
  defaultLane: Lane,
  tenantCap?: Lane,
): { lane: Lane; capped: boolean } {
  const asked = isLane(requested) ? requested : defaultLane;
  const cap = tenantCap ?? (apiKey !== undefined ? policy.keys[apiKey] : undefined) ?? policy.defaultMaxLane;
  return laneRank(asked) < laneRank(cap) ? { lane: cap, capped: true } : { lane: asked, capped: false };
}
