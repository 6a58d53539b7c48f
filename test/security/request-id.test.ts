// Issue 17: a client's `x-request-id` (up to the 16 KiB header limit, any characters) became the
// log id, the usage-record id and the header sent to engines. Now it is kept only when short and
// of safe characters; anything else gets a fresh id, and the original (truncated, escaped) is noted
// in the request's log lines as `clientRequestId`.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request as httpRequest, type Server } from 'node:http';
import { connect } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { createHttpServer, safeRequestId } from '../../common/http.ts';
import { spawnService, type ServiceProcess } from '../../cli/spawn-service.ts';
import { startStack, waitFor, listModels, DEFAULT_MODEL, type Stack } from '../helpers/stack.ts';

const FRESH = /^req_[0-9a-f]{32}$/;
const LONG = 'a'.repeat(15 * 1024); // under the 16 KiB header limit, so it reaches the app
const GOOD = 'Client-42.retry:7_x';

describe('safeRequestId', () => {
  it('keeps a short id of safe characters, replaces anything else and notes it truncated and escaped', () => {
    assert.deepEqual(safeRequestId(GOOD), { id: GOOD });
    assert.deepEqual(safeRequestId('x'.repeat(128)), { id: 'x'.repeat(128) });
    for (const bad of [LONG, 'x'.repeat(129), 'a b', 'evil\r\nx-admin: 1', '<script>', 'id\u0000', 'ïd', 'a,b', '']) {
      const r = safeRequestId(bad);
      assert.match(r.id, FRESH, JSON.stringify(bad.slice(0, 20)));
      if (bad === '') continue;
      assert.ok(r.clientRequestId !== undefined && r.clientRequestId.length <= 100, 'noted, bounded');
      assert.match(r.clientRequestId, /^[\x20-\x7e]*$/, 'escaped: printable ASCII only');
    }
    assert.equal(safeRequestId('evil\r\nx').clientRequestId, 'evil\\x0d\\x0ax');
    assert.deepEqual(safeRequestId(undefined).clientRequestId, undefined);
    assert.match(safeRequestId(['a', 'b']).id, FRESH);
  });
});

describe('request ids on a server made by createHttpServer', () => {
  let app: FastifyInstance;
  let url: string;
  const lines: Record<string, unknown>[] = [];
  before(async () => {
    const logger = pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l) as Record<string, unknown>) });
    app = createHttpServer({ logger });
    app.get('/id', async (req) => {
      req.log.info('request');
      return { id: req.id };
    });
    url = await app.listen({ host: '127.0.0.1', port: 0 });
  });
  after(async () => {
    await app?.close();
  });

  const idFor = async (requestId: string) => {
    const res = await fetch(`${url}/id`, { headers: { 'x-request-id': requestId } });
    assert.equal(res.status, 200);
    const { id } = (await res.json()) as { id: string };
    return { id, line: lines.find((l) => l.reqId === id && l.msg === 'request')! };
  };

  it('a good id is kept as the log id', async () => {
    const { id, line } = await idFor(GOOD);
    assert.equal(id, GOOD);
    assert.equal(line.clientRequestId, undefined);
  });

  it('a 15 KiB id is replaced; the log line notes a bounded prefix', async () => {
    const { id, line } = await idFor(LONG);
    assert.match(id, FRESH);
    assert.equal(typeof line.clientRequestId, 'string');
    assert.ok((line.clientRequestId as string).startsWith('aaaa') && (line.clientRequestId as string).length <= 100);
    assert.ok(!JSON.stringify(lines).includes('a'.repeat(200)), 'the long id is in no log line');
  });

  it('odd characters are replaced; raw CR or obs-text on the wire never reaches the app as an id', async () => {
    assert.match((await idFor('<b>"x"</b>')).id, FRESH);
    // Bytes fetch refuses to send, on a raw socket: a bare CR (node's parser refuses: 400) and latin-1 bytes.
    for (const value of [Buffer.from('abc\rdef', 'latin1'), Buffer.from('caf\xe9\xff', 'latin1')]) {
      const answer = await new Promise<string>((resolve, reject) => {
        const s = connect({ host: '127.0.0.1', port: Number(new URL(url).port) }, () => {
          s.write(
            Buffer.concat([
              Buffer.from('GET /id HTTP/1.1\r\nHost: x\r\nConnection: close\r\nx-request-id: '),
              value,
              Buffer.from('\r\n\r\n'),
            ]),
          );
        });
        let out = '';
        s.setEncoding('latin1');
        s.on('data', (d: string) => (out += d));
        s.on('end', () => resolve(out));
        s.on('error', reject);
      });
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1]);
      assert.ok(status === 200 || status === 400, `status ${status}`);
      if (status === 200) assert.match(JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)).id as string, FRESH);
    }
  });
});

