// What a client sends is bounded on the router and the control plane (common/http-limits.ts):
// oversized headers (431), a client trickling its headers or its body (408 and the socket is
// closed, from requestTimeout/headersTimeout), JSON nested too deep (400 before parsing), an
// oversized body (413). Every refusal is in OpenAI's error shape. A streaming answer that lasts
// longer than the receive timeout is not cut: the limits bound the request, not the response.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import OpenAI from 'openai';
import { startStack, waitFor, listModels, DEFAULT_MODEL, type Stack } from '../helpers/stack.ts';
import { sleep } from '../../common/process.ts';

const LIMITS = { requestTimeoutMs: 1_500, headersTimeoutMs: 1_000, maxHeaderBytes: 8 * 1024, maxJsonDepth: 64 };

interface RawAnswer {
  status: number | undefined;
  body: string;
  /** ms from connect until the server closed the socket. */
  closedAfterMs: number;
}

/** Talks HTTP/1.1 by hand: `write` drives the socket; resolves when the server closes it. */
function raw(
  baseUrl: string,
  write: (send: (s: string | Buffer) => boolean, closed: () => boolean) => Promise<void>,
  giveUpMs = 30_000,
): Promise<RawAnswer> {
  const url = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const sock = connect(Number(url.port), url.hostname);
    const chunks: Buffer[] = [];
    let closed = false;
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`server did not close the socket within ${giveUpMs} ms`));
    }, giveUpMs);
    sock.on('data', (d) => chunks.push(d));
    sock.on('error', () => undefined); // EPIPE/ECONNRESET while still writing: expected
    sock.on('close', () => {
      closed = true;
      clearTimeout(timer);
      const text = Buffer.concat(chunks).toString('utf8');
      const m = /^HTTP\/1\.1 (\d{3})/.exec(text);
      resolve({
        status: m ? Number(m[1]) : undefined,
        body: text.slice(text.indexOf('\r\n\r\n') + 4),
        closedAfterMs: Date.now() - started,
      });
    });
    sock.on('connect', () => {
      write(
        (s) => !closed && sock.write(s),
        () => closed,
      ).catch(reject);
    });
  });
}

function assertOpenAIError(body: string, code?: string): void {
  const parsed = JSON.parse(body) as { error?: { message?: unknown; type?: unknown; code?: unknown } };
  assert.equal(typeof parsed.error?.message, 'string', body);
  assert.equal(typeof parsed.error?.type, 'string', body);
  if (code) assert.equal(parsed.error?.code, code, body);
}

const deepJson = (depth: number) => '{"model":"m","messages":' + '['.repeat(depth - 1) + ']'.repeat(depth - 1) + '}';

