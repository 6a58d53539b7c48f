// Fuzz the router's HTTP surface with a few thousand generated bodies: every answer must be a
// 4xx in OpenAI's error shape, never a 5xx or a crash, and the router must still serve after.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'undici';
import { connect } from 'node:net';
import { startStack, type Stack } from '../helpers/stack.ts';
import { mulberry32 } from '../sim/vllm/text.ts';

/** Seeded, so a failure can be replayed from its seed. */
const rng = mulberry32;

const SEED = Number(process.env.FUZZ_SEED ?? 20261122);
const CASES = Number(process.env.FUZZ_CASES ?? 3000);

function generator(r: () => number) {
  const pick = <T>(xs: T[]): T => xs[Math.floor(r() * xs.length)]!;
  const scalar = (): unknown => pick([null, true, false, 0, -1, 1e308, -1e-308, 3.5, NaN, '', 'x', 'user', '\u0000', '\ud800', 'a'.repeat(1 + Math.floor(r() * 5000)), [], {}]);
  const value = (depth: number): unknown => {
    if (depth > 3 || r() < 0.5) return scalar();
    if (r() < 0.5) return Array.from({ length: Math.floor(r() * 4) }, () => value(depth + 1));
    return Object.fromEntries(Array.from({ length: Math.floor(r() * 4) }, () => [pick(['role', 'content', 'model', 'x', 'stream', 'n']), value(depth + 1)]));
  };
  const chatLike = () => {
    const body: Record<string, unknown> = { model: pick(['no-such-model', 7, null, '', 'x'.repeat(300)]), messages: pick([[{ role: 'user', content: 'hi' }], [], 'hi', [{ role: 'wizard', content: 'x' }], [{ content: 5 }], value(0)]) };
    for (const k of ['temperature', 'max_tokens', 'stream', 'stop', 'top_p', 'n', 'stream_options', 'seed', 'prompt']) if (r() < 0.3) body[k] = value(1);
    if (r() < 0.2) delete body.model;
    return body;
  };
  const deep = (n: number) => '{"model":"m","messages":' + '['.repeat(n) + ']'.repeat(n) + '}';

  return (): { path: string; contentType: string | undefined; body: string | Buffer } => {
    const path = pick(['/v1/chat/completions', '/v1/completions']);
    const kind = r();
    if (kind < 0.45) return { path, contentType: 'application/json', body: JSON.stringify(chatLike()) };
    if (kind < 0.55) return { path, contentType: 'application/json', body: JSON.stringify(value(0)) ?? 'null' };
    if (kind < 0.65) {
      const s = JSON.stringify(chatLike());
      return { path, contentType: 'application/json', body: s.slice(0, Math.floor(r() * s.length)) }; // truncated JSON
    }
    if (kind < 0.72) {
      const s = Buffer.from(JSON.stringify({ model: 'no-such-model', messages: [{ role: 'user', content: 'XX' }] }));
      const i = s.indexOf('XX');
      s[i] = 0xc3; // invalid UTF-8 sequences inside a string
      s[i + 1] = 0x28;
      return { path, contentType: 'application/json', body: r() < 0.5 ? s : Buffer.from([0xff, 0xfe, 0x7b, 0x80, 0x7d]) };
    }
    if (kind < 0.8) return { path, contentType: pick(['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', undefined, 'application/xml']), body: JSON.stringify(chatLike()) };
    if (kind < 0.86) return { path, contentType: 'application/json', body: deep(pick([100, 5_000, 200_000])) };
    if (kind < 0.9) return { path, contentType: 'application/json', body: '{"model":"m","messages":[{"role":"user","content":"' + 'x'.repeat(5 * 1024 * 1024) + '"}]}' }; // over the body limit
    if (kind < 0.95) return { path, contentType: 'application/json', body: pick(['{"__proto__":{"x":1},"model":"m"}', '{"constructor":{"prototype":{"x":1}}}', '', ' ', 'null', '[]', '"str"', '{"model":"m","model":"n"}', '{"a":1}}}}']) };
    return { path, contentType: 'application/json', body: JSON.stringify({ model: 'no-such-model', messages: Array.from({ length: 20_000 }, () => ({ role: 'user', content: 'x' })) }) };
  };
}

