// Redis killed under two routers sharing it, one configured to fail open and one to fail closed
// (router.auth.onStoreError): the open router keeps serving without limits, the closed one
// answers 503 limits_unavailable; both stay ready and say in /readyz that the store is
// unreachable; router_limit_store_failures_total counts the failures by store and policy; when
// Redis is back, limits apply again by themselves.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import OpenAI from 'openai';
import { spawnService, type ServiceProcess } from '../../../cli/spawn-service.ts';
import { startStack, waitFor, DEFAULT_MODEL, type Stack } from '../../helpers/stack.ts';
import { startRedis, type RedisProcess } from '../../helpers/redis.ts';

const ADMIN_TOKEN = `admin-${Math.random().toString(36).slice(2)}-secret`;

type Tenancy = {
  store: string;
  storeReachable: boolean;
  onStoreError: string;
  storeFailures: number;
  lastStoreFailureAt: string | null;
  keys: number;
};

describe('Redis killed under routers with limits in it: the configured policy, /readyz detail, a metric, recovery', () => {
  let redis: RedisProcess;
  let stack: Stack;
  let closedRouter: ServiceProcess;
  let key = '';
  const readyz = async (url: string) => {
    const r = await fetch(`${url}/readyz`);
    return { status: r.status, tenancy: ((await r.json()) as { tenancy: Tenancy }).tenancy };
  };
  const chat = (url: string) =>
    new OpenAI({ baseURL: `${url}/v1`, apiKey: key, maxRetries: 0 }).chat.completions
      .create({ model: DEFAULT_MODEL, messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 })
      .withResponse();
  const failures = async (url: string, store: string, policy: string) => {
    const text = await (await fetch(`${url}/metrics`)).text();
    const m = new RegExp(`^router_limit_store_failures_total\\{store="${store}",policy="${policy}"\\} (\\d+)`, 'm').exec(text);
    return m ? Number(m[1]) : 0;
  };

  before(async () => {
    redis = await startRedis();
    process.env.ICP_ADMIN_TOKEN = ADMIN_TOKEN;
    stack = await startStack({
      sims: [{ id: 'a' }],
      agents: [{ id: 'gpu-a', sim: 'a' }],
      router: {
        auth: { mode: 'required', redisUrl: redis.url, onStoreError: 'open', commandTimeoutMs: 2_000 },
        admission: { enabled: false },
      },
    });
    // The second router: the same config, failing closed.
    const cfg = parse(readFileSync(stack.configFile, 'utf8')) as { router: { auth: Record<string, unknown> } };
    cfg.router.auth.onStoreError = 'closed';
    const closedFile = join(stack.dir, 'closed.yaml');
    writeFileSync(closedFile, stringify(cfg));
    closedRouter = await spawnService({
      name: 'router-closed',
      entry: 'cli/main.ts',
      args: ['router', '--config', closedFile],
      env: { LOG_LEVEL: 'warn', ICP_ROUTER_TOKEN: stack.credentials.routerToken },
      onLine: (l) => stack.logs.push(`[router-closed] ${l}`),
    });

    const adm = (path: string, body: object) =>
      fetch(`${stack.controlPlane!.url}${path}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      }).then((r) => r.json() as Promise<Record<string, string>>);
    // A token budget too, so the budget store is read at admission as well.
    const tenant = await adm('/v1/admin/tenants', {
      name: 'redis-down',
      policy: { rpm: 1_000, maxConcurrent: 50, monthlyTokenBudget: 10_000_000 },
    });
    key = (await adm(`/v1/admin/tenants/${tenant.id}/keys`, { name: 'k' })).key!;
    for (const url of [stack.routerUrl, closedRouter.url]) {
      await waitFor(async () => (await readyz(url)).tenancy.keys >= 1, 10_000, 50);
      await waitFor(
        async () =>
          ((await fetch(`${url}/v1/models`).then((r) => r.json())) as { data: { id: string }[] }).data.some((m) => m.id === DEFAULT_MODEL),
        20_000,
      );
    }
  });

  after(async () => {
    delete process.env.ICP_ADMIN_TOKEN;
    await closedRouter?.stop(5_000);
    await stack?.stop();
    await redis?.stop();
  });

  it('with Redis up both routers apply limits (rate headers) and report the store reachable', async () => {
    for (const url of [stack.routerUrl, closedRouter.url]) {
      const { response } = await chat(url);
      assert.equal(response.headers.get('x-ratelimit-limit-requests'), '1000');
      const r = await readyz(url);
      assert.equal(r.tenancy.store, 'redis');
      assert.equal(r.tenancy.storeReachable, true);
      assert.equal(r.tenancy.storeFailures, 0);
    }
  });

  it('Redis killed: open serves without limits, closed answers 503 limits_unavailable; both say so', async () => {
    await redis.stop();
    await waitFor(
      async () => !(await readyz(stack.routerUrl)).tenancy.storeReachable && !(await readyz(closedRouter.url)).tenancy.storeReachable,
      10_000,
      50,
    );

    const { data, response } = await chat(stack.routerUrl);
    assert.ok(data.choices[0]!.message.content !== undefined);
    assert.equal(response.headers.get('x-ratelimit-limit-requests'), null, 'served without the limit check');
    await assert.rejects(chat(closedRouter.url), (e: unknown) => {
      assert.ok(e instanceof OpenAI.APIError);
      assert.equal(e.status, 503);
      assert.equal(e.code, 'limits_unavailable');
      assert.ok(Number(e.headers?.get('retry-after')) >= 1);
      return true;
    });

    for (const [url, policy] of [
      [stack.routerUrl, 'open'],
      [closedRouter.url, 'closed'],
    ] as const) {
      const r = await readyz(url);
      assert.equal(r.status, 200, 'still ready: the router keeps serving by its policy');
      assert.deepEqual([r.tenancy.storeReachable, r.tenancy.onStoreError], [false, policy]);
      assert.ok(r.tenancy.storeFailures >= 1);
      assert.ok(r.tenancy.lastStoreFailureAt && Date.parse(r.tenancy.lastStoreFailureAt) > Date.now() - 60_000);
      assert.ok((await failures(url, 'limits', policy)) >= 1);
    }
    // The open router went on to the budget check, which failed open too.
    assert.ok((await failures(stack.routerUrl, 'budgets', 'open')) >= 1);
  });

  it('Redis back: both routers reconnect by themselves and limit again', async () => {
    await redis.restart();
    for (const url of [stack.routerUrl, closedRouter.url]) {
      await waitFor(async () => (await readyz(url)).tenancy.storeReachable, 20_000, 100);
      const { response } = await chat(url);
      assert.equal(response.headers.get('x-ratelimit-limit-requests'), '1000');
    }
  });
});
