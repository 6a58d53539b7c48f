// Production runs the compiled JavaScript (`npm run build` -> dist/) with plain node, no tsx: the
// control plane, an agent and the router start from dist/ to /readyz and serve a real request
// (the engine is the simulator, from source). `npm test` builds first; run alone, this builds.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import OpenAI from 'openai';
import { REPO_ROOT, spawnService, type ServiceProcess } from '../../cli/spawn-service.ts';
import { credentialEnv } from '../../cli/credentials.ts';
import { generateSecret } from '../../common/credentials.ts';
import { freePort } from '../helpers/ports.ts';
import { waitFor } from '../helpers/stack.ts';

describe('compiled services on plain node', () => {
  const procs: ServiceProcess[] = [];
  let dir: string;
  let routerUrl: string;
  let agentHttp: string;

  before(async () => {
    if (!existsSync(join(REPO_ROOT, 'dist/cli/main.js'))) {
      execFileSync(process.execPath, [join(REPO_ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'], {
        cwd: REPO_ROOT,
        stdio: 'inherit',
      });
    }
    const [cp, router, grpc, http, sim] = await Promise.all(Array.from({ length: 5 }, freePort));
    dir = mkdtempSync(join(tmpdir(), 'icp-compiled-'));
    const file = join(dir, 'config.yaml');
    writeFileSync(
      file,
      stringify({
        controlPlaneUrl: `http://127.0.0.1:${cp}`,
        controlPlane: {
          listen: { port: cp },
          capacity: { store: { path: join(dir, 'capacity') } },
          shadow: { store: { path: join(dir, 'shadow') } },
        },
        router: { listen: { port: router } },
        agents: [
          {
            id: 'gpu-c',
            listen: { port: grpc },
            httpListen: { host: '127.0.0.1', port: http },
            engine: { url: `http://127.0.0.1:${sim}` },
          },
        ],
      }),
    );
    procs.push(
      await spawnService({ name: 'sim', entry: 'test/sim/vllm/main.ts', args: ['--port', String(sim), '--model', 'sim-compiled'] }),
    );
    // Each process with only its own credential, as `npm start` gives them.
    const env = credentialEnv({ adminToken: generateSecret(), routerToken: generateSecret(), nodeSecret: generateSecret() });
    const start = (name: string, args: string[], own: Record<string, string>) =>
      spawnService({ name, entry: 'cli/main.ts', args: [...args, '--config', file], compiled: true, env: own });
    procs.push(await start('control-plane', ['control-plane'], env.controlPlane));
    procs.push(await start('node-agent', ['node-agent', '--id', 'gpu-c'], env.agent('gpu-c')));
    procs.push(await start('router', ['router'], env.router));
    routerUrl = `http://127.0.0.1:${router}`;
    agentHttp = `http://127.0.0.1:${http}`;
  });

  after(async () => {
    for (const p of procs.reverse()) await p.stop(5_000);
    rmSync(dir, { recursive: true, force: true });
  });

  it('run without tsx, on the targeted Node', () => {
    for (const p of procs.slice(1)) {
      const cmdline = readFileSync(`/proc/${p.child.pid}/cmdline`, 'utf8').split('\0');
      assert.ok(
        cmdline.some((a) => a.endsWith('dist/cli/main.js')),
        cmdline.join(' '),
      );
      assert.ok(!cmdline.some((a) => a.includes('tsx')), `${p.name} runs without tsx: ${cmdline.join(' ')}`);
    }
    const engines = (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { engines: { node: string } }).engines.node;
    assert.ok(
      Number(process.versions.node.split('.')[0]) >= Number(/\d+/.exec(engines)![0]),
      `tests run on Node ${process.versions.node}, engines ${engines}`,
    );
  });

  it('reach /readyz and serve a chat completion', async () => {
    // The agent warms its engine up first (one generation); 30 s bounds it on a loaded machine.
    await waitFor(async () => (await fetch(`${agentHttp}/readyz`)).status === 200, 30_000, 100);
    await waitFor(async () => (await fetch(`${routerUrl}/readyz`)).status === 200, 30_000, 100);
    const client = new OpenAI({ baseURL: `${routerUrl}/v1`, apiKey: 'unused', maxRetries: 0 });
    const answer = await waitFor(
      async () => client.chat.completions.create({ model: 'sim-compiled', messages: [{ role: 'user', content: 'hi' }], max_tokens: 4 }),
      30_000,
      200,
    );
    assert.equal(answer.object, 'chat.completion');
    assert.ok(answer.usage!.completion_tokens > 0);
  });
});
