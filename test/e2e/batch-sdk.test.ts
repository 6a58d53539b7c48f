// Batch jobs through the official openai SDK, unchanged: files.create with a JSONL of requests,
// batches.create/retrieve/list/cancel, files.content of the output and error files in OpenAI's
// line shapes; tenants never see each other's files or jobs; a 4xx item goes to the error file
// without retries, a 5xx item is retried and dead-lettered, an operator inspects and requeues it
// (over HTTP and with the admin CLI); the completion webhook is signed (verified with the SDK's
// own webhooks.unwrap) and retried after a failed delivery.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI, { toFile } from 'openai';
import { startStack, waitFor, setSimFaults, DEFAULT_MODEL, type Stack } from '../helpers/stack.ts';
import { runAdmin } from '../../cli/admin.ts';

const ADMIN_TOKEN = `admin-${Math.random().toString(36).slice(2)}-secret`;
const WEBHOOK_SECRET = `whsec_${Buffer.from('batch-webhook-test-secret-0123456789').toString('base64')}`;
const FAULT = 'FAIL-WITH-500';

interface Line {
  id: string;
  custom_id: string;
  response: { status_code: number; request_id: string; body: Record<string, unknown> } | null;
  error: { code: string; message: string } | null;
}
const parseLines = (text: string) =>
  text
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Line);

function jsonl(n: number, opts: { badModel?: Set<number>; fault?: Set<number> } = {}): string {
  return (
    Array.from({ length: n }, (_, i) =>
      JSON.stringify({
        custom_id: `req-${i}`,
        method: 'POST',
        url: '/v1/chat/completions',
        body: {
          model: opts.badModel?.has(i) ? 'no-such-model' : DEFAULT_MODEL,
          messages: [{ role: 'user', content: opts.fault?.has(i) ? `${FAULT} item ${i}` : `item ${i}` }],
          max_tokens: 4,
        },
      }),
    ).join('\n') + '\n'
  );
}

async function untilStatus(c: OpenAI, id: string, status: string, timeoutMs: number): Promise<OpenAI.Batch> {
  let last: OpenAI.Batch | undefined;
  await waitFor(async () => (last = await c.batches.retrieve(id)).status === status, timeoutMs, 100);
  return last!;
}

