// Tenants and their API keys: the control plane's source of truth, published to routers as a
// snapshot on every change (routers verify keys locally against the stored hashes, so the
// control plane is never on the request path). Persisted to a JSON file when one is configured
// (atomic rename), so a restart keeps tenants and keys.
import { EventEmitter } from 'node:events';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { issueKey } from '../../common/api-keys.ts';
import { policySnapshotSchema, type ApiKeyRecord, type Policy, type PolicySnapshot, type Tenant } from '../../common/contracts.ts';

// The state file holds the snapshot less its version: checked like a snapshot, so a hand-edited
// file that would publish a malformed policy fails the start instead.
const stateFileSchema = policySnapshotSchema.omit({ version: true });

export class TenantRegistry extends EventEmitter {
  private tenants = new Map<string, Tenant>();
  private keys = new Map<string, ApiKeyRecord>();
  private version = 0;

  constructor(private readonly stateFile?: string) {
    super();
    if (stateFile) this.load(stateFile);
  }

  createTenant(input: { name: string; policy?: Policy; tags?: Record<string, string> }): Tenant {
    const t: Tenant = {
      id: `ten_${randomUUID().replaceAll('-', '').slice(0, 16)}`,
      name: input.name,
      policy: input.policy ?? {},
      tags: input.tags ?? {},
      disabled: false,
      createdAt: new Date().toISOString(),
    };
    this.tenants.set(t.id, t);
    this.changed();
    return t;
  }

  updateTenant(
    id: string,
    patch: { name?: string; policy?: Policy; tags?: Record<string, string>; disabled?: boolean },
  ): Tenant | undefined {
    const t = this.tenants.get(id);
    if (!t) return undefined;
    Object.assign(t, Object.fromEntries(Object.entries(patch).filter(([, v]) => v !== undefined)));
    this.changed();
    return t;
  }

  getTenant(id: string): Tenant | undefined {
    return this.tenants.get(id);
  }

  listTenants(): Tenant[] {
    return [...this.tenants.values()];
  }

  /** Issues a key; the returned `key` is the only time the secret exists outside its holder. */
  createKey(tenantId: string, input: { name?: string; policy?: Policy }): { record: ApiKeyRecord; key: string } | undefined {
    if (!this.tenants.has(tenantId)) return undefined;
    const issued = issueKey();
    const record: ApiKeyRecord = {
      keyId: issued.keyId,
      tenantId,
      name: input.name ?? '',
      hash: issued.hash,
      policy: input.policy ?? {},
      createdAt: new Date().toISOString(),
      revokedAt: null,
    };
    this.keys.set(record.keyId, record);
    this.changed();
    return { record, key: issued.key };
  }

  revokeKey(keyId: string): ApiKeyRecord | undefined {
    const k = this.keys.get(keyId);
    if (!k) return undefined;
    if (!k.revokedAt) {
      k.revokedAt = new Date().toISOString();
      this.changed();
    }
    return k;
  }

  listKeys(tenantId?: string): ApiKeyRecord[] {
    return [...this.keys.values()].filter((k) => !tenantId || k.tenantId === tenantId);
  }

  snapshot(): PolicySnapshot {
    return { version: this.version, tenants: this.listTenants(), keys: this.listKeys() };
  }

  private changed(): void {
    this.version += 1;
    if (this.stateFile) this.save(this.stateFile);
    this.emit('change', this.snapshot());
  }

  private save(file: string): void {
    const tmp = `${file}.tmp`;
    writeFileSync(tmp, JSON.stringify({ tenants: this.listTenants(), keys: this.listKeys() }), { mode: 0o600 });
    renameSync(tmp, file);
  }

  private load(file: string): void {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      return; // first start
    }
    const data = stateFileSchema.parse(JSON.parse(text));
    this.tenants = new Map(data.tenants.map((t) => [t.id, t]));
    this.keys = new Map(data.keys.map((k) => [k.keyId, k]));
  }
}
