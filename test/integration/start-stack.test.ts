// `npm start`'s supervisor: the whole stack comes up from one config, serves a real request, and
// Ctrl-C (SIGINT) stops every process and frees every port.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import OpenAI from 'openai';
import { REPO_ROOT } from '../../cli/spawn-service.ts';
import { freePort, portIsFree } from '../helpers/ports.ts';

describe('npm start (supervisor)', () => {
  it('starts the whole stack, serves, and stops cleanly on SIGINT', async () => {
    const [cp, router, a1, a2, s1, s2] = await Promise.all(Array.from({ length: 6 }, freePort));
    const ports = [cp!, router!, a1!, a2!, s1!, s2!];
    const dir = mkdtempSync(join(tmpdir(), 'icp-start-'));
    const file = join(dir, 'config.yaml');
    writeFileSync(
      file,
      stringify({
        controlPlaneUrl: `http://127.0.0.1:${cp}`,
        controlPlane: { listen: { port: cp } },
        router: { listen: { port: router } },
        agents: [
          { id: 'gpu-a', listen: { port: a1 }, engine: { url: `http://127.0.0.1:${s1}` } },
          { id: 'gpu-b', listen: { port: a2 }, engine: { url: `http://127.0.0.1:${s2}` } },
        ],
        simulators: [
          { id: 'vllm-a', port: s1, model: 'sim-start', speed: 1 },
          { id: 'vllm-b', port: s2, model: 'sim-start', speed: 0.5 },
        ],
      }),
    );
    // Its own process group, like a terminal session: Ctrl-C signals the whole group.
    const child = spawn(process.execPath, ['--import', 'tsx', 'cli/main.ts', 'start', '--config', file], {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, LOG_LEVEL: '' },
      detached: true,
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      for (let i = 0; i < 600 && !out.includes('Ctrl-C stops everything'); i++) await new Promise((r) => setTimeout(r, 100));
      assert.match(out, /OpenAI-compatible endpoint: http:\/\/localhost:\d+\/v1 +\(models: sim-start\)/, out);
      assert.match(out, /curl http:\/\/localhost:\d+\/v1\/chat\/completions/);
      const client = new OpenAI({ baseURL: `http://127.0.0.1:${router}/v1`, apiKey: 'unused', maxRetries: 0 });
      const res = await client.chat.completions.create({
        model: 'sim-start',
        messages: [{ role: 'user', content: 'hello' }],
        max_tokens: 3,
      });
      assert.equal(res.usage?.completion_tokens, 3);
      // Ctrl-C: SIGINT to every process of the group at once (the supervisor then signals its
      // children again; each must still shut down gracefully and exit 0).
      process.kill(-child.pid!, 'SIGINT');
      assert.equal(await exited, 0, out);
      for (const name of ['router', 'gpu-a', 'gpu-b', 'control-plane', 'vllm-a', 'vllm-b'])
        assert.match(out, new RegExp(`${name} stopped \\(0\\)`));
      for (const p of ports) assert.equal(await portIsFree(p), true, `port ${p} still bound`);
    } finally {
      if (child.exitCode === null) process.kill(-child.pid!, 'SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
