// Issue 17: usage records copied the raw `model` of a request (a 3.9 MB name was stored whole),
// a failed usage send was retried for ever as one buffer, and after a burst of such requests other
// tenants' usage stopped being recorded. Real control plane, router, agent and simulated engine,
// auth required, usage records shipped to the control plane over HTTP (the embedded default);
// and the router's usage sink against a loopback receiver: byte-bounded chunks, a refused chunk
// set aside, transient failures retried, the buffer bounded.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { adminApi, startStack, waitFor, DEFAULT_MODEL, type Stack } from '../helpers/stack.ts';
import { createUsageSink, type UsageSink } from '../../router/accounting/usage-sink.ts';
import { createRouterMetrics } from '../../router/metrics.ts';
import { silentLogger } from '../../common/logger.ts';
import { boundUsageRecord, matches, usageQuerySchema, type UsageRecord } from '../../common/store/usage.ts';

const ADMIN_TOKEN = `admin-${Math.random().toString(36).slice(2)}-secret`;
/** The router's default body limit is 4 MiB: a model name just under it. */
const HUGE = 4 * 1024 * 1024 - 4_096;

type Rec = { id: string; tenantId: string; requestedModel: string; model: string; status: number; truncated?: string[] };

describe('usage records: bounded fields, and one tenant cannot stop another tenant being recorded', () => {
  let stack: Stack;
  const admin = adminApi(() => stack.controlPlane!.url, ADMIN_TOKEN);
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
    // 32 concurrent requests of ~4 MiB each: their records land in one flush, far more than one
    // control-plane POST may carry (before the fix: a 413 retried for ever, and B's records behind it).
    const statuses = await Promise.all(
      Array.from({ length: 32 }, async () => {
        const res = await chat(a.key, huge);
        await res.arrayBuffer();
        return res.status;
      }),
    );
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

  it('the control plane refuses a posted record over a cap with a 400 naming the field', async () => {
    const rec = { ...sample('x'), model: 'm'.repeat(257) };
    // Routers post usage records (their own credential; the admin token may not).
    const res = await fetch(`${stack.controlPlane!.url}/v1/admin/usage/records`, {
      method: 'POST',
      headers: { authorization: `Bearer ${stack.credentials.routerToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ records: [sample('ok'), rec] }),
    });
    assert.equal(res.status, 400);
    const body = (await res.json()) as { error: { param: string; type: string } };
    assert.equal(body.error.param, 'records.1.model');
    assert.equal(body.error.type, 'invalid_request_error');
  });
});

function sample(id: string, wide = false): UsageRecord {
  return {
    id,
    ts: Date.now(),
    tenantId: 't',
    keyId: 'k',
    requestedModel: 'm',
    model: 'm',
    backend: 'node:a',
    lane: 'standard',
    // 32 tags of 256 characters: about 10 KB, the largest record the caps allow.
    tags: wide ? Object.fromEntries(Array.from({ length: 32 }, (_, i) => [`tag${i}`, 'v'.repeat(256)])) : {},
    promptTokens: 1,
    completionTokens: 1,
    costUsd: 0,
    ttftMs: null,
    latencyMs: 1,
    outcome: 'ok',
    status: 200,
  };
}

describe('usage record bounds (no processes)', () => {
  it('caps and cleans every client-derived string, flags what changed, keeps clean records as they are', () => {
    const clean = sample('req-1', true);
    assert.deepEqual(boundUsageRecord(clean), clean);
    const dirty = boundUsageRecord({
      ...sample('i'.repeat(16 * 1024)),
      requestedModel: `evil\u0000\n\u202e${'x'.repeat(300)}`,
      tags: Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`t${i}`, 'v'])),
    });
    assert.equal(dirty.id.length, 128);
    assert.equal(dirty.requestedModel.length, 256);
    assert.ok(dirty.requestedModel.startsWith('evil\ufffd\ufffd\ufffd'), 'control and format characters replaced');
    assert.equal(Object.keys(dirty.tags).length, 32);
    assert.deepEqual(dirty.truncated, ['id', 'requestedModel', 'tags']);
    assert.ok(JSON.stringify(dirty).length < 12_000);
  });

  it('a tag query never matches a prototype property ("constructor", "__proto__")', () => {
    const r = sample('q');
    for (const tag of ['constructor', '__proto__', 'toString=x', 'hasOwnProperty'])
      assert.equal(matches(r, usageQuerySchema.parse({ tag })), false, tag);
    assert.equal(matches({ ...r, tags: { team: 'a' } }, usageQuerySchema.parse({ tag: 'team=a' })), true);
  });
});

describe('usage sink: chunks, refusals, retries and a bounded buffer', () => {
  type Post = { bytes: number; ids: string[] };
  const posts: Post[] = [];
  /** Statuses to answer, in order; 204 once they run out. */
  let answers: number[] = [];
  let server: Server;
  let url = '';
  const sinks: UsageSink[] = [];
  const record = sample;
  const sinkWith = (limits: object) => {
    const metrics = createRouterMetrics();
    const sink = createUsageSink(
      { controlPlaneUrl: url, credentials: { controlPlaneToken: 'sink-test-token' } },
      undefined,
      silentLogger,
      metrics,
      {
        flushMs: 20,
        baseBackoffMs: 20,
        ...limits,
      },
    );
    sinks.push(sink);
    const count = async (result: string) => (await metrics.usageRecords.get()).values.find((v) => v.labels.result === result)?.value ?? 0;
    return { sink, count };
  };

  before(async () => {
    server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        const status = answers.shift() ?? 204;
        posts.push({
          bytes: body.length,
          ids: status < 300 ? (JSON.parse(body.toString()) as { records: UsageRecord[] }).records.map((r) => r.id) : [],
        });
        if (status >= 400)
          res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { message: `no (${status})` } }));
        else res.writeHead(status).end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(async () => {
    for (const s of sinks) await s.close();
    await new Promise((r) => server.close(r));
  });

  it('sends at most 1 MiB per POST, oldest first, every record once', async () => {
    posts.length = 0;
    const { sink, count } = sinkWith({});
    for (let i = 0; i < 400; i++) sink.write(record(`w${i}`, true));
    await waitFor(async () => (await count('written')) === 400, 10_000);
    assert.ok(posts.length >= 4, `${posts.length} POSTs for ~4 MB`);
    assert.ok(
      posts.every((p) => p.bytes <= 1024 * 1024 + 64),
      `POST sizes ${posts.map((p) => p.bytes).join(',')}`,
    );
    assert.deepEqual(
      posts.flatMap((p) => p.ids),
      Array.from({ length: 400 }, (_, i) => `w${i}`),
    );
  });

  it('a refused chunk (4xx) is set aside and counted, not retried; a 5xx is retried; the rest get through', async () => {
    posts.length = 0;
    const { sink, count } = sinkWith({ chunkRecords: 10 });
    answers = [413];
    for (let i = 0; i < 10; i++) sink.write(record(`r${i}`));
    await waitFor(async () => (await count('refused')) === 10, 10_000);
    answers = [503, 500];
    for (let i = 0; i < 10; i++) sink.write(record(`ok${i}`));
    await waitFor(async () => (await count('written')) === 10, 10_000);
    assert.deepEqual(
      posts.map((p) => p.ids.length),
      [0, 0, 0, 10],
      'refused once, then two transient failures and the retry',
    );
    assert.deepEqual(
      posts[3]!.ids,
      Array.from({ length: 10 }, (_, i) => `ok${i}`),
    );
    assert.equal(await count('dropped'), 0);
  });

  it('transient failures are bounded: retries give up, and the buffer is bounded by count and bytes', async () => {
    posts.length = 0;
    const { sink, count } = sinkWith({ chunkRecords: 5, maxAttempts: 3, bufferRecords: 50, bufferBytes: 200 * 1024 });
    answers = Array.from({ length: 1_000 }, () => 503);
    for (let i = 0; i < 200; i++) sink.write(record(`d${i}`));
    assert.ok((await count('dropped')) >= 150, 'beyond 50 records the oldest are dropped');
    for (let i = 0; i < 100; i++) sink.write(record(`b${i}`, true));
    // ~10 KB each: 200 KiB hold about 20.
    assert.ok((await count('dropped')) >= 150 + 70, `dropped ${await count('dropped')}`);
    // Each chunk is tried maxAttempts times, then dropped: the buffer empties although nothing is accepted.
    await waitFor(async () => (await count('dropped')) === 300, 20_000);
    assert.equal(await count('written'), 0);
    answers = [];
  });
});