/**
 * An oversized body is refused (413) from its Content-Length, before it is read, and the server
 * closes the connection: a client still writing the body sees EPIPE or a reset instead of the
 * answer. Such cases go over a raw socket that sends the headers, waits for an early answer, and
 * only then (if none came) the body.
 */
async function send(base: string, c: { path: string; contentType: string | undefined; body: string | Buffer }): Promise<{ statusCode: number; text: string }> {
  const body = typeof c.body === 'string' ? Buffer.from(c.body) : c.body;
  if (body.length < 1024 * 1024) {
    const res = await request(base + c.path, { method: 'POST', headers: c.contentType ? { 'content-type': c.contentType } : {}, body });
    return { statusCode: res.statusCode, text: await res.body.text() };
  }
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const sock = connect(Number(url.port), url.hostname);
    const chunks: Buffer[] = [];
    sock.on('data', (d) => chunks.push(d));
    sock.on('error', () => undefined); // EPIPE while still writing: expected
    sock.on('close', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      const m = /^HTTP\/1\.1 (\d{3})/.exec(raw);
      if (!m) return reject(new Error(`no HTTP answer to an oversized body: ${raw.slice(0, 100)}`));
      resolve({ statusCode: Number(m[1]), text: raw.slice(raw.indexOf('\r\n\r\n') + 4) });
    });
    sock.write(`POST ${c.path} HTTP/1.1\r\nhost: ${url.host}\r\ncontent-type: ${c.contentType}\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n`);
    setTimeout(() => {
      if (chunks.length === 0 && !sock.destroyed) sock.end(body);
    }, 1_000);
  });
}

describe('HTTP surface fuzz', () => {
  let stack: Stack;
  before(async () => {
    // A router with no nodes: every well-formed request is an honest 404 (unknown model).
    stack = await startStack({ sims: [], agents: [], withControlPlane: false });
  });
  after(async () => {
    await stack?.stop();
  });

  it(`answers ${CASES} generated bodies with 4xx in OpenAI's shape (seed ${SEED})`, async () => {
    const next = generator(rng(SEED));
    const statuses = new Map<number, number>();
    const failures: string[] = [];
    for (let i = 0; i < CASES; i++) {
      const c = next();
      const res = await send(stack.routerUrl, c);
      const text = res.text;
      statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
      let ok = res.statusCode >= 400 && res.statusCode < 500;
      try {
        const body = JSON.parse(text) as { error?: { message?: unknown; type?: unknown } };
        ok &&= typeof body.error?.message === 'string' && typeof body.error?.type === 'string' && 'param' in body.error && 'code' in body.error;
      } catch {
        ok = false;
      }
      if (!ok && failures.length < 5) failures.push(`case ${i}: ${res.statusCode} ${text.slice(0, 200)} for ${String(c.body).slice(0, 120)}`);
    }
    assert.deepEqual(failures, [], `statuses: ${JSON.stringify([...statuses])}`);
    // The router is still alive and serving.
    assert.equal(stack.router.child.exitCode, null);
    const health = await request(stack.routerUrl + '/healthz');
    assert.equal(health.statusCode, 200);
    await health.body.dump();
    assert.ok((statuses.get(400) ?? 0) > CASES / 4, 'most generated bodies are invalid');
    assert.ok((statuses.get(404) ?? 0) > 0, 'some are well-formed: unknown model');
    assert.ok((statuses.get(413) ?? 0) > 0, 'oversized bodies are refused');
    assert.ok((statuses.get(415) ?? 0) > 0, 'wrong content types are refused');
  });
});
