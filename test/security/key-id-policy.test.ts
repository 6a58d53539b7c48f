// Issue 17, item 8: no raw secrets in config. Lane caps (`router.lanes`) and data residency
// (`router.fallback.residency`) name key ids and tenant ids, never bearer tokens. On a real stack
// (control plane, simulated vLLM behind an agent, the OpenAI simulator as a hosted provider, keys
// required) a router configured by key id and tenant id caps lanes and keeps data in the cluster
// for exactly the callers it names; a router whose config still carries a raw key refuses to
// start, says to use the key id, and never prints the key.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { adminApi, startStack, waitFor, DEFAULT_MODEL, type Stack } from '../helpers/stack.ts';
import { spawnService, type ServiceProcess } from '../../cli/spawn-service.ts';

const ADMIN_TOKEN = 'key-id-policy-admin-' + 'q'.repeat(32);
const OPENAI_KEY = 'sk-test-openai-key-id-policy-1f2e3d';
/** A chain with no local step: the request leaves the cluster, or gets the honest 503. */
const HOSTED = 'gpt-direct';

interface Issued {
  key: string;
  keyId: string;
  tenantId: string;
}

describe('lane caps and residency by key id and tenant id', () => {
  let stack: Stack;
  let dir: string;
  let router: ServiceProcess | undefined;
  const keys: Record<'a' | 'b' | 'c', Issued> = {} as Record<'a' | 'b' | 'c', Issued>;
  const routerSection = () => (parse(readFileSync(stack.configFile, 'utf8')) as { router: Record<string, unknown> }).router;

  const chat = async (key: string, model: string, lane?: string) => {
    const res = await fetch(`${router!.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${key}`, ...(lane ? { 'x-priority-lane': lane } : {}) },
      body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 }),
    });
    await res.arrayBuffer();
    return { status: res.status, lane: res.headers.get('x-priority-lane'), backend: res.headers.get('x-backend') };
  };
  const providerRequests = async () =>
    ((await (await fetch(`${stack.providerSims.get('openai-sim')!.url}/sim/state`)).json()) as { requests: unknown[] }).requests.length;

  /** Writes a config file: the stack's, with this router section merged over it. */
  const configWith = (name: string, router: Record<string, unknown>) => {
    const all = parse(readFileSync(stack.configFile, 'utf8')) as Record<string, unknown>;
    const file = join(dir, name);
    writeFileSync(file, stringify({ ...all, router: { ...(all.router as object), ...router } }));
    return file;
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'icp-key-id-policy-'));
    const tokenFile = join(dir, 'admin-token');
    writeFileSync(tokenFile, ADMIN_TOKEN);
    stack = await startStack({
      sims: [{ id: 'sim' }],
      agents: [{ id: 'gpu', sim: 'sim' }],
      controlPlane: { adminTokenFile: tokenFile },
      providerSims: [{ id: 'openai-sim', apiKey: OPENAI_KEY }],
      routerEnv: { ICP_ADMIN_TOKEN: ADMIN_TOKEN, ICP_TEST_OPENAI_KEY: OPENAI_KEY },
      router: ({ providerSims }) => ({
        auth: { mode: 'required' },
        fallback: {
          providers: {
            openai: { kind: 'openai', baseUrl: `${providerSims.get('openai-sim')!.url}/v1`, apiKeyEnv: 'ICP_TEST_OPENAI_KEY' },
          },
          chains: { [HOSTED]: ['openai:gpt-4o-mini'] },
        },
      }),
    });
    const adminCall = adminApi(() => stack.controlPlane!.url, ADMIN_TOKEN);
    const admin = (path: string, body: object) => adminCall('POST', path, body);
    for (const name of ['a', 'b', 'c'] as const) {
      const t = await admin('/v1/admin/tenants', { name: `tenant-${name}`, policy: {} });
      const k = await admin(`/v1/admin/tenants/${t.id as string}/keys`, { name: `key-${name}` });
      keys[name] = { key: k.key as string, keyId: k.keyId as string, tenantId: t.id as string };
    }
    // A key's own entry (a) and a tenant's (b); c is in neither map.
    const file = configWith('by-id.yaml', {
      lanes: { keys: { [keys.a.keyId]: 'critical' }, tenants: { [keys.b.tenantId]: 'sheddable' }, defaultMaxLane: 'standard' },
      fallback: {
        ...(routerSection().fallback as object),
        residency: { keys: { [keys.a.keyId]: 'cluster' }, tenants: { [keys.b.tenantId]: 'cluster' }, default: 'any' },
      },
    });
    router = await spawnService({
      name: 'router-by-id',
      entry: 'cli/main.ts',
      args: ['router', '--config', file],
      env: { LOG_LEVEL: 'warn', ICP_ROUTER_TOKEN: stack.credentials.routerToken, ICP_TEST_OPENAI_KEY: OPENAI_KEY },
      onLine: () => undefined,
    });
    await waitFor(async () => (await chat(keys.c.key, DEFAULT_MODEL)).status === 200, 30_000, 100);
  });

  after(async () => {
    await router?.stop(5_000);
    await stack?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('caps lanes by key id, then tenant id, then the default', async () => {
    assert.deepEqual(await chat(keys.a.key, DEFAULT_MODEL, 'critical'), { status: 200, lane: 'critical', backend: 'node:gpu' });
    assert.equal((await chat(keys.b.key, DEFAULT_MODEL, 'standard')).lane, 'sheddable');
    assert.equal((await chat(keys.c.key, DEFAULT_MODEL, 'critical')).lane, 'standard');
    assert.equal((await chat(keys.c.key, DEFAULT_MODEL, 'sheddable')).lane, 'sheddable');
  });

  it('keeps the data of the key id and the tenant named `cluster` in the cluster; others may leave', async () => {
    const before = await providerRequests();
    for (const k of [keys.a, keys.b]) assert.equal((await chat(k.key, HOSTED)).status, 503);
    assert.equal(await providerRequests(), before, 'nothing reached the provider');
    const served = await chat(keys.c.key, HOSTED);
    assert.equal(served.status, 200);
    assert.equal(served.backend, 'openai:gpt-4o-mini');
  });

  it('a router whose config names a raw API key refuses to start, says to use the key id, and never prints the key', async () => {
    const lines: string[] = [];
    for (const [name, router] of [
      ['raw-lanes.yaml', { lanes: { keys: { [keys.a.key]: 'critical' } } }],
      ['raw-residency.yaml', { fallback: { ...(routerSection().fallback as object), residency: { keys: { [keys.a.key]: 'cluster' } } } }],
    ] as const) {
      const file = configWith(name, router);
      await assert.rejects(
        spawnService({
          name: `router-${name}`,
          entry: 'cli/main.ts',
          args: ['router', '--config', file],
          env: { LOG_LEVEL: 'info', ICP_ROUTER_TOKEN: stack.credentials.routerToken, ICP_TEST_OPENAI_KEY: OPENAI_KEY },
          onLine: (l) => lines.push(l),
          timeoutMs: 30_000,
        }),
        (e: Error) => {
          assert.match(e.message, /exited .* before listening/);
          assert.match(e.message, /looks like a raw API key: refer to it by its key id/);
          return true;
        },
      );
    }
    const secret = keys.a.key.slice(keys.a.key.lastIndexOf('-') + 1);
    assert.ok(lines.length > 0);
    assert.ok(!lines.some((l) => l.includes(secret) || l.includes(keys.a.keyId)), 'neither the key nor its id is printed');
  });
});
