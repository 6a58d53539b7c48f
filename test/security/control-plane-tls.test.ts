// The control plane over HTTPS with client certificates (controlPlane.tls with a caFile): an agent
// registers with its certificate (CN = node id) instead of a node token, through the agent's own
// Registration client (agents[].controlPlaneTls); a certificate for another id, one from another
// CA, and no credential at all are refused; operators and routers still use their tokens.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Agent, request } from 'undici';
import { startControlPlane } from '../../control-plane/main.ts';
import { controlPlaneInputs, parseConfig } from '../../cli/config.ts';
import { Registration } from '../../node-agent/registration.ts';
import { createLogger } from '../../common/logger.ts';
import { makeCertDir, type CertDir, type TestCa } from '../helpers/certs.ts';
import { waitFor } from '../helpers/stack.ts';

const ADMIN = 'cp-tls-admin-token';

describe('control plane over HTTPS: node identity from the client certificate', () => {
  let certs: CertDir;
  let ca: TestCa;
  let cp: Awaited<ReturnType<typeof startControlPlane>>;

  before(async () => {
    certs = makeCertDir();
    ca = certs.ca('cluster-ca');
    const server = ca.issue('control-plane');
    cp = await startControlPlane(
      controlPlaneInputs(
        parseConfig({
          controlPlane: {
            listen: { host: '127.0.0.1', port: 0 },
            tls: { certFile: server.certFile, keyFile: server.keyFile, caFile: ca.certFile },
            capacity: { enabled: false },
          },
          logging: { level: 'silent' },
        }),
        { ICP_ADMIN_TOKEN: ADMIN },
      ),
    );
    assert.match(cp.url, /^https:/);
  });

  after(async () => {
    await cp?.close();
    certs?.remove();
  });

  const client = (cert?: { certFile: string; keyFile: string }, trust = ca.certFile) =>
    new Agent({
      connect: { ca: readFileSync(trust), ...(cert ? { cert: readFileSync(cert.certFile), key: readFileSync(cert.keyFile) } : {}) },
    });
  const register = async (dispatcher: Agent, id: string, headers: Record<string, string> = {}) => {
    const res = await request(`${cp.url}/v1/nodes/register`, {
      method: 'POST',
      dispatcher,
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify({ id, address: '127.0.0.1:50051' }),
    });
    const body = (await res.body.json()) as { error?: { code: string } };
    return { status: res.statusCode, code: body.error?.code };
  };

  it("an agent's Registration registers and heartbeats with its certificate, no token", async () => {
    const cert = ca.issue('gpu-cert');
    const reg = new Registration({
      controlPlaneUrl: cp.url,
      nodeId: 'gpu-cert',
      address: '127.0.0.1:50061',
      heartbeatMs: 100,
      models: () => ['m'],
      logger: createLogger('test', 'silent'),
      tls: { caFile: ca.certFile, certFile: cert.certFile, keyFile: cert.keyFile },
    });
    reg.start();
    try {
      await waitFor(() => cp.registry.get('gpu-cert'), 10_000);
      const first = cp.registry.get('gpu-cert')!.lastHeartbeatAt;
      await waitFor(() => cp.registry.get('gpu-cert')!.lastHeartbeatAt > first, 5_000);
    } finally {
      await reg.stop();
    }
    assert.equal(cp.registry.get('gpu-cert'), undefined, 'stop() deregistered it (with the certificate)');
  });

  it('refuses a certificate for another id, one from another CA, and no credential', async () => {
    const mine = client(ca.issue('gpu-a'));
    assert.deepEqual(await register(mine, 'gpu-b'), { status: 403, code: 'node_identity_mismatch' });
    assert.equal((await register(mine, 'gpu-a')).status, 200, 'the control: its own id');
    const rogue = client(certs.ca('rogue-ca').issue('gpu-a'));
    assert.equal((await register(rogue, 'gpu-a')).status, 401, 'a certificate another CA signed proves nothing');
    assert.equal((await register(client(), 'gpu-a')).status, 401);
    // The operator still uses the admin token over the same HTTPS port.
    const list = await request(`${cp.url}/v1/nodes`, { dispatcher: client(), headers: { authorization: `Bearer ${ADMIN}` } });
    assert.equal(list.statusCode, 200);
    await list.body.dump();
  });
});