describe('request ids through router, agent and engine', () => {
  const TOKEN = 'request-id-test-admin-token';
  let sim: ServiceProcess;
  let proxy: Server;
  let stack: Stack;
  /** x-request-id of every generation request the engine received. */
  const engineIds: string[] = [];

  before(async () => {
    sim = await spawnService({ name: 'sim', entry: 'test/sim/vllm/main.ts', args: ['--port', '0', '--model', DEFAULT_MODEL] });
    // A recording proxy in front of the engine: what the agent sends is what a real engine would log.
    const target = new URL(sim.url);
    proxy = createServer((req, res) => {
      if (req.method === 'POST') engineIds.push(String(req.headers['x-request-id']));
      const up = httpRequest({ host: target.hostname, port: target.port, path: req.url, method: req.method, headers: req.headers }, (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
      });
      up.on('error', () => res.destroy());
      req.pipe(up);
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    const proxyUrl = `http://127.0.0.1:${(proxy.address() as { port: number }).port}`;
    // The router ships usage records to the control plane's store with the admin token (both inherit it).
    process.env.ICP_ADMIN_TOKEN = TOKEN;
    stack = await startStack({
      sims: [{ id: 'unused' }],
      agents: [{ id: 'gpu-a', sim: 'unused', engine: { url: proxyUrl } }],
      logLevel: 'info',
    });
    await waitFor(async () => (await listModels(stack.routerUrl)).includes(DEFAULT_MODEL), 20_000);
  });
  after(async () => {
    await stack?.stop();
    await sim?.stop();
    proxy?.close();
    delete process.env.ICP_ADMIN_TOKEN;
  });

  const chat = async (requestId: string) => {
    const res = await fetch(`${stack.routerUrl}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-request-id': requestId },
      body: JSON.stringify({ model: DEFAULT_MODEL, messages: [{ role: 'user', content: 'hi' }], max_tokens: 4, stream: true }),
    });
    assert.equal(res.status, 200);
    await res.text();
    return res.headers.get('x-request-id')!;
  };
  const usageIds = async () => {
    const res = await fetch(`${stack.controlPlane!.url}/v1/admin/usage?limit=100`, { headers: { authorization: `Bearer ${TOKEN}` } });
    return ((await res.json()) as { data: { id: string }[] }).data.map((r) => r.id);
  };
  const requestLine = (id: string) =>
    stack.logs
      .map((l) =>
        l.includes('"msg":"request"') && l.includes(id) ? (JSON.parse(l.slice(l.indexOf('{'))) as Record<string, unknown>) : undefined,
      )
      .find((l) => l?.requestId === id);

  it('a good id is kept everywhere; a 15 KiB id becomes one fresh id in the log, the usage record and the engine header', async () => {
    assert.equal(await chat(GOOD), GOOD);
    await waitFor(() => engineIds.includes(GOOD) && requestLine(GOOD), 10_000);
    await waitFor(async () => (await usageIds()).includes(GOOD), 10_000);

    const fresh = await chat(LONG);
    assert.match(fresh, FRESH);
    await waitFor(() => engineIds.includes(fresh), 10_000);
    const line = (await waitFor(() => requestLine(fresh), 10_000))!;
    assert.ok(String(line.clientRequestId).startsWith('aaaa'));
    await waitFor(async () => (await usageIds()).includes(fresh), 10_000);
    assert.ok(
      engineIds.every((id) => id.length <= 128 && /^[A-Za-z0-9._:-]+$/.test(id)),
      'the engine only ever got safe ids',
    );
    assert.ok(!stack.logs.some((l) => l.includes('a'.repeat(200))), 'the long id is in no log line of any process');
  });
});