describe('request limits (router and control plane)', () => {
  let stack: Stack;
  // The control plane authenticates before it reads a body: the limits are a node's.
  const surfaces: { name: string; url: () => string; post: string; auth: () => Record<string, string> }[] = [
    { name: 'router', url: () => stack.routerUrl, post: '/v1/chat/completions', auth: () => ({}) },
    {
      name: 'control plane',
      url: () => stack.controlPlane!.url,
      post: '/v1/nodes/register',
      auth: () => ({ authorization: `Bearer ${stack.credentials.nodeToken('gpu-a')}` }),
    },
  ];

  before(async () => {
    // 150 ms per decode step: a natural answer (16-64 tokens) streams for longer than requestTimeoutMs.
    stack = await startStack({
      sims: [{ id: 'sim-a', args: ['--decode-step-ms', '150', '--decode-step-ms-per-seq', '0'] }],
      agents: [{ id: 'gpu-a', sim: 'sim-a' }],
      router: { http: LIMITS },
      controlPlane: { http: LIMITS },
    });
    await waitFor(async () => (await listModels(stack.routerUrl)).includes(DEFAULT_MODEL), 30_000);
  });

  after(async () => {
    await stack?.stop();
  });

  for (const s of surfaces) {
    it(`${s.name}: headers over maxHeaderBytes are refused with 431`, async () => {
      const a = await raw(s.url(), async (send) => {
        send(`GET /healthz HTTP/1.1\r\nhost: x\r\nx-big: ${'a'.repeat(LIMITS.maxHeaderBytes + 100)}\r\n\r\n`);
      });
      assert.equal(a.status, 431);
      assertOpenAIError(a.body, 'headers_too_large');
    });

    it(`${s.name}: a client trickling its headers gets 408 and the socket closed`, async () => {
      const a = await raw(s.url(), async (send, closed) => {
        send('GET /healthz HTTP/1.1\r\nhost: x\r\n');
        for (let i = 0; i < 300 && !closed(); i++) {
          send(`x-h${i}: 1\r\n`);
          await sleep(100);
        }
      });
      assert.equal(a.status, 408);
      assertOpenAIError(a.body, 'request_timeout');
      assert.ok(a.closedAfterMs < 15_000, `closed after ${a.closedAfterMs} ms`);
    });

    it(`${s.name}: a client trickling its body gets 408 and the socket closed`, async () => {
      const a = await raw(s.url(), async (send, closed) => {
        const auth = Object.entries(s.auth())
          .map(([k, v]) => `${k}: ${v}\r\n`)
          .join('');
        send(`POST ${s.post} HTTP/1.1\r\nhost: 127.0.0.1\r\n${auth}content-type: application/json\r\ncontent-length: 1000\r\n\r\n{`);
        for (let i = 0; i < 999 && !closed(); i++) {
          send(' ');
          await sleep(100);
        }
      });
      assert.equal(a.status, 408);
      assertOpenAIError(a.body, 'request_timeout');
      assert.ok(a.closedAfterMs < 15_000, `closed after ${a.closedAfterMs} ms`);
    });

    it(`${s.name}: JSON deeper than maxJsonDepth is a 400; at the limit it is parsed`, async () => {
      const post = (body: string) =>
        fetch(s.url() + s.post, { method: 'POST', headers: { 'content-type': 'application/json', ...s.auth() }, body });
      const deep = await post(deepJson(LIMITS.maxJsonDepth + 1));
      assert.equal(deep.status, 400);
      assertOpenAIError(await deep.text(), 'json_too_deep');
      // Brackets inside strings do not count.
      const inString = await post(JSON.stringify({ model: 'm', messages: [{ role: 'user', content: '['.repeat(1_000) + '\\"{{' }] }));
      assert.notEqual(JSON.parse(await inString.text()).error?.code, 'json_too_deep');
      const atLimit = await post(deepJson(LIMITS.maxJsonDepth));
      const body = await atLimit.text();
      assert.ok(atLimit.status >= 400 && atLimit.status < 500, body);
      assert.notEqual(JSON.parse(body).error?.code, 'json_too_deep', body);
      // A million levels: refused at once, the process unharmed.
      const huge = await post('['.repeat(1_000_000));
      assert.equal(huge.status, 400);
      await huge.text();
    });

    it(`${s.name}: a body over the size limit is refused with 413`, async () => {
      const res = await fetch(s.url() + s.post, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...s.auth() },
        body: JSON.stringify({ x: 'y'.repeat(4 * 1024 * 1024 + 10) }),
      }).catch((err: Error) => err);
      // The server may answer from Content-Length and close while the client still writes.
      if (res instanceof Error) return assert.match(String(res.cause ?? res), /EPIPE|ECONNRESET|other side closed|SocketError/);
      assert.equal(res.status, 413);
      assertOpenAIError(await res.text(), 'request_too_large');
    });
  }

  it('a stream that lasts longer than requestTimeoutMs is not cut', async () => {
    const client = new OpenAI({ baseURL: `${stack.routerUrl}/v1`, apiKey: 'unused', maxRetries: 0 });
    const started = Date.now();
    const stream = await client.chat.completions.create({
      model: DEFAULT_MODEL,
      messages: [{ role: 'user', content: 'a long story' }],
      max_tokens: 64,
      stream: true,
    });
    let finish: string | null = null;
    for await (const chunk of stream) finish = chunk.choices[0]?.finish_reason ?? finish;
    const took = Date.now() - started;
    assert.ok(finish === 'stop' || finish === 'length', `finished with ${finish}`);
    assert.ok(took > LIMITS.requestTimeoutMs, `the stream took ${took} ms: too short to prove anything`);
  });

  it('both processes are still alive', () => {
    assert.equal(stack.router.child.exitCode, null);
    assert.equal(stack.controlPlane!.child.exitCode, null);
  });
});
