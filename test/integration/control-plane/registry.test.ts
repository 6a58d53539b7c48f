import { describe, it, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { createParser } from 'eventsource-parser';
import { NodeRegistry } from '../../../control-plane/registry/node-registry.ts';
import { startControlPlane } from '../../../control-plane/main.ts';
import { controlPlaneInputs, parseConfig } from '../../../cli/config.ts';
import { mintNodeToken } from '../../../common/credentials.ts';

const ADMIN = 'registry-test-admin-token';
const NODE_SECRET = 'registry-test-node-secret';
const ROUTER = 'registry-test-router-token';
const bearer = (t: string) => ({ authorization: `Bearer ${t}` });
const node = (id: string) => bearer(mintNodeToken(NODE_SECRET, id));

describe('node registry', () => {
  it('registers, heartbeats, expires after the TTL, keeps static nodes', () => {
    let now = 1_000;
    const r = new NodeRegistry(3_000, () => now);
    r.addStatic('static-1', '10.0.0.1:50051');
    const { epoch } = r.register({ id: 'a', address: '127.0.0.1:1', models: ['m'] });
    now += 2_000;
    assert.equal(r.heartbeat('a', epoch), 'ok');
    assert.equal(r.heartbeat('a'), 'stale', 'a heartbeat without the registration epoch does not keep the entry alive');
    now += 2_500;
    r.sweep();
    assert.deepEqual(
      r.list().map((n) => n.id),
      ['a', 'static-1'],
    );
    now += 3_001;
    r.sweep();
    assert.deepEqual(
      r.list().map((n) => n.id),
      ['static-1'],
    );
    assert.equal(r.heartbeat('a', epoch), 'unknown', 'an expired node must register again');
  });

  it('cordon survives re-registration and publishes a change', () => {
    const r = new NodeRegistry(3_000);
    const versions: number[] = [];
    r.on('change', (s: { version: number }) => versions.push(s.version));
    r.register({ id: 'a', address: 'x:1' });
    r.setCordoned('a', true);
    r.register({ id: 'a', address: 'x:1' });
    assert.equal(r.get('a')?.cordoned, true);
    r.setCordoned('a', false);
    assert.equal(r.get('a')?.cordoned, false);
    assert.deepEqual(versions, [1, 2, 3]);
    assert.equal(r.deregister('a'), true);
    assert.equal(r.list().length, 0);
  });
});

describe('control plane API over HTTP', () => {
  let cp: Awaited<ReturnType<typeof startControlPlane>>;
  before(async () => {
    cp = await startControlPlane(
      controlPlaneInputs(
        parseConfig({
          controlPlane: {
            listen: { port: 0 },
            nodeTtlMs: 400,
            staticNodes: [{ id: 's', address: '10.1.1.1:50051' }],
            capacity: { enabled: false },
          },
          logging: { level: 'silent' },
        }),
        { ICP_ADMIN_TOKEN: ADMIN, ICP_NODE_SECRET: NODE_SECRET, ICP_ROUTER_TOKEN: ROUTER },
      ),
    );
  });
  after(async () => {
    await cp?.close();
  });

  const post = (path: string, body?: unknown, headers: Record<string, string> = bearer(ADMIN)) =>
    fetch(cp.url + path, {
      method: 'POST',
      headers: { ...headers, ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });

  it('register / list / cordon / uncordon / heartbeat / deregister', async () => {
    const reg = await post('/v1/nodes/register', { id: 'gpu-1', address: '127.0.0.1:50051', models: ['m'] }, node('gpu-1'));
    assert.equal(reg.status, 200);
    const { epoch } = (await reg.json()) as { epoch: string };
    const list = (await (await fetch(cp.url + '/v1/nodes', { headers: bearer(ADMIN) })).json()) as {
      data: { id: string; static: boolean }[];
    };
    assert.deepEqual(
      list.data.map((n) => [n.id, n.static]),
      [
        ['gpu-1', false],
        ['s', true],
      ],
    );
    const cordoned = (await (await post('/v1/nodes/gpu-1/cordon')).json()) as { node: { cordoned: boolean } };
    assert.equal(cordoned.node.cordoned, true);
    assert.equal(((await (await post('/v1/nodes/gpu-1/uncordon')).json()) as { node: { cordoned: boolean } }).node.cordoned, false);
    const beat = { ...node('gpu-1'), 'x-icp-node-epoch': epoch };
    assert.equal((await post('/v1/nodes/gpu-1/heartbeat', undefined, beat)).status, 204);
    assert.equal((await post('/v1/nodes/gpu-1/heartbeat', undefined, node('gpu-1'))).status, 409, 'no epoch: a stale registration');
    assert.equal((await fetch(cp.url + '/v1/nodes/gpu-1', { method: 'DELETE', headers: node('gpu-1') })).status, 204);
    const missing = await post('/v1/nodes/gpu-1/heartbeat', undefined, beat);
    assert.equal(missing.status, 404);
    assert.equal(((await missing.json()) as { error: { type: string } }).error.type, 'invalid_request_error');
  });

  it('rejects a bad registration in OpenAI error shape', async () => {
    const res = await post('/v1/nodes/register', { id: 'bad id!', address: '' }, node('gpu-1'));
    assert.equal(res.status, 400);
    const body = (await res.json()) as { error: { message: string } };
    assert.match(body.error.message, /id/);
  });

  it('the watch stream sends a snapshot, then one per change, and expiry shows up', async () => {
    const ac = new AbortController();
    const res = await fetch(cp.url + '/v1/nodes/watch', { signal: ac.signal, headers: bearer(ROUTER) });
    const snapshots: { nodes: { id: string }[] }[] = [];
    const parser = createParser({ onEvent: (e) => snapshots.push(JSON.parse(e.data)) });
    const reader = (async () => {
      try {
        for await (const chunk of res.body!) parser.feed(Buffer.from(chunk).toString('utf8'));
      } catch {
        // aborted
      }
    })();
    const until = async (pred: () => boolean) => {
      for (let i = 0; i < 100 && !pred(); i++) await new Promise((r) => setTimeout(r, 20));
      assert.ok(pred());
    };
    await until(() => snapshots.length >= 1);
    assert.deepEqual(
      snapshots[0]!.nodes.map((n) => n.id),
      ['s'],
    );
    await post('/v1/nodes/register', { id: 'gpu-2', address: '127.0.0.1:50052' }, node('gpu-2'));
    await until(() => snapshots.at(-1)!.nodes.some((n) => n.id === 'gpu-2'));
    // No heartbeats: gone after the 400 ms TTL.
    await until(() => !snapshots.at(-1)!.nodes.some((n) => n.id === 'gpu-2'));
    ac.abort();
    await reader;
  });
});
