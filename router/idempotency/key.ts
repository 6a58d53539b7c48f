// What identifies an idempotent request: the key (client's header), its scope (the tenant, else
// the API key, else anonymous: keys of two tenants never collide) and a hash of the normalised
// body (same key + a different body is a conflict).
import { createHash } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { errors } from '../../common/errors.ts';
import { apiKeyOf } from '../admission/lanes.ts';
import { principalOf } from '../tenancy/enforcement.ts';

export const IDEMPOTENCY_HEADER = 'idempotency-key';
/** Set on every answer that was not generated for this request (joined or replayed). */
export const REPLAYED_HEADER = 'idempotent-replayed';
/** Set on a JSON answer too large to store (`too_large`): a repeat of its key runs again. */
export const NOT_STORED_HEADER = 'idempotency-not-stored';

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

/** The key from the header; undefined without one; 400 when it is not a usable key. */
export function idempotencyKeyOf(req: FastifyRequest): string | undefined {
  const raw = req.headers[IDEMPOTENCY_HEADER];
  if (raw === undefined) return undefined;
  const key = Array.isArray(raw) ? raw[0] : raw;
  if (!key || key.length > 255 || !/^[\x21-\x7e]+$/.test(key)) {
    throw errors.invalidRequest(
      'The Idempotency-Key header must be 1 to 255 visible ASCII characters.',
      'Idempotency-Key',
      'invalid_idempotency_key',
    );
  }
  return key;
}

/** The tenant scope of a key. Never the raw API key: only its hash reaches the store. */
export function scopeOf(req: FastifyRequest): string {
  const tenant = principalOf(req)?.tenantId;
  if (tenant) return `t:${tenant}`;
  const apiKey = apiKeyOf(req.headers.authorization);
  return apiKey ? `k:${sha256(apiKey).slice(0, 32)}` : 'anonymous';
}

/** Store id of (scope, key): hashed, so neither tenant ids nor client keys appear in key names. */
export function recordId(scope: string, key: string): string {
  return sha256(`${scope}\0${key}`).slice(0, 40);
}

/** Hash of the route and the body with object keys sorted: JSON formatting and key order do not matter. */
export function bodyHash(route: string, body: unknown): string {
  return sha256(`${route}\0${canonical(body)}`);
}

function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    return `{${Object.entries(v)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .filter(([, x]) => x !== undefined)
      .map(([k, x]) => `${JSON.stringify(k)}:${canonical(x)}`)
      .join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}
