// The watch snapshots are contracts (common/contracts.ts): the control plane's producers emit
// what the schemas accept, and a router that receives a malformed snapshot logs why, drops it
// whole and keeps serving from the last good one.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { issueKey } from '../../../common/api-keys.ts';
import { membershipSnapshotSchema, policySnapshotSchema, type PolicySnapshot } from '../../../common/contracts.ts';
import { NodeRegistry } from '../../../control-plane/registry/node-registry.ts';
import { TenantRegistry } from '../../../control-plane/tenants/tenant-registry.ts';
import { SnapshotWatch, ControlPlaneWatch, type Member } from '../../../router/nodes/membership.ts';
import { KeyDirectory } from '../../../router/tenancy/key-directory.ts';

/** A logger whose warnings land in `lines`. */
function capturingLogger() {
  const lines: { msg: string; reason?: string }[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(JSON.parse(chunk.toString('utf8')) as { msg: string });
      done();
    },
  });
  return { logger: pino({ level: 'warn' }, sink), lines };
}

/** An SSE server on 127.0.0.1 whose events the test pushes one by one. */
async function sseServer() {
  let stream: ServerResponse | undefined;
  let connected!: () => void;
  const ready = new Promise<void>((r) => (connected = r));
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    stream = res;
    connected();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    ready,
    push: (data: string) => stream!.write(`event: snapshot\ndata: ${data}\n\n`),
    close: () =>
      new Promise<void>((r) => {
        stream?.end();
        server.close(() => r());
      }),
  };
}

/** Polls until `cond` holds; fails after 5 s (each step is one local SSE event, milliseconds). */
async function until(cond: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!cond()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const issued = issueKey();
const goodPolicy = (version: number, tenantName: string): PolicySnapshot => ({
  version,
  tenants: [{ id: 'ten_1', name: tenantName, policy: { rpm: 10 }, tags: {}, disabled: false, createdAt: '2026-01-01T00:00:00.000Z' }],
  keys: [
    {
      keyId: issued.keyId,
      tenantId: 'ten_1',
      name: 'k',
      hash: issued.hash,
      policy: {},
      createdAt: '2026-01-01T00:00:00.000Z',
      revokedAt: null,
    },
  ],
});

describe('policy snapshot watch', () => {
  const closers: (() => Promise<void> | void)[] = [];
  after(async () => {
    for (const c of closers.reverse()) await c();
  });

  it('rejects a malformed snapshot with a logged reason and keeps the last good one', async () => {
    const cp = await sseServer();
    closers.push(cp.close);
    const { logger, lines } = capturingLogger();
    const directory = new KeyDirectory();
    const seen: number[] = [];
    const watch = new SnapshotWatch(cp.url, logger, '/v1/policy/watch', policySnapshotSchema);
    watch.on('snapshot', (s: PolicySnapshot) => {
      seen.push(s.version);
      directory.load(s);
    });
    watch.start();
    closers.push(() => watch.stop());
    await cp.ready;

    cp.push(JSON.stringify(goodPolicy(1, 'first')));
    await until(() => directory.version === 1, 'the first snapshot');

    // Not JSON; a key without its hash (half of it valid: a tenant that parses); an unknown
    // policy field (a limit this router cannot enforce).
    cp.push('{"version": 2, "tenants": [');
    const halfValid = goodPolicy(3, 'second') as unknown as { keys: Record<string, unknown>[] };
    delete halfValid.keys[0]!.hash;
    cp.push(JSON.stringify(halfValid));
    const unknownLimit = goodPolicy(4, 'third') as unknown as { tenants: { policy: Record<string, unknown> }[] };
    unknownLimit.tenants[0]!.policy.rpmPerRegion = 5;
    cp.push(JSON.stringify(unknownLimit));
    await until(() => watch.rejected === 3, 'three rejections');

    assert.deepEqual(seen, [1], 'no malformed snapshot reaches the directory');
    assert.equal(directory.version, 1);
    const principal = directory.authenticate(`Bearer ${issued.key}`);
    assert.deepEqual(principal.tenantPolicy, { rpm: 10 }, 'the last good snapshot still answers');
    const reasons = lines.filter((l) => l.msg.startsWith('malformed control plane snapshot')).map((l) => l.reason ?? '');
    assert.equal(reasons.length, 3);
    assert.match(reasons[0]!, /not JSON/);
    assert.match(reasons[1]!, /keys\.0\.hash/);
    assert.match(reasons[2]!, /tenants\.0\.policy/);

    // The watch goes on: the next good snapshot applies.
    cp.push(JSON.stringify(goodPolicy(5, 'fifth')));
    await until(() => directory.version === 5, 'the next good snapshot');
    assert.deepEqual(seen, [1, 5]);
  });
});

describe('membership snapshot watch', () => {
  it('passes on the members of good snapshots only', async () => {
    const cp = await sseServer();
    const { logger } = capturingLogger();
    const watch = new ControlPlaneWatch(cp.url, logger);
    const seen: Member[][] = [];
    watch.on('members', (m: Member[]) => seen.push(m));
    watch.start();
    try {
      await cp.ready;
      const node = {
        id: 'gpu-1',
        address: '127.0.0.1:1',
        models: ['m'],
        labels: {},
        static: false,
        cordoned: false,
        registeredAt: 1,
        lastHeartbeatAt: 1,
      };
      cp.push(JSON.stringify({ version: 1, nodes: [node] }));
      cp.push(JSON.stringify({ version: 2, nodes: [{ ...node, address: 42 }] }));
      cp.push(JSON.stringify({ version: 3 }));
      await until(() => watch.rejected === 2, 'two rejections');
      cp.push(JSON.stringify({ version: 4, nodes: [] }));
      await until(() => seen.length === 2, 'the next good snapshot');
      assert.deepEqual(seen, [[{ id: 'gpu-1', address: '127.0.0.1:1', cordoned: false }], []]);
    } finally {
      watch.stop();
      await cp.close();
    }
  });
});

describe('the control plane produces what the contracts accept', () => {
  it('membership snapshot', () => {
    const r = new NodeRegistry(3_000);
    r.addStatic('s', '10.0.0.1:50051');
    r.register({ id: 'a', address: '127.0.0.1:1', models: ['m'], labels: { zone: 'z' } });
    r.setCordoned('a', true);
    // Through JSON, as the SSE stream carries it.
    assert.deepEqual(membershipSnapshotSchema.parse(JSON.parse(JSON.stringify(r.snapshot()))), r.snapshot());
  });

  it('policy snapshot', () => {
    const reg = new TenantRegistry();
    const t = reg.createTenant({ name: 'acme', policy: { rpm: 5, maxLane: 'standard', cache: { enabled: false } }, tags: { team: 'x' } });
    const k = reg.createKey(t.id, { name: 'ci', policy: { tpm: 100 } })!;
    reg.revokeKey(k.record.keyId);
    reg.createKey(t.id, {});
    const snap = JSON.parse(JSON.stringify(reg.snapshot())) as unknown;
    assert.deepEqual(policySnapshotSchema.parse(snap), snap);
  });
});
