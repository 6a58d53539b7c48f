// Idempotency keys with tenants (router.auth.mode: required, limits, budgets and usage records in
// a real Redis): a key is scoped by the principal's tenant, so two tenants sending the same key
// never see each other's answers; 20 concurrent repeats within one tenant are charged once: one
// usage record in the Redis stream and the tenant's budget spend grows by one answer's tokens.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import OpenAI from 'openai';
import { Redis } from 'ioredis';
import { startStack, simState, waitFor, DEFAULT_MODEL, type Stack } from '../../helpers/stack.ts';
import { startRedis, type RedisProcess } from '../../helpers/redis.ts';
import { USAGE_STREAM } from '../../../common/store/redis-usage.ts';
import { RedisBudgetStore } from '../../../common/store/redis-budgets.ts';
import { spendKeys } from '../../../router/accounting/budgets.ts';
import { sleep } from '../../../common/process.ts';

const ADMIN_TOKEN = `admin-${Math.random().toString(36).slice(2)}-secret`;

describe('idempotency keys per tenant (auth required, Redis)', () => {
  let redis: RedisProcess;
  let stack: Stack;
  let raw: Redis;
  let budgets: RedisBudgetStore;
  let keysIssued = 0;
  const admin = async (method: string, path: string, body?: object) => {
    const res = await fetch(`${stack.controlPlane!.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    assert.ok(res.ok, `${method} ${path}: ${res.status}`);
    return (await res.json()) as Record<string, unknown>;
  };
  const newTenant = async () => {
    const tenant = (await admin('POST', '/v1/admin/tenants', { name: `t-${keysIssued}`, policy: {} })) as { id: string };
    const k = (await admin('POST', `/v1/admin/tenants/${tenant.id}/keys`, { name: 'k' })) as { key: string };
    keysIssued++;
    await waitFor(
      async () =>
        (((await (await fetch(`${stack.routerUrl}/readyz`)).json()) as { tenancy?: { keys: number } }).tenancy?.keys ?? 0) >= keysIssued,
      5_000,
      20,
    );
    return { tenantId: tenant.id, client: new OpenAI({ baseURL: `${stack.routerUrl}/v1`, apiKey: k.key, maxRetries: 0, timeout: 60_000 }) };
  };
  const completed = async () => (await simState(stack.sims.get('a')!.url)).completed;
  const usageOf = async (tenantId: string) => {
    const entries = await raw.xrange(USAGE_STREAM, '-', '+');
    return entries
      .map(([, f]) => JSON.parse(f[1]!) as { tenantId: string; promptTokens: number; completionTokens: number })
      .filter((r) => r.tenantId === tenantId);
  };
  const tenantTokens = async (tenantId: string) => (await budgets.read(spendKeys([`t:${tenantId}`], Date.now())))[1]!.tokens;

  before(async () => {
    redis = await startRedis();
    process.env.ICP_ADMIN_TOKEN = ADMIN_TOKEN;
    stack = await startStack({
      sims: [{ id: 'a', args: ['--max-num-seqs', '128', '--decode-step-ms', '25', '--decode-step-ms-per-seq', '0'] }],
      agents: [{ id: 'gpu-a', sim: 'a' }],
      router: { auth: { mode: 'required', redisUrl: redis.url }, admission: { enabled: false } },
    });
    raw = new Redis(redis.url);
    budgets = new RedisBudgetStore(redis.url);
    await budgets.ready(5_000);
    await waitFor(
      async () => ((await (await fetch(`${stack.routerUrl}/v1/models`)).json()) as { data: unknown[] }).data.length >= 1,
      20_000,
    );
  });

  after(async () => {
    delete process.env.ICP_ADMIN_TOKEN;
    raw?.disconnect();
    await budgets?.close();
    await stack?.stop();
    await redis?.stop();
  });

  it("the same key in two tenants: two generations, neither sees the other's answer", async () => {
    const [a, b] = [await newTenant(), await newTenant()];
    const key = randomUUID();
    const body = { model: DEFAULT_MODEL, messages: [{ role: 'user' as const, content: 'same words, two tenants' }], max_tokens: 8 };
    const before = await completed();
    const ra = await a.client.chat.completions.create(body, { headers: { 'Idempotency-Key': key } });
    const rb = await b.client.chat.completions.create(body, { headers: { 'Idempotency-Key': key } });
    assert.notEqual(ra.id, rb.id);
    assert.equal((await completed()) - before, 2);
    // Each tenant's own repeat is its own stored answer.
    assert.equal((await b.client.chat.completions.create(body, { headers: { 'Idempotency-Key': key } })).id, rb.id);
    assert.equal((await a.client.chat.completions.create(body, { headers: { 'Idempotency-Key': key } })).id, ra.id);
  });

  it("20 concurrent repeats are charged once: one usage record, one answer's tokens of budget spend", async () => {
    const t = await newTenant();
    const key = randomUUID();
    const body = { model: DEFAULT_MODEL, messages: [{ role: 'user' as const, content: 'charge me once' }], max_tokens: 30 };
    const answers = await Promise.all(
      Array.from({ length: 20 }, () => t.client.chat.completions.create(body, { headers: { 'Idempotency-Key': key } })),
    );
    assert.equal(new Set(answers.map((x) => x.id)).size, 1);
    const tokens = answers[0]!.usage!.total_tokens;
    await waitFor(async () => (await usageOf(t.tenantId)).length >= 1 && (await tenantTokens(t.tenantId)) >= tokens, 10_000);
    // An absence check: three usage-sink flushes (200 ms each) for a second charge to land.
    await sleep(600);
    const records = await usageOf(t.tenantId);
    assert.equal(records.length, 1, `one usage record, got ${records.length}`);
    assert.equal(records[0]!.promptTokens + records[0]!.completionTokens, tokens);
    assert.equal(await tenantTokens(t.tenantId), tokens, 'budget spend counted once');
  });
});
