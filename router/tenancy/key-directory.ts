// The router's copy of tenants and keys (from the control plane's policy watch). Keys are
// verified locally against stored hashes: no network call on the request path.
import { errors } from '../../common/errors.ts';
import { parseKey, secretMatches } from '../../common/api-keys.ts';
import type { ApiKeyRecord, Policy, PolicySnapshot, Tenant } from '../../common/contracts.ts';
import { narrow } from '../../common/policy.ts';

export interface Principal {
  keyId: string;
  tenantId: string;
  /** The tenant's policy: limits shared by all its keys. */
  tenantPolicy: Policy;
  /** The key's own narrowing (limits on this key alone). */
  keyPolicy: Policy;
  /** Effective: the stricter of the two, field by field. */
  policy: Policy;
  tags: Record<string, string>;
}

export class KeyDirectory {
  private keys = new Map<string, { key: ApiKeyRecord; tenant: Tenant }>();
  version = -1;

  load(snap: PolicySnapshot): void {
    const tenants = new Map(snap.tenants.map((t) => [t.id, t]));
    const keys = new Map<string, { key: ApiKeyRecord; tenant: Tenant }>();
    for (const k of snap.keys) {
      const tenant = tenants.get(k.tenantId);
      if (tenant) keys.set(k.keyId, { key: k, tenant });
    }
    this.keys = keys;
    this.version = snap.version;
  }

  get size(): number {
    return this.keys.size;
  }

  /** The principal behind an `Authorization: Bearer` header, or a 401/403 in OpenAI's shape. */
  authenticate(authorization: string | undefined): Principal {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? '');
    if (!m) throw errors.unauthorized('You didn\'t provide an API key. Send it as "Authorization: Bearer <key>".');
    const parsed = parseKey(m[1]!);
    const entry = parsed && this.keys.get(parsed.keyId);
    // The same answer for malformed, unknown and wrong-secret keys: nothing to probe.
    if (!parsed || !entry || !secretMatches(parsed.secret, entry.key.hash)) throw errors.unauthorized();
    return this.principalFor(entry.key.keyId);
  }

  /** The principal of a key already verified (work the router runs on a key's behalf: batch items). */
  principalFor(keyId: string): Principal {
    const entry = this.keys.get(keyId);
    if (!entry) throw errors.unauthorized('This API key no longer exists.');
    if (entry.key.revokedAt) throw errors.unauthorized('This API key has been revoked.');
    if (entry.tenant.disabled) throw errors.forbidden("This API key's tenant is disabled.", 'tenant_disabled');
    return {
      keyId: entry.key.keyId,
      tenantId: entry.tenant.id,
      tenantPolicy: entry.tenant.policy,
      keyPolicy: entry.key.policy,
      policy: narrow(entry.tenant.policy, entry.key.policy),
      tags: entry.tenant.tags,
    };
  }
}
