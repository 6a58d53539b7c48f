// Warm-up readiness: an agent is ready only when its engine is up, the model is loaded and a
// warm-up generation succeeded; readiness drops when the engine stops answering and comes back
// with it. /readyz and the standard gRPC health service agree; /healthz never calls the engine.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { grpc } from '../../../common/grpc.ts';
import { spawnService, type ServiceProcess } from '../../../cli/spawn-service.ts';
import { waitFor, setSimFaults, simState } from '../../helpers/stack.ts';
import { freePort } from '../../helpers/ports.ts';

function grpcHealth(address: string): Promise<string> {
  // The standard grpc.health.v1 service, called as any prober would (raw method path).
  const client = new grpc.Client(address, grpc.credentials.createInsecure());
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(
      '/grpc.health.v1.Health/Check',
      () => Buffer.from([0x0a, 0x00]), // HealthCheckRequest{service: ""}
      (b: Buffer) => b,
      {},
      (err, res) => {
        client.close();
        if (err) return reject(err);
        // HealthCheckResponse{status = 1 SERVING | 2 NOT_SERVING}: field 1, varint.
        resolve(res && res.length >= 2 ? (res[1] === 1 ? 'SERVING' : res[1] === 2 ? 'NOT_SERVING' : `status ${res[1]}`) : 'UNKNOWN');
      },
    );
  });
}

describe('agent readiness', () => {
  const dir = mkdtempSync(join(tmpdir(), 'icp-ready-'));
  let sim: ServiceProcess | undefined;
  let agent: ServiceProcess;
  let simPort: number;
  let httpUrl: string;

  before(async () => {
    simPort = await freePort();
    const httpPort = await freePort();
    httpUrl = `http://127.0.0.1:${httpPort}`;
    const file = join(dir, 'config.yaml');
    writeFileSync(
      file,
      stringify({
        agents: [
          {
            id: 'gpu-r',
            listen: { port: 0 },
            httpListen: { port: httpPort },
            engine: { url: `http://127.0.0.1:${simPort}` },
            scrapeIntervalMs: 100,
            heartbeatMs: 200,
          },
        ],
        logging: { level: 'warn' },
      }),
    );
    // The agent first: its engine is not even listening yet (a real vLLM loading its model).
    agent = await spawnService({ name: 'agent', entry: 'cli/main.ts', args: ['node-agent', '--config', file], env: { LOG_LEVEL: 'warn' } });
  });

  after(async () => {
    await agent?.stop(5_000);
    await sim?.stop(5_000);
    rmSync(dir, { recursive: true, force: true });
  });

  it('is alive but not ready while the engine loads its model', async () => {
    assert.equal((await fetch(`${httpUrl}/healthz`)).status, 200);
    const r = await fetch(`${httpUrl}/readyz`);
    assert.equal(r.status, 503);
    assert.equal(await grpcHealth(agent.url), 'NOT_SERVING');
    // The engine starts listening only after a 1 s model load.
    sim = await spawnService({
      name: 'sim',
      entry: 'test/sim/vllm/main.ts',
      args: ['--port', String(simPort), '--model', 'sim-model', '--load-time-ms', '1000'],
    });
  });

  it('becomes ready after a warm-up generation succeeded', async () => {
    const body = await waitFor(async () => {
      const r = await fetch(`${httpUrl}/readyz`);
      return r.status === 200 ? ((await r.json()) as { ready: boolean }) : undefined;
    }, 15_000);
    assert.equal(body?.ready, true);
    assert.equal(await grpcHealth(agent.url), 'SERVING');
    const state = await simState(sim!.url);
    assert.ok(state.completed >= 1, 'the warm-up generation reached the engine');
  });

  it('drops readiness when the engine dies, and warms up again when it returns', async () => {
    await setSimFaults(sim!.url, { engineDead: true });
    const reason = await waitFor(
      async () => {
        const r = await fetch(`${httpUrl}/readyz`);
        return r.status === 503 ? ((await r.json()) as { reason: string }).reason : undefined;
      },
      5_000,
      20,
    );
    assert.equal(reason, 'engine_unhealthy');
    assert.equal(await grpcHealth(agent.url), 'NOT_SERVING');
    assert.equal((await fetch(`${httpUrl}/healthz`)).status, 200, 'liveness does not depend on the engine');
    const before = (await simState(sim!.url)).completed;
    await setSimFaults(sim!.url, { engineDead: false });
    await waitFor(async () => (await fetch(`${httpUrl}/readyz`)).status === 200, 10_000);
    assert.ok((await simState(sim!.url)).completed > before, 'a fresh warm-up ran after the engine came back');
  });
});