describe('batch jobs with the official openai SDK', () => {
  let stack: Stack;
  let hook: Server;
  const batchDir = mkdtempSync(join(tmpdir(), 'icp-batch-'));
  const received: { headers: IncomingHttpHeaders; body: string; status: number }[] = [];
  let keyA = '';
  let keyB = '';
  const client = (key: string) => new OpenAI({ baseURL: `${stack.routerUrl}/v1`, apiKey: key, maxRetries: 0 });
  const admin = async (method: string, path: string, body?: object, base = stack.controlPlane!.url) => {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    assert.ok(res.ok, `${method} ${path}: ${res.status} ${await res.clone().text()}`);
    return (await res.json()) as Record<string, unknown>;
  };

  before(async () => {
    // The webhook receiver fails its first delivery: the router must retry.
    hook = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        const status = received.length === 0 ? 500 : 200;
        received.push({ headers: req.headers, body, status });
        res.writeHead(status).end();
      });
    });
    await new Promise<void>((r) => hook.listen(0, '127.0.0.1', r));
    process.env.ICP_ADMIN_TOKEN = ADMIN_TOKEN;
    process.env.ICP_BATCH_WEBHOOK_SECRET = WEBHOOK_SECRET;
    stack = await startStack({
      sims: [{ id: 'a', args: ['--max-num-seqs', '64', '--decode-step-ms', '2', '--decode-step-ms-per-seq', '0'] }],
      agents: [{ id: 'gpu-a', sim: 'a' }],
      router: {
        auth: { mode: 'required' },
        fallback: { breaker: { nodes: false } },
        batch: {
          dataDir: batchDir,
          pollMs: 30,
          retryBaseMs: 20,
          retryMaxMs: 100,
          maxAttempts: 3,
          yieldMs: 20,
          // A loopback receiver: internal targets are refused unless allowed.
          webhook: { url: `http://127.0.0.1:${(hook.address() as AddressInfo).port}/hook`, baseDelayMs: 100, allowPrivateTargets: true },
        },
      },
    });
    const tenants = await Promise.all(['a', 'b'].map((n) => admin('POST', '/v1/admin/tenants', { name: `tenant-${n}`, policy: {} })));
    keyA = (await admin('POST', `/v1/admin/tenants/${tenants[0]!.id as string}/keys`, { name: 'k' })).key as string;
    keyB = (await admin('POST', `/v1/admin/tenants/${tenants[1]!.id as string}/keys`, { name: 'k' })).key as string;
    await waitFor(
      async () => (((await (await fetch(`${stack.routerUrl}/readyz`)).json()) as { tenancy?: { keys: number } }).tenancy?.keys ?? 0) >= 2,
      10_000,
    );
    await waitFor(
      async () => ((await (await fetch(`${stack.routerUrl}/v1/models`)).json()) as { data: unknown[] }).data.length >= 1,
      20_000,
    );
  });

  after(async () => {
    delete process.env.ICP_ADMIN_TOKEN;
    delete process.env.ICP_BATCH_WEBHOOK_SECRET;
    await stack?.stop();
    await new Promise((r) => hook?.close(r));
    rmSync(batchDir, { recursive: true, force: true });
  });

  it('runs a batch: output and error files in OpenAI shape, dead letters requeued, webhook signed and retried, tenants isolated', async () => {
    await setSimFaults(stack.sims.get('a')!.url, { http5xxWhenBodyContains: FAULT });
    const a = client(keyA);
    const b = client(keyB);
    const file = await a.files.create({
      file: await toFile(Buffer.from(jsonl(20, { badModel: new Set([3]), fault: new Set([7]) })), 'requests.jsonl'),
      purpose: 'batch',
    });
    assert.equal(file.object, 'file');
    assert.equal(file.purpose, 'batch');
    assert.equal(file.filename, 'requests.jsonl');
    assert.ok(file.bytes > 0);
    assert.deepEqual((await a.files.retrieve(file.id)).id, file.id);

    const created = await a.batches.create({
      input_file_id: file.id,
      endpoint: '/v1/chat/completions',
      completion_window: '24h',
      metadata: { job: 'nightly' },
      output_expires_after: { anchor: 'created_at', seconds: 7_200 },
    });
    assert.equal(created.object, 'batch');
    assert.equal(created.status, 'in_progress');
    assert.deepEqual(created.metadata, { job: 'nightly' });
    assert.equal(created.request_counts?.total, 20);

    // Tenant B sees none of it.
    await assert.rejects(b.batches.retrieve(created.id), (e: unknown) => e instanceof OpenAI.NotFoundError);
    await assert.rejects(b.files.content(file.id), (e: unknown) => e instanceof OpenAI.NotFoundError);
    await assert.rejects(
      b.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' }),
      (e: unknown) => e instanceof OpenAI.BadRequestError,
    );
    assert.equal((await b.batches.list()).data.length, 0);
    assert.equal((await b.files.list()).data.length, 0);

    const done = await untilStatus(a, created.id, 'completed', 30_000);
    assert.deepEqual(done.request_counts, { total: 20, completed: 18, failed: 2 });
    assert.ok(done.output_file_id && done.error_file_id && done.completed_at);
    assert.ok((done.usage?.output_tokens ?? 0) > 0);

    const out = parseLines(await (await a.files.content(done.output_file_id)).text());
    const errs = parseLines(await (await a.files.content(done.error_file_id)).text());
    assert.equal(out.length, 18);
    for (const l of out) {
      assert.match(l.id, /^batch_req_/);
      assert.equal(l.error, null);
      assert.equal(l.response!.status_code, 200);
      assert.ok(l.response!.request_id);
      assert.equal(l.response!.body.object, 'chat.completion');
    }
    assert.deepEqual(errs.map((l) => l.custom_id).sort(), ['req-3', 'req-7']);
    const bad = errs.find((l) => l.custom_id === 'req-3')!;
    assert.equal(bad.response!.status_code, 404);
    assert.equal((bad.response!.body.error as { code: string }).code, 'model_not_found');
    assert.equal(errs.find((l) => l.custom_id === 'req-7')!.response!.status_code, 502);
    const outFile = await a.files.retrieve(done.output_file_id);
    assert.equal(outFile.purpose, 'batch_output');
    assert.equal(outFile.expires_at! - outFile.created_at, 7_200, 'output_expires_after');
    // Input files expire too: 30 days by default (as OpenAI's), or as expires_after says (the SDK's form fields).
    assert.equal(file.expires_at! - file.created_at, 30 * 86_400);
    const short = await a.files.create({
      file: await toFile(Buffer.from(jsonl(1)), 'short.jsonl'),
      purpose: 'batch',
      expires_after: { anchor: 'created_at', seconds: 3_600 },
    });
    assert.equal(short.expires_at! - short.created_at, 3_600);
    await a.files.delete(short.id);

    // The operator: one dead letter (the 5xx item after 3 attempts), not the 4xx one.
    const dead = await admin('GET', `/v1/admin/batches/${created.id}/dead_letters`, undefined, stack.routerUrl);
    const deadItems = dead.data as { custom_id: string; attempts: number; status_code: number }[];
    assert.deepEqual(
      deadItems.map((d) => [d.custom_id, d.attempts]),
      [['req-7', 3]],
    );
    const noToken = await fetch(`${stack.routerUrl}/v1/admin/batches/${created.id}/dead_letters`, {
      headers: { authorization: `Bearer ${keyA}` },
    });
    assert.equal(noToken.status, 401);

    // The first webhook delivery failed; the retry carries a signature the SDK verifies.
    await waitFor(() => received.some((r) => r.status === 200), 10_000);
    assert.equal(received[0]!.status, 500);
    const ok = received.find((r) => r.status === 200)!;
    const event = (await a.webhooks.unwrap(ok.body, ok.headers as Record<string, string>, WEBHOOK_SECRET)) as unknown as {
      type: string;
      data: { id: string };
    };
    assert.equal(event.type, 'batch.completed');
    assert.equal(event.data.id, created.id);
    await assert.rejects(
      a.webhooks.unwrap(ok.body, ok.headers as Record<string, string>, `whsec_${Buffer.from('wrong').toString('base64')}`),
    );

    // Fix the fault, requeue: the job reopens and the item lands in the output file once.
    await setSimFaults(stack.sims.get('a')!.url, { http5xxWhenBodyContains: null });
    // ... through the admin CLI this time (npm run admin -- batches ...).
    const printed: string[] = [];
    assert.equal(await runAdmin(['batches', 'dead-letters', created.id, '--router', stack.routerUrl], (s) => printed.push(s)), 0);
    assert.match(printed.join('\n'), /"custom_id": "req-7"/);
    printed.length = 0;
    assert.equal(
      await runAdmin(['batches', 'requeue', created.id, '--router', stack.routerUrl, '--custom-ids', 'req-7'], (s) => printed.push(s)),
      0,
    );
    assert.equal((JSON.parse(printed.join('\n')) as { requeued: number }).requeued, 1);
    const again = await untilStatus(a, created.id, 'completed', 30_000);
    assert.deepEqual(again.request_counts, { total: 20, completed: 19, failed: 1 });
    const out2 = parseLines(await (await a.files.content(again.output_file_id!)).text());
    assert.equal(out2.filter((l) => l.custom_id === 'req-7').length, 1);
    assert.equal(out2.length, 19);
  });

  it('a tenant out of budget: items fail with insufficient_quota at once, never retried or dead-lettered', async () => {
    const t = await admin('POST', '/v1/admin/tenants', { name: 'tenant-poor', policy: { monthlyTokenBudget: 30 } });
    const key = (await admin('POST', `/v1/admin/tenants/${t.id as string}/keys`, { name: 'k' })).key as string;
    await waitFor(
      async () => (((await (await fetch(`${stack.routerUrl}/readyz`)).json()) as { tenancy?: { keys: number } }).tenancy?.keys ?? 0) >= 3,
      10_000,
    );
    const c = client(key);
    const file = await c.files.create({ file: await toFile(Buffer.from(jsonl(30)), 'poor.jsonl'), purpose: 'batch' });
    const batch = await c.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' });
    const done = await untilStatus(c, batch.id, 'completed', 30_000);
    const errs = parseLines(await (await c.files.content(done.error_file_id!)).text());
    const out = done.output_file_id ? parseLines(await (await c.files.content(done.output_file_id)).text()) : [];
    assert.ok(
      errs.length > 0 &&
        errs.every((l) => l.response?.status_code === 429 && (l.response.body.error as { code: string }).code === 'insufficient_quota'),
    );
    assert.equal(out.length + errs.length, 30);
    assert.equal(
      ((await admin('GET', `/v1/admin/batches/${batch.id}/dead_letters`, undefined, stack.routerUrl)).data as unknown[]).length,
      0,
    );
  });

  it('lists with pagination, cancels, and refuses bad input in OpenAI shape', async () => {
    const a = client(keyA);
    const file = await a.files.create({ file: await toFile(Buffer.from(jsonl(400)), 'big.jsonl'), purpose: 'batch' });
    const batch = await a.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' });
    const cancelled = await a.batches.cancel(batch.id);
    assert.ok(cancelled.status === 'cancelling' || cancelled.status === 'cancelled');
    const end = await untilStatus(a, batch.id, 'cancelled', 15_000);
    assert.ok(end.cancelled_at);
    assert.ok(end.request_counts!.completed < 400, 'cancel stopped the job');

    // Two jobs now: newest first, one per page, `after` walks on.
    const first = await a.batches.list({ limit: 1 });
    assert.equal(first.data.length, 1);
    assert.equal(first.data[0]!.id, batch.id);
    assert.equal(first.has_more, true);
    const ids: string[] = [];
    for await (const x of a.batches.list({ limit: 1 })) ids.push(x.id);
    assert.equal(ids.length, 2);
    assert.equal(new Set(ids).size, 2);

    // A file with a broken line: the job fails validation with the line number.
    const broken = await a.files.create({
      file: await toFile(
        Buffer.from('{"custom_id":"x","method":"POST","url":"/v1/chat/completions","body":{"model":"m"}}\nnot json\n'),
        'bad.jsonl',
      ),
      purpose: 'batch',
    });
    const failed = await a.batches.create({ input_file_id: broken.id, endpoint: '/v1/chat/completions', completion_window: '24h' });
    assert.equal(failed.status, 'failed');
    assert.equal(failed.errors?.data?.[0]?.line, 2);
    await assert.rejects(
      a.batches.create({ input_file_id: broken.id, endpoint: '/v1/embeddings', completion_window: '24h' }),
      (e: unknown) => e instanceof OpenAI.BadRequestError,
    );
    await assert.rejects(
      a.batches.create({ input_file_id: broken.id, endpoint: '/v1/chat/completions', completion_window: '1h' as '24h' }),
      (e: unknown) => e instanceof OpenAI.BadRequestError,
    );
    await assert.rejects(
      a.files.create({ file: await toFile(Buffer.from('x'), 'x.txt'), purpose: 'assistants' }),
      (e: unknown) => e instanceof OpenAI.BadRequestError,
    );
    const del = await a.files.delete(broken.id);
    assert.equal(del.deleted, true);
    await assert.rejects(a.files.retrieve(broken.id), (e: unknown) => e instanceof OpenAI.NotFoundError);
    await assert.rejects(client('sk-wrong').batches.list(), (e: unknown) => e instanceof OpenAI.AuthenticationError);
  });
});
