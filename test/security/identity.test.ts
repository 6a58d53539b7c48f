// Issue 17's identity findings, reproduced as an attacker on the same network would, against a
// real stack on loopback (control plane, agent, router, simulated vLLM, each its own process):
// - a rogue registration of a live node's id (the exact request) is refused without a
//   credential, with the admin token, with another node's token; the live node keeps its address,
//   and a rogue agent on the stolen port receives no prompt;
// - the agent's gRPC Generate and Drain refuse a caller without a credential, and a router's call
//   token cannot Drain;
// - the router's credential cannot create a tenant (nor issue keys, list or drain nodes);
// - cordon without a credential is refused; a cross-origin text/plain POST carrying the admin token
//   is refused (no state change);
// - a service on a non-loopback address with authentication off refuses to start, unless the
//   loudly named override is set.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import OpenAI from 'openai';
import { request } from 'undici';
import { startStack, waitFor, listModels, DEFAULT_MODEL, type Stack } from '../helpers/stack.ts';
import { createNodeAgentClient, grpc } from '../../common/grpc.ts';
import { agentCallToken, INSECURE_OVERRIDE_ENV } from '../../common/credentials.ts';
import { spawnService } from '../../cli/spawn-service.ts';

const ADMIN_TOKEN = 'identity-test-admin-token';
const json = { 'content-type': 'application/json' };
const bearer = (t: string) => ({ authorization: `Bearer ${t}` });

describe('identities: nodes, agents and operators prove who they are', () => {
  let stack: Stack;
  let rogue: Server;
  let rogueConnections = 0;
  let roguePort: number;

  before(async () => {
    process.env.ICP_ADMIN_TOKEN = ADMIN_TOKEN;
    stack = await startStack({ sims: [{ id: 'sim-a' }], agents: [{ id: 'gpu-a', sim: 'sim-a' }] });
    await waitFor(async () => (await listModels(stack.routerUrl)).includes(DEFAULT_MODEL), 30_000);
    // A "rogue agent": anything that connects to it would be receiving prompts.
    rogue = createServer((s) => {
      rogueConnections += 1;
      s.destroy();
    });
    await new Promise<void>((r) => rogue.listen(0, '127.0.0.1', r));
    roguePort = (rogue.address() as { port: number }).port;
  });

  after(async () => {
    delete process.env.ICP_ADMIN_TOKEN;
    rogue?.close();
    await stack?.stop();
  });

  const nodes = async () =>
    (
      (await (await fetch(`${stack.controlPlane!.url}/v1/nodes`, { headers: bearer(ADMIN_TOKEN) })).json()) as {
        data: { id: string; address: string }[];
      }
    ).data;

  it('refuses the rogue registration of a live node id, and the node keeps serving from its own address', async () => {
    const realAddress = (await nodes()).find((n) => n.id === 'gpu-a')!.address;
    const steal = JSON.stringify({ id: 'gpu-a', address: `127.0.0.1:${roguePort}` });
    const attempts: [string, Record<string, string>, number, string][] = [
      ['no credential', {}, 401, 'invalid_api_key'],
      ['the admin token (an operator is not a node)', bearer(ADMIN_TOKEN), 403, 'role_not_allowed'],
      ["the router's token", bearer(stack.credentials.routerToken), 403, 'role_not_allowed'],
      ["another node's token", bearer(stack.credentials.nodeToken('gpu-evil')), 403, 'node_identity_mismatch'],
    ];
    for (const [what, headers, status, code] of attempts) {
      const res = await fetch(`${stack.controlPlane!.url}/v1/nodes/register`, {
        method: 'POST',
        headers: { ...json, ...headers },
        body: steal,
      });
      const body = (await res.json()) as { error: { code: string } };
      assert.equal(res.status, status, `${what}: ${JSON.stringify(body)}`);
      assert.equal(body.error.code, code, what);
    }
    // A heartbeat for gpu-a by someone else does not keep anything alive either.
    const beat = await fetch(`${stack.controlPlane!.url}/v1/nodes/gpu-a/heartbeat`, {
      method: 'POST',
      headers: bearer(stack.credentials.nodeToken('gpu-evil')),
    });
    assert.equal(beat.status, 403);
    assert.equal((await nodes()).find((n) => n.id === 'gpu-a')!.address, realAddress);
    const client = new OpenAI({ baseURL: `${stack.routerUrl}/v1`, apiKey: 'unused', maxRetries: 0 });
    for (let i = 0; i < 3; i++) {
      const { response } = await client.chat.completions
        .create({ model: DEFAULT_MODEL, messages: [{ role: 'user', content: 'a secret prompt' }], max_tokens: 2 })
        .withResponse();
      assert.equal(response.headers.get('x-backend'), 'node:gpu-a');
    }
    assert.equal(rogueConnections, 0, 'no prompt went to the rogue address');
    assert.ok(
      stack.logs.some((l) => /tried to register another node/.test(l)),
      'the takeover attempt is logged',
    );
  });

  it("refuses Generate and Drain without a credential, and Drain with a router's call token", async () => {
    const address = stack.agents.get('gpu-a')!.url;
    const generate = (token?: string) => {
      const c = createNodeAgentClient(address, undefined, token);
      return new Promise<number>((resolve) => {
        const call = c.Generate({ requestId: 'r1', operation: 'CHAT_COMPLETIONS', model: DEFAULT_MODEL, bodyJson: '{"messages":[]}' });
        call.on('data', () => undefined);
        call.on('error', (e: grpc.ServiceError) => resolve(e.code));
        call.on('end', () => resolve(grpc.status.OK));
      }).finally(() => c.close());
    };
    const drain = (token?: string) => {
      const c = createNodeAgentClient(address, undefined, token);
      return new Promise<number>((resolve) =>
        c.Drain({ graceMs: 1 }, { deadline: Date.now() + 5_000 }, (e) => resolve(e ? e.code : 0)),
      ).finally(() => c.close());
    };
    assert.equal(await generate(), grpc.status.UNAUTHENTICATED);
    assert.equal(await generate('icpc.forged'), grpc.status.UNAUTHENTICATED);
    assert.equal(await drain(), grpc.status.UNAUTHENTICATED);
    const routerToken = agentCallToken(stack.credentials.nodeToken('gpu-a'));
    assert.equal(await drain(routerToken), grpc.status.PERMISSION_DENIED);
    // The control: the router's call token may generate.
    assert.equal(await generate(routerToken), grpc.status.OK);
    assert.ok((await listModels(stack.routerUrl)).includes(DEFAULT_MODEL), 'the node is still serving (not drained)');
  });

  it("the router's credential cannot create a tenant, issue a key, list nodes or drain one", async () => {
    const asRouter = { ...bearer(stack.credentials.routerToken), ...json };
    const cp = stack.controlPlane!.url;
    for (const [method, path, body] of [
      ['POST', '/v1/admin/tenants', '{"name":"evil"}'],
      ['POST', '/v1/admin/tenants/ten_x/keys', '{}'],
      ['GET', '/v1/nodes', undefined],
      ['POST', '/v1/nodes/gpu-a/drain', '{}'],
    ] as const) {
      const res = await fetch(cp + path, { method, headers: asRouter, body });
      assert.equal(res.status, 403, `${method} ${path}`);
      assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'role_not_allowed');
    }
    const tenants = (await (await fetch(`${cp}/v1/admin/tenants`, { headers: bearer(ADMIN_TOKEN) })).json()) as { data: unknown[] };
    assert.equal(tenants.data.length, 0, 'no tenant was created');
  });

  it('refuses cordon without a credential, and a cross-origin text/plain POST even with the admin token', async () => {
    const cordon = `${stack.controlPlane!.url}/v1/nodes/gpu-a/cordon`;
    assert.equal((await fetch(cordon, { method: 'POST' })).status, 401);
    // What a web page on another origin can send without a CORS preflight.
    const csrf = await fetch(cordon, {
      method: 'POST',
      headers: { ...bearer(ADMIN_TOKEN), 'content-type': 'text/plain', origin: 'https://evil.example' },
      body: '{}',
    });
    assert.equal(csrf.status, 403);
    const plain = await fetch(cordon, { method: 'POST', headers: { ...bearer(ADMIN_TOKEN), 'content-type': 'text/plain' }, body: '{}' });
    assert.equal(plain.status, 415, 'a state-changing body must be JSON');
    // fetch() may not set Host; undici's request may.
    const rebinding = await request(cordon, { method: 'POST', headers: { ...bearer(ADMIN_TOKEN), host: 'attacker.example' } });
    await rebinding.body.dump();
    assert.equal(rebinding.statusCode, 403, 'a Host that is not ours (DNS rebinding) is refused');
    assert.equal((await nodes()).length, 1);
    const listed = (await (await fetch(`${stack.controlPlane!.url}/v1/nodes`, { headers: bearer(ADMIN_TOKEN) })).json()) as {
      data: { cordoned: boolean }[];
    };
    assert.equal(listed.data[0]!.cordoned, false, 'no refused call changed anything');
  });
});

