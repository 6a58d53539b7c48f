// Tenants, keys and limits across three router replicas sharing one real Redis: keys issued by
// the admin CLI, exactly-N admission under concurrency, OpenAI's rate-limit headers, concurrency
// leases (freed by expiry when a router dies), revocation on every replica within 1 s, and no key
// in any log.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'undici';
import OpenAI from 'openai';
import { startStack, waitFor, DEFAULT_MODEL, type Stack } from '../../helpers/stack.ts';
import { startRedis, type RedisProcess } from '../../helpers/redis.ts';
import { spawnService, type ServiceProcess } from '../../../cli/spawn-service.ts';
import { runAdmin } from '../../../cli/admin.ts';

const SLOW_MODEL = 'sim-slow-model';
/** Longer than a slow stream (at most 64 tokens x 100 ms), so a dead router's leases outlive the survivors'. */
const LEASE_TTL_MS = 9_000;
const ADMIN_TOKEN = `admin-${Math.random().toString(36).slice(2)}-secret`;

describe('tenancy across three routers sharing Redis', () => {
  let redis: RedisProcess;
  let stack: Stack;
  const routers: ServiceProcess[] = [];
  const extraLogs: string[] = [];
  const issued: string[] = [];
  let routerUrls: string[] = [];

  const admin = async (...args: string[]) => {
    let text = '';
    const code = await runAdmin([...args, '--url', stack.controlPlane!.url], (s) => (text += s + '\n'));
    assert.equal(code, 0, text);
    return JSON.parse(text) as Record<string, unknown>;
  };
  const newKey = async (policy: object) => {
    const tenant = await admin('tenants', 'create', '--name', `t-${issued.length}`, '--policy', JSON.stringify(policy));
    const key = await admin('keys', 'create', String(tenant.id), '--name', 'test');
    issued.push(String(key.key));
    return { key: String(key.key), keyId: String(key.keyId), tenantId: String(tenant.id) };
  };
  const seesKeys = (n: number) =>
    waitFor(
      async () => {
        const all = await Promise.all(
          routerUrls.map(async (u) => ((await (await fetch(`${u}/readyz`)).json()) as { tenancy?: { keys: number } }).tenancy?.keys ?? 0),
        );
        return all.every((k) => k >= n);
      },
      5_000,
      20,
    );
  const chat = (url: string, key: string | undefined, extra: object = {}) =>
    request(`${url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(key ? { authorization: `Bearer ${key}` } : {}) },
      body: JSON.stringify({ model: DEFAULT_MODEL, messages: [{ role: 'user', content: 'hi' }], max_tokens: 1, ...extra }),
    });

  before(async () => {
    redis = await startRedis();
    process.env.ICP_ADMIN_TOKEN = ADMIN_TOKEN;
    stack = await startStack({
      sims: [
        { id: 'sim', args: ['--max-num-seqs', '256', '--decode-step-ms', '5', '--decode-step-ms-per-seq', '0'] },
        // Slow streams (>= 1.6 s each) so that every admitted one is still running when the last arrives.
        { id: 'slow', model: SLOW_MODEL, args: ['--max-num-seqs', '256', '--decode-step-ms', '100', '--decode-step-ms-per-seq', '0'] },
      ],
      agents: [
        { id: 'gpu', sim: 'sim' },
        { id: 'gpu-slow', sim: 'slow' },
      ],
      // Closed: a slow Redis answer under this 2-core load must refuse, never admit past the limit.
      // Node breakers off: 1000 requests queued on one simulated node are slow by design here.
      // Lane admission off: this test counts limit decisions only (no lane queue refusals mixed in).
      router: {
        auth: { mode: 'required', redisUrl: redis.url, leaseTtlMs: LEASE_TTL_MS, onStoreError: 'closed', commandTimeoutMs: 5_000 },
        fallback: { breaker: { nodes: false } },
        admission: { enabled: false },
      },
      logLevel: 'info',
    });
    for (let i = 0; i < 2; i++) {
      routers.push(
        await spawnService({
          name: `router-${i + 2}`,
          entry: 'cli/main.ts',
          args: ['router', '--config', stack.configFile],
          env: { LOG_LEVEL: 'info', ICP_ROUTER_TOKEN: stack.credentials.routerToken },
          onLine: (l) => extraLogs.push(l),
        }),
      );
    }
    routerUrls = [stack.routerUrl, ...routers.map((r) => r.url)];
    await waitFor(async () => {
      const all = await Promise.all(
        routerUrls.map(async (u) => ((await (await fetch(`${u}/v1/models`)).json()) as { data: { id: string }[] }).data.length),
      );
      return all.every((n) => n >= 2);
    }, 20_000);
  });

  after(async () => {
    delete process.env.ICP_ADMIN_TOKEN;
    await Promise.all(routers.map((r) => r.stop(5_000)));
    await stack?.stop();
    await redis?.stop();
  });

  it("refuses requests without a valid key, in OpenAI's shape", async () => {
    const client = new OpenAI({ baseURL: `${stack.routerUrl}/v1`, apiKey: 'sk-icp-000000000000-' + 'x'.repeat(43), maxRetries: 0 });
    await assert.rejects(
      client.chat.completions.create({ model: DEFAULT_MODEL, messages: [{ role: 'user', content: 'x' }] }),
      (e: unknown) => e instanceof OpenAI.AuthenticationError,
    );
    const none = await chat(stack.routerUrl, undefined);
    assert.equal(none.statusCode, 401);
    assert.equal(((await none.body.json()) as { error: { type: string } }).error.type, 'authentication_error');
  });

  it("admits exactly 100 of 1000 concurrent requests for a 100 RPM key across three routers (plus the bucket's refill)", async () => {
    const { key } = await newKey({ rpm: 100 });
    await seesKeys(1);
    const t0 = Date.now();
    const results = await Promise.all(
      Array.from({ length: 1000 }, async (_, i) => {
        const res = await chat(routerUrls[i % 3]!, key);
        await res.body.dump();
        return res;
      }),
    );
    const elapsedS = (Date.now() - t0) / 1_000;
    const limited = results.filter((r) => r.statusCode === 429);
    // Admitted by the limits = not refused by them. On this loaded machine an admitted request can
    // still fail upstream (a node status going stale: 503), which is not a limit decision.
    const ok = results.filter((r) => r.statusCode !== 429);
    const statuses = [...new Set(results.map((r) => r.statusCode))].sort();
    assert.ok(
      statuses.every((c) => [200, 429, 502, 503, 504].includes(c)),
      `statuses ${statuses.join(',')}`,
    );
    assert.ok(results.filter((r) => r.statusCode === 200).length >= 95, 'nearly all admitted requests were served');
    // A token bucket refills 100/60 per second while the 1000 requests run: the burst is exactly
    // 100 and nothing beyond the refill is admitted (atomicity across replicas).
    const refill = Math.floor(elapsedS * (100 / 60));
    assert.ok(
      ok.length >= 100 && ok.length <= 100 + refill,
      `admitted ${ok.length} in ${elapsedS.toFixed(2)} s (burst 100 + refill ${refill})`,
    );

    const h = limited[0]!.headers;
    assert.equal(h['x-ratelimit-limit-requests'], '100');
    assert.equal(h['x-ratelimit-remaining-requests'], '0');
    assert.match(String(h['x-ratelimit-reset-requests']), /^\d+(\.\d+)?(ms|s)$/);
    const retryAfter = Number(h['retry-after']);
    assert.ok(retryAfter >= 1 && retryAfter <= 1, `Retry-After ${retryAfter} (one request refills in 0.6 s)`);
    assert.equal(results.find((r) => r.statusCode === 200)!.headers['x-ratelimit-limit-requests'], '100', 'headers on success too');
  });

  it('the openai SDK sees RateLimitError with the headers', async () => {
    const { key } = await newKey({ rpm: 1 });
    await seesKeys(2);
    const client = new OpenAI({ baseURL: `${stack.routerUrl}/v1`, apiKey: key, maxRetries: 0 });
    await client.chat.completions.create({ model: DEFAULT_MODEL, messages: [{ role: 'user', content: 'x' }], max_tokens: 1 });
    await assert.rejects(
      client.chat.completions.create({ model: DEFAULT_MODEL, messages: [{ role: 'user', content: 'x' }], max_tokens: 1 }),
      (e: unknown) =>
        e instanceof OpenAI.RateLimitError &&
        e.code === 'rate_limit_exceeded' &&
        e.headers?.get('x-ratelimit-limit-requests') === '1' &&
        Number(e.headers?.get('retry-after')) > 0,
    );
  });

  it("holds a 20-concurrent limit under 200 parallel streams, and frees a dead router's leases by expiry", async () => {
    const { key } = await newKey({ maxConcurrent: 20 });
    await seesKeys(3);
    // Long streams (16+ tokens x 100 ms): all 200 arrive while the admitted ones still run.
    const started = await Promise.all(
      Array.from({ length: 200 }, async (_, i) => {
        const res = await chat(routerUrls[i % 3]!, key, { stream: true, max_tokens: 200, model: SLOW_MODEL });
        return { res, router: i % 3 };
      }),
    );
    const admitted = started.filter((s) => s.res.statusCode === 200);
    assert.equal(admitted.length, 20);
    assert.equal(started.filter((s) => s.res.statusCode === 429).length, 180);
    for (const s of started.filter((x) => x.res.statusCode === 429)) await s.res.body.dump();
    // Kill router 3 (SIGKILL: it never settles) while it holds leases.
    const onDead = admitted.filter((s) => s.router === 2).length;
    assert.ok(onDead > 0);
    routers[1]!.kill('SIGKILL');
    routerUrls = routerUrls.slice(0, 2);
    const probe = async (n: number) => {
      const res = await Promise.all(
        Array.from({ length: n }, () => chat(stack.routerUrl, key, { stream: true, max_tokens: 1, model: SLOW_MODEL })),
      );
      for (const r of res) await r.body.dump();
      return res.filter((r) => r.statusCode === 200).length;
    };
    assert.equal(await probe(5), 0, 'all 20 slots still held right after the kill');
    // The survivors finish and release their leases at once; the dead router's stay until expiry.
    await Promise.all(admitted.filter((s) => s.router !== 2).map((s) => s.res.body.dump()));
    await Promise.all(admitted.filter((s) => s.router === 2).map((s) => s.res.body.dump().catch(() => undefined)));
    const t0 = Date.now();
    assert.equal(await probe(20), 20 - onDead, 'only the released slots are free before expiry');
    // A lower bound only (a lease never expires early): past the TTL + 300 ms, whatever the load.
    await new Promise((r) => setTimeout(r, Math.max(0, LEASE_TTL_MS - (Date.now() - t0)) + 300));
    assert.equal(await probe(20), 20, "the dead router's leases expired");
  });

  it("a tenant's maxLane caps the lane, and can grant critical", async () => {
    const low = await newKey({ maxLane: 'sheddable' });
    const high = await newKey({ maxLane: 'critical' });
    await seesKeys(5);
    const laneOf = async (key: string) => {
      const res = await request(`${stack.routerUrl}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${key}`, 'x-priority-lane': 'critical' },
        body: JSON.stringify({ model: DEFAULT_MODEL, messages: [{ role: 'user', content: 'hi' }], max_tokens: 1 }),
      });
      await res.body.dump();
      return res.headers['x-priority-lane'];
    };
    assert.equal(await laneOf(low.key), 'sheddable');
    assert.equal(await laneOf(high.key), 'critical', 'the tenant policy, not the config default (standard), is the cap');
  });

  it('revocation reaches every router within 1 s', async () => {
    const { key, keyId } = await newKey({});
    await seesKeys(6);
    for (const u of routerUrls) assert.equal((await chat(u, key)).statusCode, 200);
    const t0 = Date.now();
    await admin('keys', 'revoke', keyId);
    await waitFor(
      async () => {
        const codes = await Promise.all(
          routerUrls.map(async (u) => {
            const r = await chat(u, key);
            await r.body.dump();
            return r.statusCode;
          }),
        );
        return codes.every((c) => c === 401);
      },
      1_000,
      20,
    );
    assert.ok(Date.now() - t0 <= 1_000);
  });

  it('no issued key and no admin token appears in any log', () => {
    const all = [...stack.logs, ...extraLogs].join('\n');
    assert.ok(all.length > 0);
    for (const k of issued) assert.equal(all.includes(k), false, 'an API key leaked into the logs');
    // The secret part alone (it may itself contain '-': base64url).
    for (const k of issued)
      assert.equal(all.includes(/^sk-icp-[0-9a-f]{12}-(.+)$/.exec(k)![1]!), false, 'a key secret leaked into the logs');
    assert.equal(all.includes(ADMIN_TOKEN), false, 'the admin token leaked into the logs');
  });
});
