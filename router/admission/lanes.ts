// Priority lanes, after the Kubernetes Gateway API Inference Extension's criticality levels.
// A request asks for one with the `x-priority-lane` header; its caller's cap lowers it. The
// lanes themselves (highest priority first: dispatch order) are common/contracts.ts's LANES.
//
// Caps in config refer to key ids and tenant ids, never to raw bearer tokens (issue 17): a config
// file is not a secret store. Without tenancy (router.auth.mode off) no caller is verified, so
// there is no key id to look up and every request gets `defaultMaxLane`.
import { z } from 'zod';
import { LANES, laneSchema, type Lane } from '../../common/contracts.ts';
import { errors } from '../../common/errors.ts';
import { own } from '../../common/own.ts';

export const LANE_HEADER = 'x-priority-lane';

export function laneRank(l: Lane): number {
  return LANES.indexOf(l);
}

export function isLane(v: unknown): v is Lane {
  return laneSchema.safeParse(v).success;
}

/** A verified caller (router/tenancy's Principal): the key id of `sk-icp-<id>-<secret>` and its tenant. */
export interface Caller {
  keyId: string;
  tenantId: string;
}

/** The 12 hex digits of an issued key's id (common/api-keys.ts). */
const KEY_ID = /^[0-9a-f]{12}$/;

/**
 * `keyId -> value` in config. A raw API key (anything starting `sk-`) is refused with a message
 * that says to use the key id; the value itself is never echoed (it may be a live secret).
 */
export function keyIdRecord<V extends z.ZodType>(value: V) {
  return z.record(z.string(), value).superRefine((rec, ctx) => {
    for (const k of Object.keys(rec)) {
      if (KEY_ID.test(k)) continue;
      const shown = k.startsWith('sk-') ? `'${k.slice(0, 7)}…'` : `'${k.slice(0, 40)}'`;
      ctx.addIssue({
        code: 'custom',
        path: [k.startsWith('sk-') ? '<raw API key>' : k],
        message: k.startsWith('sk-')
          ? `${shown} looks like a raw API key: refer to it by its key id (the <id> of sk-icp-<id>-<secret>, as \`npm run admin -- keys list\` shows), never the key itself`
          : `${shown} is not a key id (12 hex digits, the <id> of sk-icp-<id>-<secret>)`,
      });
    }
  });
}

/** `tenantId -> value` in config (tenant ids as the control plane issues them). */
export function tenantIdRecord<V extends z.ZodType>(value: V) {
  return z.record(z.string().min(1).max(128), value).superRefine((rec, ctx) => {
    for (const k of Object.keys(rec))
      if (k.startsWith('sk-'))
        ctx.addIssue({
          code: 'custom',
          path: ['<raw API key>'],
          message: `'${k.slice(0, 7)}…' looks like a raw API key: tenants are named by their tenant id`,
        });
  });
}

export const lanePolicySchema = z
  .strictObject({
    /** Key id -> highest lane that key may ask for. */
    keys: keyIdRecord(laneSchema).default({}),
    /** Tenant id -> highest lane for all of the tenant's keys (a key's own entry wins). */
    tenants: tenantIdRecord(laneSchema).default({}),
    /** Highest lane for callers in neither map, and for every request when auth is off. */
    defaultMaxLane: laneSchema.default('standard'),
  })
  .prefault({});

export type LanePolicy = z.infer<typeof lanePolicySchema>;

/** The bearer token of an `Authorization` header, if any. */
export function apiKeyOf(authorization: string | undefined): string | undefined {
  if (!authorization) return undefined;
  const m = /^Bearer\s+(.+)$/i.exec(authorization.trim());
  return m ? m[1]!.trim() : undefined;
}

/**
 * The lane a request gets: what it asked for (or the default), lowered to its cap: the tenant's
 * `maxLane` when the control plane's policy sets one, else the config's entry for the key id,
 * else for the tenant id, else `defaultMaxLane`. A header that names no lane is a 400.
 */
export function resolveLane(
  requested: string | undefined,
  caller: Caller | undefined,
  policy: LanePolicy,
  defaultLane: Lane,
  tenantCap?: Lane,
): { lane: Lane; capped: boolean } {
  if (requested !== undefined && !isLane(requested))
    throw errors.invalidRequest(`The ${LANE_HEADER} header must be one of ${LANES.join(', ')}.`, LANE_HEADER, 'invalid_lane');
  const asked = requested ?? defaultLane;
  const cap =
    tenantCap ?? (caller ? (own(policy.keys, caller.keyId) ?? own(policy.tenants, caller.tenantId)) : undefined) ?? policy.defaultMaxLane;
  return laneRank(asked) < laneRank(cap) ? { lane: cap, capped: true } : { lane: asked, capped: false };
}
