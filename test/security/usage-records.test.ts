// Issue 17: usage records copied the raw `model` of a request (a 3.9 MB name was stored whole),
// a failed usage send was retried for ever as one buffer, and after a burst of such requests other
// tenants' usage stopped being recorded. Real control plane, router, agent and simulated engine,
// auth required, usage records shipped to the control plane over HTTP (the embedded default).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, waitFor, DEFAULT_MODEL, type Stack } from '../helpers/stack.ts';

const ADMIN_TOKEN = `admin-${Math.random().toString(36).slice(2)}-secret`;
/** The router's default body limit is 4 MiB: a model name just under it. */
const HUGE = 4 * 1024 * 1024 - 4_096;

type Rec = { id: string; tenantId: string; requestedModel: string; model: string; status: number; truncated?: string[] };

describe('usage records: bounded fields, and one tenant cannot stop another tenant being recorded', () => {
  let stack: Stack;
  const admin = async (method: string, path: string, body?: object) => {
    const res = await fetch(`${stack.controlPlane!.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    assert.ok(res.ok, `${method} ${path}: ${res.status}`);
    return (await res.json()) as Record<string, unknown>;
  };
  let keysIssued = 0;
  const newTenant = async (name: string) => {
    const tenant = (await admin('POST', '/v1/admin/tenants', { name, policy: {} })) as { id: string };
    const k = (await admin('POST', `/v1/admin/tenants/${tenant.id}/keys`, { name: 'k' })) as { key: string };
    keysIssued += 1;
    await waitFor(
      async () =>
        (((await (await fetch(`${stack.routerUrl}/readyz`)).json()) as { tenancy?: { keys: number } }).tenancy?.keys ?? 0) >= keysIssued,
      10_000,
      20,
    );
    return { tenantId: tenant.id, key: k.key };
  };
  const chat = (key: string, model: string) =>
    fetch(`${stack.routerUrl}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 }),
    });
  const recordsOf = async (tenantId: string) => ((await admin('GET', `/v1/admin/usage?tenant=${tenantId}`)) as { data: Rec[] }).data;

  before(async () => {
    process.env.ICP_ADMIN_TOKEN = ADMIN_TOKEN;
    stack = await startStack({
      sims: [{ id: 's', args: ['--decode-step-ms', '1', '--decode-step-ms-per-seq', '0'] }],
      agents: [{ id: 'gpu-1', sim: 's' }],
      router: { auth: { mode: 'required' }, admission: { enabled: false } },
    });
    await waitFor(
      async () => ((await (await fetch(`${stack.routerUrl}/v1/models`)).json()) as { data: unknown[] }).data.length >= 1,
      20_000,
    );
  });

  after(async () => {
    delete process.env.ICP_ADMIN_TOKEN;
    await stack?.stop();
  });

  it("a burst of huge model names from tenant A: B's records still arrive, A's names are capped and flagged", async () => {
    const a = await newTenant('burst-a');
    const b = await newTenant('quiet-b');
    const huge = `m${'x'.repeat(HUGE)}`;
    // 32 requests of ~4 MiB each, 8 at a time: far more than one control-plane POST may carry.
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) {
      const batch = await Promise.all(
        Array.from({ length: 8 }, async () => {
          const res = await chat(a.key, huge);
          await res.arrayBuffer();
          return res.status;
        }),
      );
      statuses.push(...batch);
    }
    assert.ok(
      statuses.every((s) => s === 400 || s === 404),
      `an over-long model name is refused (400) or not found (404), got ${statuses.join(',')}`,
    );
    for (let i = 0; i < 3; i++) assert.equal((await chat(b.key, DEFAULT_MODEL)).status, 200);

    const bRecords = await waitFor(
      async () => {
        const r = await recordsOf(b.tenantId);
        return r.length >= 3 ? r : undefined;
      },
      20_000,
      200,
    );
    assert.equal(bRecords!.length, 3);
    assert.ok(bRecords!.every((r) => r.requestedModel === DEFAULT_MODEL && r.status === 200 && !r.truncated));

    const aRecords = await waitFor(
      async () => {
        const r = await recordsOf(a.tenantId);
        return r.length >= 32 ? r : undefined;
      },
      20_000,
      200,
    );
    for (const r of aRecords!) {
      assert.ok(r.requestedModel.length <= 256, `stored name capped, got ${r.requestedModel.length} chars`);
      assert.ok(r.model.length <= 256);
      assert.deepEqual(r.truncated, ['requestedModel']);
      assert.ok(r.requestedModel.startsWith('mxxx'));
    }
    const metrics = await (await fetch(`${stack.routerUrl}/metrics`)).text();
    assert.match(metrics, /router_usage_records_total\{result="written"\} (\d+)/);
    assert.doesNotMatch(metrics, /router_usage_records_total\{result="(refused|dropped)"\}/);
  });
});
