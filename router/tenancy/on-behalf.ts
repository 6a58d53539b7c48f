// Requests the router makes to itself on a key's behalf (batch items go through the normal
// HTTP path with fastify's inject, so tenancy, budgets, admission and usage records all apply).
// They carry the key id and a secret known only to this process; no client can forge one.
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';

const SECRET = randomBytes(32).toString('hex');
const SECRET_HEADER = 'x-icp-internal';
const KEY_HEADER = 'x-icp-on-behalf-of';

/** Headers for an injected request that runs as `keyId`. */
export function onBehalfHeaders(keyId: string | null): Record<string, string> {
  return { [SECRET_HEADER]: SECRET, ...(keyId ? { [KEY_HEADER]: keyId } : {}) };
}

/** The key id an injected request runs as; undefined for any request from outside. */
export function onBehalfKeyId(req: FastifyRequest): string | undefined {
  const secret = req.headers[SECRET_HEADER];
  const keyId = req.headers[KEY_HEADER];
  if (typeof secret !== 'string' || typeof keyId !== 'string' || secret.length !== SECRET.length) return undefined;
  return timingSafeEqual(Buffer.from(secret), Buffer.from(SECRET)) ? keyId : undefined;
}
