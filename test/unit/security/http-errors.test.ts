// Bugs the API fuzz found, each pinned: a zod .parse() in a handler threw a ZodError that became
// a 500 (e.g. POST /v1/nodes/:id/drain with `graceMs: "x"`, an admin id over 64 characters); a
// malformed percent-encoding or an over-long path parameter got fastify's own error body instead
// of OpenAI's shape.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { z } from 'zod';
import { createHttpServer } from '../../../common/http.ts';
import { createLogger } from '../../../common/logger.ts';
import { controlPlaneInputs, parseConfig } from '../../../cli/config.ts';
import { startControlPlane } from '../../../control-plane/main.ts';
import { mintNodeToken } from '../../../common/credentials.ts';
import { isOpenAIError } from '../../fuzz/generators.ts';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

describe('HTTP error mapping', () => {
  const app = createHttpServer({ logger: createLogger('test', 'silent') });
  let base: string;
  before(async () => {
    app.post('/thing/:id', async (req) => z.object({ n: z.number() }).parse(req.body));
    base = await app.listen({ host: '127.0.0.1', port: 0 });
  });
  after(() => app.close());

  it('a ZodError thrown by a handler is a 400 naming the field', async () => {
    const res = await fetch(`${base}/thing/1`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"n":"x"}' });
    const text = await res.text();
    assert.equal(res.status, 400);
    assert.ok(isOpenAIError(text), text);
    assert.equal(JSON.parse(text).error.param, 'n');
  });

  it('a malformed URL and an over-long path parameter are answered in OpenAI shape', async () => {
    const bad = await fetch(`${base}/thing/%ff%fe`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"n":1}' });
    assert.equal(bad.status, 400);
    assert.equal(JSON.parse(await bad.text()).error.code, 'invalid_url');
    const long = await fetch(`${base}/thing/${'a'.repeat(500)}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"n":1}',
    });
    assert.equal(long.status, 414);
    assert.ok(isOpenAIError(await long.text()));
  });
});

describe('control plane Drain with bad input', () => {
  let cp: Awaited<ReturnType<typeof startControlPlane>>;
  const dir = mkdtempSync(join(tmpdir(), 'icp-drain-'));
  before(async () => {
    cp = await startControlPlane(
      controlPlaneInputs(
        parseConfig({
          controlPlane: { listen: { host: '127.0.0.1', port: 0 }, capacity: { enabled: false, store: { path: join(dir, 'c') } } },
          logging: { level: 'silent' },
        }),
        { ICP_ADMIN_TOKEN: 'http-errors-admin', ICP_NODE_SECRET: 'http-errors-node-secret' },
      ),
    );
  });
  after(async () => {
    await cp.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('bad graceMs is a 400 (was a 500); a node whose agent is not there is a 502 agent_unreachable', async () => {
    const post = (path: string, body: unknown, token = 'http-errors-admin') =>
      fetch(cp.url + path, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: JSON.stringify(body),
      });
    const nodeToken = mintNodeToken('http-errors-node-secret', 'odd');
    // An address that is not host:port is refused at registration (it once crashed Drain's dial).
    const odd = await post('/v1/nodes/register', { id: 'odd', address: 'dns:///[::1' }, nodeToken);
    assert.equal(odd.status, 400);
    assert.ok(isOpenAIError(await odd.text()));
    // Nothing listens on port 1.
    assert.equal((await post('/v1/nodes/register', { id: 'odd', address: '127.0.0.1:1' }, nodeToken)).status, 200);
    const drain = await post('/v1/nodes/odd/drain', {});
    const text = await drain.text();
    assert.equal(drain.status, 502, text);
    assert.equal(JSON.parse(text).error.code, 'agent_unreachable');
    const badGrace = await post('/v1/nodes/odd/drain', { graceMs: 'soon' });
    assert.equal(badGrace.status, 400);
    assert.ok(isOpenAIError(await badGrace.text()));
  });
});
