// API keys: `sk-icp-<key id>-<secret>`. Only a SHA-256 of the secret is stored (keys are 256-bit
// random, so a fast hash is enough; no salt/KDF needed); the key id finds the record and the hash
// is compared in constant time. The full key is shown once, at creation.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

const KEY_RE = /^sk-icp-([0-9a-f]{12})-([A-Za-z0-9_-]{43})$/;

export interface IssuedKey {
  keyId: string;
  key: string;
  hash: string;
}

export function issueKey(): IssuedKey {
  const keyId = randomBytes(6).toString('hex');
  const secret = randomBytes(32).toString('base64url');
  return { keyId, key: `sk-icp-${keyId}-${secret}`, hash: hashSecret(secret) };
}

export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

/** The key id and secret of a well-formed key, or undefined. */
export function parseKey(key: string): { keyId: string; secret: string } | undefined {
  const m = KEY_RE.exec(key);
  return m ? { keyId: m[1]!, secret: m[2]! } : undefined;
}

export function secretMatches(secret: string, storedHash: string): boolean {
  const a = Buffer.from(hashSecret(secret), 'hex');
  const b = Buffer.from(storedHash, 'hex');
  return a.length === b.length && timingSafeEqual(a, b);
}
