// Mutual TLS between router and agent, with certificates this test makes (test/helpers/certs.ts):
// a chat completion flows router -> agent over mTLS; the agent refuses a plaintext client, a
// client without a certificate and a client whose certificate another CA signed; the control
// plane's Drain call reaches the agent over mTLS too; the certificate's CN is the caller's role
// (a router's certificate cannot Drain; another node's cannot even watch), and Resume undoes a drain.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { startStack, waitFor, listModels, DEFAULT_MODEL, type Stack } from '../../helpers/stack.ts';
import { makeCertDir, type CertDir, type CertFiles, type TestCa } from '../../helpers/certs.ts';
import { createNodeAgentClient, grpc } from '../../../common/grpc.ts';
import { agentChannelSecurity, type AgentClientTls } from '../../../common/tls.ts';

/** Opens WatchStatus and resolves with the first status, or the error that ended the stream. */
async function firstStatus(
  address: string,
  tls: AgentClientTls | undefined,
): Promise<{ ok: true } | { ok: false; code: number; details: string }> {
  const client = createNodeAgentClient(address, tls ? agentChannelSecurity(tls) : undefined);
  try {
    return await new Promise((resolve) => {
      const stream = client.WatchStatus({ routerId: 'mtls-test' }, { deadline: Date.now() + 10_000 });
      stream.on('data', () => {
        resolve({ ok: true });
        stream.cancel();
      });
      stream.on('error', (err: grpc.ServiceError) => resolve({ ok: false, code: err.code, details: err.details }));
    });
  } finally {
    client.close();
  }
}

const ADMIN_TOKEN = 'mtls-test-admin-token';

describe('mutual TLS router <-> agent', () => {
  let certs: CertDir;
  let ca: TestCa;
  let routerCert: CertFiles;
  let cpCert: CertFiles;
  let stack: Stack;
  let agentAddress: string;

  before(async () => {
    process.env.ICP_ADMIN_TOKEN = ADMIN_TOKEN;
    certs = makeCertDir();
    ca = certs.ca('cluster-ca');
    const agentCert = ca.issue('agent');
    routerCert = ca.issue('router');
    cpCert = ca.issue('control-plane');
    const clientTls = { caFile: ca.certFile, certFile: routerCert.certFile, keyFile: routerCert.keyFile };
    stack = await startStack({
      sims: [{ id: 'sim-a' }],
      agents: [
        {
          id: 'gpu-a',
          sim: 'sim-a',
          extra: { tls: { caFile: ca.certFile, certFile: agentCert.certFile, keyFile: agentCert.keyFile, requireClientCert: true } },
        },
      ],
      router: { agentTls: clientTls },
      controlPlane: { agentTls: { caFile: ca.certFile, certFile: cpCert.certFile, keyFile: cpCert.keyFile } },
    });
    agentAddress = stack.agents.get('gpu-a')!.url;
    await waitFor(async () => (await listModels(stack.routerUrl)).includes(DEFAULT_MODEL), 30_000);
  });

  after(async () => {
    delete process.env.ICP_ADMIN_TOKEN;
    await stack?.stop();
    certs?.remove();
  });

  it('serves a chat completion through the router over mTLS', async () => {
    const client = new OpenAI({ baseURL: `${stack.routerUrl}/v1`, apiKey: 'unused', maxRetries: 0 });
    const { data, response } = await client.chat.completions
      .create({ model: DEFAULT_MODEL, messages: [{ role: 'user', content: 'hello over mTLS' }], max_tokens: 8 })
      .withResponse();
    assert.equal(response.headers.get('x-backend'), 'node:gpu-a');
    assert.ok(data.choices[0]?.message.content, 'an answer came back');
    assert.ok((data.usage?.completion_tokens ?? 0) > 0);
  });

  it('a client with a certificate from the cluster CA is served (the control for the refusals below)', async () => {
    assert.deepEqual(await firstStatus(agentAddress, { caFile: ca.certFile, certFile: routerCert.certFile, keyFile: routerCert.keyFile }), {
      ok: true,
    });
  });

  it('refuses a plaintext client', async () => {
    const r = await firstStatus(agentAddress, undefined);
    assert.equal(r.ok, false);
    assert.equal((r as { code: number }).code, grpc.status.UNAVAILABLE, JSON.stringify(r));
  });

  it('refuses a TLS client without a certificate', async () => {
    const r = await firstStatus(agentAddress, { caFile: ca.certFile });
    assert.equal(r.ok, false);
    assert.equal((r as { code: number }).code, grpc.status.UNAVAILABLE, JSON.stringify(r));
  });

  it('refuses a client whose certificate another CA signed', async () => {
    const rogue = certs.ca('rogue-ca').issue('router');
    // It trusts the right CA for the server, so only its own certificate can be the problem.
    const r = await firstStatus(agentAddress, { caFile: ca.certFile, certFile: rogue.certFile, keyFile: rogue.keyFile });
    assert.equal(r.ok, false);
    assert.equal((r as { code: number }).code, grpc.status.UNAVAILABLE, JSON.stringify(r));
  });

  it('a client that does not trust the agent certificate refuses the agent', async () => {
    const other = certs.ca('other-ca');
    const mine = other.issue('router');
    const r = await firstStatus(agentAddress, { caFile: other.certFile, certFile: mine.certFile, keyFile: mine.keyFile });
    assert.equal(r.ok, false);
  });

  it("a certificate's CN is its role: a router's cannot Drain, another node's cannot watch", async () => {
    const drainWith = async (cert: CertFiles) => {
      const client = createNodeAgentClient(agentAddress, agentChannelSecurity({ caFile: ca.certFile, ...cert }));
      try {
        return await new Promise<number>((resolve) =>
          client.Drain({ graceMs: 1 }, { deadline: Date.now() + 5_000 }, (err) => resolve(err ? err.code : grpc.status.OK)),
        );
      } finally {
        client.close();
      }
    };
    assert.equal(await drainWith(routerCert), grpc.status.PERMISSION_DENIED);
    const otherNode = ca.issue('gpu-b');
    const r = await firstStatus(agentAddress, { caFile: ca.certFile, certFile: otherNode.certFile, keyFile: otherNode.keyFile });
    assert.equal((r as { code?: number }).code, grpc.status.PERMISSION_DENIED, JSON.stringify(r));
  });

  it("the control plane's Drain reaches the agent over mTLS, and Resume undoes it", async () => {
    const admin = { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' };
    const res = await fetch(`${stack.controlPlane!.url}/v1/nodes/gpu-a/drain`, { method: 'POST', headers: admin, body: '{}' });
    const body = await res.text();
    assert.equal(res.status, 200, body);
    assert.equal((JSON.parse(body) as { agent: { draining: boolean } }).agent.draining, true);
    await waitFor(async () => !(await listModels(stack.routerUrl)).includes(DEFAULT_MODEL), 10_000);
    const resumed = await fetch(`${stack.controlPlane!.url}/v1/nodes/gpu-a/resume`, { method: 'POST', headers: admin, body: '{}' });
    const rbody = (await resumed.json()) as { agent: { draining: boolean }; node: { cordoned: boolean } };
    assert.equal(resumed.status, 200, JSON.stringify(rbody));
    assert.equal(rbody.agent.draining, false);
    assert.equal(rbody.node.cordoned, false);
    await waitFor(async () => (await listModels(stack.routerUrl)).includes(DEFAULT_MODEL), 10_000);
  });
});