describe('secure by default on the network', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'icp-insecure-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const startOn = async (service: 'control-plane' | 'router', env: Record<string, string>) => {
    const file = join(dir, `${service}.yaml`);
    writeFileSync(
      file,
      stringify({
        controlPlane: { listen: { host: '0.0.0.0', port: 0 }, capacity: { enabled: false } },
        router: { listen: { host: '0.0.0.0', port: 0 }, batch: { dataDir: join(dir, 'batch') } },
        logging: { level: 'warn' },
      }),
    );
    const lines: string[] = [];
    try {
      const p = await spawnService({
        name: service,
        entry: 'cli/main.ts',
        args: [service, '--config', file],
        env,
        onLine: (l) => lines.push(l),
      });
      await p.stop(5_000);
      return { started: true, lines };
    } catch {
      return { started: false, lines };
    }
  };

  for (const service of ['control-plane', 'router'] as const) {
    it(`${service} on 0.0.0.0 with authentication off refuses to start; the override lets it, loudly`, async () => {
      const refused = await startOn(service, { ICP_ADMIN_TOKEN: '', ICP_ROUTER_TOKEN: '', ICP_NODE_SECRET: '' });
      assert.equal(refused.started, false);
      assert.ok(
        refused.lines.some((l) => /refusing to start/.test(l)),
        refused.lines.join('\n'),
      );
      const allowed = await startOn(service, { ICP_ADMIN_TOKEN: '', [INSECURE_OVERRIDE_ENV]: '1' });
      assert.equal(allowed.started, true, allowed.lines.join('\n'));
      assert.ok(
        allowed.lines.some((l) => /INSECURE/.test(l)),
        'the override is logged',
      );
    });
  }
});
