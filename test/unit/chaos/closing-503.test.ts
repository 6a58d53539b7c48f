// Found by the chaos suite (router rolling restart): while a router drained after SIGTERM, a
// request arriving on a kept-alive connection got fastify's own 503 body,
// `{"error":"Service Unavailable",...}`, which the OpenAI SDK cannot read as an error (the client
// saw an untyped failure). It must be OpenAI-shaped, say when to retry, and close the connection,
// while the in-flight request still finishes.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from 'undici';
import { createHttpServer } from '../../../common/http.ts';
import { createLogger } from '../../../common/logger.ts';
import { sleep } from '../../../common/process.ts';

describe('a closing server', () => {
  it('answers new requests on kept-alive connections with an OpenAI-shaped 503 while in-flight ones finish', async () => {
    const app = createHttpServer({ logger: createLogger('test', 'silent') });
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    app.get('/slow', async () => {
      await held;
      return { ok: true };
    });
    app.get('/fast', async () => ({ ok: true }));
    const base = await app.listen({ host: '127.0.0.1', port: 0 });
    // One kept-alive connection; the second request is sent on it after close() began and is
    // served once the slow one is done (a server handles one request at a time per connection).
    const client = new Client(base, { pipelining: 2 });
    try {
      const slow = client.request({ path: '/slow', method: 'GET' });
      await sleep(100);
      const closed = app.close();
      await sleep(50);
      const next = client.request({ path: '/fast', method: 'GET' });
      await sleep(50);
      release();
      const r = await slow;
      assert.equal(r.statusCode, 200, 'the in-flight request finishes');
      assert.deepEqual(await r.body.json(), { ok: true });
      const n = await next;
      const text = await n.body.text();
      assert.equal(n.statusCode, 503, text);
      const body = JSON.parse(text) as { error: { type: string; code: string; message: string } };
      assert.equal(body.error.type, 'server_error');
      assert.equal(body.error.code, 'shutting_down');
      assert.equal(n.headers['retry-after'], '1');
      assert.equal(n.headers.connection, 'close');
      await closed;
    } finally {
      release();
      await client.close().catch(() => undefined);
    }
  });
});
