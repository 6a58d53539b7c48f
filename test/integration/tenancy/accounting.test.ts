// Model catalog, budgets and usage records end to end: a real control plane, router, agents and
// simulated engines, limits and spend in a real Redis, the official openai SDK as the client.
// Canary split ratio and stickiness per key; budget warning header at 80% and 429
// insufficient_quota (or a downgrade to a cheaper alias) at 100%; usage records queryable from
// the control plane as JSON and CSV with the right tokens and cost and no prompt text.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { startStack, waitFor, DEFAULT_MODEL, type Stack } from '../../helpers/stack.ts';
import { startRedis, type RedisProcess } from '../../helpers/redis.ts';
import { USAGE_STREAM } from '../../../common/store/redis-usage.ts';
import { Redis } from 'ioredis';

const CHEAP_MODEL = 'sim-cheap-model';
const ADMIN_TOKEN = `admin-${Math.random().toString(36).slice(2)}-secret`;
const PRICE = { inputPerMTok: 1_000, outputPerMTok: 3_000 };
const costOf = (p: number, c: number) => (p * PRICE.inputPerMTok + c * PRICE.outputPerMTok) / 1e6;

describe('catalog, budgets and usage records (router + control plane + Redis)', () => {
  let redis: RedisProcess;
  let stack: Stack;
  const admin = async (method: string, path: string, body?: object) => {
    const res = await fetch(`${stack.controlPlane!.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    assert.ok(res.ok, `${method} ${path}: ${res.status}`);
    return res.headers.get('content-type')?.includes('json') ? ((await res.json()) as Record<string, unknown>) : await res.text();
  };
  let keysIssued = 0;
  const newKeys = async (n: number, policy: object, tags: Record<string, string> = {}) => {
    const tenant = (await admin('POST', '/v1/admin/tenants', { name: `t-${keysIssued}`, policy, tags })) as { id: string };
    const keys: { key: string; keyId: string }[] = [];
    for (let i = 0; i < n; i++) {
      const k = (await admin('POST', `/v1/admin/tenants/${tenant.id}/keys`, { name: `k${i}` })) as { key: string; keyId: string };
      keys.push(k);
    }
    keysIssued += n;
    await waitFor(
      async () =>
        (((await (await fetch(`${stack.routerUrl}/readyz`)).json()) as { tenancy?: { keys: number } }).tenancy?.keys ?? 0) >= keysIssued,
      5_000,
      20,
    );
    return { tenantId: tenant.id, keys };
  };
  const client = (key: string) => new OpenAI({ baseURL: `${stack.routerUrl}/v1`, apiKey: key, maxRetries: 0 });

  before(async () => {
    redis = await startRedis();
    process.env.ICP_ADMIN_TOKEN = ADMIN_TOKEN;
    stack = await startStack({
      sims: [
        { id: 'a', args: ['--max-num-seqs', '256', '--decode-step-ms', '2', '--decode-step-ms-per-seq', '0'] },
        { id: 'b', model: CHEAP_MODEL, args: ['--max-num-seqs', '256', '--decode-step-ms', '2', '--decode-step-ms-per-seq', '0'] },
      ],
      agents: [
        { id: 'gpu-a', sim: 'a' },
        { id: 'gpu-b', sim: 'b' },
      ],
      router: {
        auth: { mode: 'required', redisUrl: redis.url },
        admission: { enabled: false },
        aliases: { 'chat-premium': DEFAULT_MODEL, 'chat-cheap': CHEAP_MODEL },
        catalog: {
          splits: {
            'chat-canary': [
              { model: DEFAULT_MODEL, weight: 3 },
              { model: CHEAP_MODEL, weight: 1 },
            ],
          },
          prices: { [DEFAULT_MODEL]: PRICE },
          localGpuCostPerToken: 0.000001,
        },
        budgets: { downgrade: { 'chat-premium': 'chat-cheap' } },
      },
    });
    await waitFor(
      async () => ((await (await fetch(`${stack.routerUrl}/v1/models`)).json()) as { data: unknown[] }).data.length >= 2,
      20_000,
    );
  });

  after(async () => {
    delete process.env.ICP_ADMIN_TOKEN;
    await stack?.stop();
    await redis?.stop();
  });

  it('splits an alias by weight, sticky per key', async () => {
    const { keys } = await newKeys(160, {});
    const served = await Promise.all(
      keys.map(async ({ key }) => {
        const c = client(key);
        const models = new Set<string>();
        for (let i = 0; i < 3; i++)
          models.add(
            (await c.chat.completions.create({ model: 'chat-canary', messages: [{ role: 'user', content: 'hi' }], max_tokens: 1 })).model,
          );
        return models;
      }),
    );
    assert.ok(
      served.every((m) => m.size === 1),
      'a key always lands on the same target',
    );
    const share = served.filter((m) => m.has(DEFAULT_MODEL)).length / keys.length;
    assert.ok(share > 0.62 && share < 0.88, `3:1 split, got ${share}`);
  });

  it('warns at 80% of a budget, then refuses with 429 insufficient_quota (RateLimitError)', async () => {
    const { tenantId, keys } = await newKeys(1, { monthlyTokenBudget: 200 });
    const c = client(keys[0]!.key);
    let spent = 0;
    let warned = false;
    for (let i = 0; i < 40 && spent < 200; i++) {
      const { data, response } = await c.chat.completions
        .create({ model: DEFAULT_MODEL, messages: [{ role: 'user', content: 'count' }], max_tokens: 4 })
        .withResponse();
      const warning = response.headers.get('x-budget-warning');
      assert.equal(warning !== null, spent >= 160, `spent ${spent}: header ${warning}`);
      if (warning) {
        warned = true;
        assert.match(warning, new RegExp(`tenant ${tenantId} monthly tokens budget at \\d+%`));
      }
      spent += data.usage!.total_tokens;
      // Spend is added after the answer is sent (one store write); 500 ms is the bound this relies on.
      // A late write only moves the warning one request later, which the loop tolerates.
      await new Promise((r) => setTimeout(r, 500));
    }
    assert.ok(warned, 'saw the 80% warning');
    await assert.rejects(
      c.chat.completions.create({ model: DEFAULT_MODEL, messages: [{ role: 'user', content: 'more' }], max_tokens: 4 }),
      (e: unknown) => {
        assert.ok(e instanceof OpenAI.RateLimitError, String(e));
        assert.equal(e.code, 'insufficient_quota');
        assert.equal((e.error as { type?: string }).type, 'insufficient_quota');
        return true;
      },
    );
    const metrics = await (await fetch(`${stack.routerUrl}/metrics`)).text();
    assert.match(metrics, /router_budget_events_total\{scope="tenant",period="month",level="warning"\} 1/);
    assert.match(metrics, /router_budget_events_total\{scope="tenant",period="month",level="exhausted"\} 1/);
  });

  it('downgrades to the cheaper alias at 100% when the policy says so', async () => {
    const { keys } = await newKeys(1, { dailyCostBudgetUsd: 0.0001, onBudgetExhausted: 'downgrade' });
    const c = client(keys[0]!.key);
    let downgraded: string | null = null;
    for (let i = 0; i < 40 && !downgraded; i++) {
      const { data, response } = await c.chat.completions
        .create({ model: 'chat-premium', messages: [{ role: 'user', content: 'hello' }], max_tokens: 8 })
        .withResponse();
      downgraded = response.headers.get('x-budget-downgraded');
      assert.equal(data.model, downgraded ? CHEAP_MODEL : DEFAULT_MODEL);
      await new Promise((r) => setTimeout(r, 500));
    }
    assert.equal(downgraded, 'chat-premium -> chat-cheap');
  });

  it('writes one usage record per request, queryable as JSON and CSV, with tokens and cost and no prompt text', async () => {
    const { tenantId, keys } = await newKeys(1, {}, { team: 'search' });
    const secretPrompt = `confidential-${Math.random().toString(36).slice(2)}`;
    const c = client(keys[0]!.key);
    const usages: { p: number; c: number }[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await c.chat.completions.create({
        model: DEFAULT_MODEL,
        messages: [{ role: 'user', content: secretPrompt }],
        max_tokens: 5,
      });
      usages.push({ p: r.usage!.prompt_tokens, c: r.usage!.completion_tokens });
    }
    const stream = await c.chat.completions.create({
      model: 'chat-cheap',
      messages: [{ role: 'user', content: secretPrompt }],
      max_tokens: 5,
      stream: true,
      stream_options: { include_usage: true },
    });
    let streamUsage = { p: 0, c: 0 };
    for await (const chunk of stream) if (chunk.usage) streamUsage = { p: chunk.usage.prompt_tokens, c: chunk.usage.completion_tokens };

    type Rec = {
      keyId: string;
      model: string;
      requestedModel: string;
      backend: string;
      lane: string;
      tags: Record<string, string>;
      promptTokens: number;
      completionTokens: number;
      costUsd: number;
      ttftMs: number | null;
      latencyMs: number;
      outcome: string;
    };
    const json = (await waitFor(async () => {
      const r = (await admin('GET', `/v1/admin/usage?tenant=${tenantId}`)) as { data: Rec[] };
      return r.data.length >= 4 ? r.data : undefined;
    }, 5_000))!;
    assert.equal(json.length, 4);
    json.slice(0, 3).forEach((r, i) => {
      assert.equal(r.keyId, keys[0]!.keyId);
      assert.equal(r.model, DEFAULT_MODEL);
      assert.equal(r.backend, 'node:gpu-a');
      assert.equal(r.outcome, 'ok');
      assert.deepEqual(r.tags, { team: 'search' });
      assert.equal(r.promptTokens, usages[i]!.p);
      assert.equal(r.completionTokens, usages[i]!.c);
      assert.ok(Math.abs(r.costUsd - costOf(usages[i]!.p, usages[i]!.c)) < 1e-12, `${r.costUsd}`);
    });
    const s = json[3]!;
    assert.equal(s.model, CHEAP_MODEL);
    assert.equal(s.requestedModel, 'chat-cheap');
    assert.equal(s.promptTokens, streamUsage.p);
    assert.ok(s.ttftMs !== null && s.ttftMs <= s.latencyMs);
    // No list price: local GPU cost per token.
    assert.ok(Math.abs(s.costUsd - (streamUsage.p + streamUsage.c) * 0.000001) < 1e-12);

    assert.equal(((await admin('GET', `/v1/admin/usage?tenant=${tenantId}&model=${CHEAP_MODEL}`)) as { data: Rec[] }).data.length, 1);
    assert.equal(
      (
        (await admin('GET', `/v1/admin/usage?tag=team=search&key=${keys[0]!.keyId}&day=${new Date().toISOString().slice(0, 10)}`)) as {
          data: Rec[];
        }
      ).data.length,
      4,
    );
    const csv = (await admin('GET', `/v1/admin/usage?tenant=${tenantId}&format=csv`)) as string;
    const lines = csv.trim().split('\r\n');
    assert.equal(lines.length, 5);
    assert.ok(lines[0]!.startsWith('id,ts,tenantId,keyId,'));
    assert.ok(lines[1]!.includes(`,${usages[0]!.p},${usages[0]!.c},`));

    const r = new Redis(redis.url);
    const raw = JSON.stringify(await r.xrange(USAGE_STREAM, '-', '+'));
    r.disconnect();
    for (const text of [JSON.stringify(json), csv, raw]) assert.ok(!text.includes(secretPrompt), 'no prompt text in usage records');
    assert.ok(raw.includes(tenantId), 'records are in the Redis stream');
  });
});
