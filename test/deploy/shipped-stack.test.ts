// The shipped laptop config (deploy/compose/sim.yaml, what docker-compose.sim.yml mounts) run for
// real, with the credentials the shipped scripts make (scripts/make-certs.sh, make-secrets.sh
// minting node tokens with the real CLI): one process per container, each with a config whose
// /etc/icp/secrets is its own directory and whose addresses are loopback with random ports. No
// credential travels in the environment: every token and certificate comes from the files.
// Proves the settings work together: agents register with their node tokens, the router reads
// membership with its router token and calls agents over mutual TLS, tenant keys are required,
// the router holds no admin credential, the limits store fails closed, the state file is written.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { spawnService, type ServiceProcess } from '../../cli/spawn-service.ts';
import { freePort } from '../helpers/ports.ts';
import { waitFor } from '../helpers/stack.ts';
import { readYaml, rootPath, type Doc } from './lib.ts';

const have = (cmd: string, arg: string) => spawnSync(cmd, [arg]).status === 0;
const skip =
  have('openssl', 'version') && have('redis-server', '--version') ? false : process.env.CI ? false : 'openssl or redis-server missing';

const MODEL = 'sim-llama-3-8b';
let dir = '';
let redis: ChildProcess | undefined;
let redisPort = 0;
let redisPassword = '';
const procs: ServiceProcess[] = [];
const logs: string[] = [];
let cp: ServiceProcess;
let router: ServiceProcess;
let adminToken = '';
let routerToken = '';

async function startRedis(port: number, password: string): Promise<ChildProcess> {
  // requirepass from stdin (the config file form the shipped command writes), not the command line.
  const child = spawn('redis-server', ['-', '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  child.stdin!.end(`requirepass ${password}\n`);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('redis-server did not start')), 10_000);
    child.stdout!.on('data', (b) => String(b).includes('Ready to accept connections') && (clearTimeout(timer), resolve()));
  });
  return child;
}

/** The shipped config as one container sees it: its own secrets directory, loopback and random ports. */
function serviceConfig(base: Doc, secretsDir: string, edit: (c: Doc) => void): string {
  const text = JSON.stringify(base).split('/etc/icp/secrets').join(secretsDir).split('/var/lib/icp').join(join(dir, 'state'));
  const c = JSON.parse(text) as Doc;
  edit(c);
  const file = join(dir, `${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(file, stringify(c));
  return file;
}

const start = async (name: string, args: string[], env: Record<string, string> = {}) => {
  const p = await spawnService({
    name,
    entry: args[0]!,
    args: args.slice(1),
    // Only what a container has: no ICP_* credential variables.
    env: { LOG_LEVEL: 'warn', ICP_ADMIN_TOKEN: '', ICP_ROUTER_TOKEN: '', ICP_NODE_SECRET: '', ICP_NODE_TOKEN: '', ...env },
    onLine: (l) => logs.push(`[${name}] ${l}`),
    timeoutMs: 60_000,
  });
  procs.push(p);
  return p;
};

before(async () => {
  if (skip) return;
  dir = mkdtempSync(join(tmpdir(), 'icp-shipped-'));
  const secrets = join(dir, 'secrets');
  mkdirSync(join(dir, 'state'));
  // The agents are dialed at 127.0.0.1 here (in compose: agent-gpu-a), so that is in their SAN.
  execFileSync(
    'sh',
    [
      rootPath('scripts/make-certs.sh'),
      secrets,
      'control-plane',
      'control-plane',
      'DNS:control-plane',
      'router',
      'router',
      'DNS:router',
      'agent-gpu-a',
      'gpu-a',
      'DNS:agent-gpu-a,IP:127.0.0.1',
      'agent-gpu-b',
      'gpu-b',
      'DNS:agent-gpu-b,IP:127.0.0.1',
    ],
    { encoding: 'utf8' },
  );
  // Node tokens from the real CLI (the script's default NODE_TOKEN_CMD), run in the repository.
  execFileSync('sh', [rootPath('deploy/compose/make-secrets.sh'), secrets, 'agent-gpu-a=gpu-a', 'agent-gpu-b=gpu-b'], {
    cwd: rootPath('.'),
    encoding: 'utf8',
    env: { ...process.env, ICP_NODE_SECRET: '' },
    timeout: 120_000,
  });
  adminToken = readFileSync(join(secrets, 'control-plane/admin-token'), 'utf8').trim();
  routerToken = readFileSync(join(secrets, 'router/router-token'), 'utf8').trim();
  redisPassword = /^REDISCLI_AUTH=(.*)$/m.exec(readFileSync(join(secrets, 'redis.env'), 'utf8'))![1]!;
  const redisUrl = /^REDIS_URL=(.*)$/m.exec(readFileSync(join(secrets, 'router.env'), 'utf8'))![1]!;
  redisPort = await freePort();
  redis = await startRedis(redisPort, redisPassword);

  const shipped = readYaml('deploy/compose/sim.yaml');
  const sims = new Map<string, ServiceProcess>();
  for (const s of shipped.simulators as Doc[])
    sims.set(s.id, await start(s.id, ['test/sim/vllm/main.ts', '--port', '0', '--model', s.model, '--speed', String(s.speed * 10)]));

  const cpConfig = serviceConfig(shipped, join(secrets, 'control-plane'), (c) => {
    c.controlPlane.listen = { host: '127.0.0.1', port: 0 };
    c.agents = [];
    c.simulators = [];
  });
  cp = await start('control-plane', ['cli/main.ts', 'control-plane', '--config', cpConfig]);
  for (const a of shipped.agents as Doc[]) {
    const file = serviceConfig(shipped, join(secrets, `agent-${a.id}`), (c) => {
      c.controlPlaneUrl = cp.url;
      c.agents = c.agents.filter((x: Doc) => x.id === a.id);
      const me = c.agents[0];
      me.listen = { host: '127.0.0.1', port: 0 };
      delete me.advertiseAddress;
      me.httpListen = { host: '127.0.0.1', port: 0 };
      me.engine.url = sims.get(new URL(me.engine.url).hostname)!.url;
      me.heartbeatMs = 250;
      c.simulators = [];
    });
    await start(a.id, ['cli/main.ts', 'node-agent', '--id', a.id, '--config', file]);
  }
  const routerConfig = serviceConfig(shipped, join(secrets, 'router'), (c) => {
    c.controlPlaneUrl = cp.url;
    c.router.listen = { host: '127.0.0.1', port: 0 };
    c.router.batch = { dataDir: join(dir, 'batch') };
    c.agents = [];
    c.simulators = [];
  });
  // The router's env file: REDIS_URL with the password (compose host `redis` -> this test's Redis).
  router = await start('router', ['cli/main.ts', 'router', '--config', routerConfig], {
    REDIS_URL: redisUrl.replace('@redis:6379', `@127.0.0.1:${redisPort}`),
  });
});

after(async () => {
  await Promise.all([...procs].reverse().map((p) => p.stop(5_000)));
  if (redis && redis.exitCode === null) {
    redis.kill('SIGTERM');
    await once(redis, 'exit');
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const admin = (method: string, path: string, body?: object, token = adminToken) =>
  fetch(`${cp.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });

const chat = (key?: string) =>
  fetch(`${router.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(key ? { authorization: `Bearer ${key}` } : {}) },
    body: JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'hi' }], max_tokens: 4 }),
  });

test(
  'the shipped sim config serves with tenant keys, node tokens and mutual TLS (credentials from the shipped scripts)',
  { skip, timeout: 180_000 },
  async (t) => {
    try {
      // Agents registered with their node tokens (the control plane knows both).
      await waitFor(
        async () => {
          const res = await admin('GET', '/v1/nodes');
          const nodes = ((await res.json()) as { data?: { id: string }[] }).data ?? [];
          return ['gpu-a', 'gpu-b'].every((id) => nodes.some((n) => n.id === id));
        },
        60_000,
        200,
      );
      // No key: refused.
      const anon = await chat();
      assert.equal(anon.status, 401);
      // A tenant and a key from the admin API; the router learns it through its router-token watch.
      const tenant = (await (
        await admin('POST', '/v1/admin/tenants', { name: 'shipped', policy: { rpm: 10_000, tpm: 10_000_000, maxConcurrent: 50 } })
      ).json()) as { id: string };
      const key = (await (await admin('POST', `/v1/admin/tenants/${tenant.id}/keys`, { name: 'k' })).json()) as { key: string };
      assert.match(key.key, /^sk-icp-/);
      // Served by an agent: router -> agent over mTLS (agents accept nothing else).
      const res = await waitFor(
        async () => {
          const r = await chat(key.key);
          return r.status === 200 ? r : undefined;
        },
        60_000,
        250,
      );
      assert.ok(res);
      assert.match(res.headers.get('x-backend') ?? '', /^node:gpu-[ab]$/);
      const body = (await res.json()) as { choices: unknown[] };
      assert.equal(body.choices.length, 1);
      // Drain and Resume reach the agent over mTLS as CN control-plane (the identity agents accept them from).
      const drained = await admin('POST', '/v1/nodes/gpu-a/drain', {});
      assert.equal(drained.status, 200, await drained.clone().text());
      assert.equal(((await drained.json()) as { agent: { draining: boolean } }).agent.draining, true);
      const resumed = await admin('POST', '/v1/nodes/gpu-a/resume', {});
      assert.equal(resumed.status, 200, await resumed.clone().text());
      assert.equal(((await resumed.json()) as { agent: { draining: boolean } }).agent.draining, false);
      // ... and the router's credential cannot drain (operators only).
      assert.ok([401, 403].includes((await admin('POST', '/v1/nodes/gpu-b/drain', {}, routerToken)).status));
      // The router's credential is not an operator's.
      const asRouter = (await admin('GET', '/v1/admin/tenants', undefined, routerToken)).status;
      assert.ok([401, 403].includes(asRouter), String(asRouter));
      t.diagnostic(`no key -> ${anon.status}; router token on the admin API -> ${asRouter}`);
      // Tenants are in the state file (the compose named volume / k8s PVC).
      const stateFile = join(dir, 'state/state.json');
      assert.ok(existsSync(stateFile), 'controlPlane.stateFile written');
      assert.ok(readFileSync(stateFile, 'utf8').includes(tenant.id));
      assert.ok(!readFileSync(stateFile, 'utf8').includes(key.key), 'the state file holds key hashes, not keys');
      // Limits store down: the router refuses (onStoreError: closed) instead of serving unlimited
      // (a tenant with limits: one without any never consults the store).
      redis!.kill('SIGKILL');
      await once(redis!, 'exit');
      const killedAt = Date.now();
      const answers: string[] = [];
      const closed = await waitFor(
        async () => {
          const r = await chat(key.key);
          answers.push(`${r.status} ${(await r.text()).slice(0, 160)}`);
          return r.status >= 500 ? r : undefined;
        },
        20_000,
        200,
      ).catch((err: Error) => {
        throw new Error(`${err.message}; answers: ${[...new Set(answers)].slice(0, 4).join(' | ')}`);
      });
      assert.equal(closed?.status, 503, answers.at(-1));
      t.diagnostic(
        `Redis down -> first 503 after ${Date.now() - killedAt} ms (${answers.length} requests): ${answers.at(-1)?.slice(0, 160)}`,
      );
    } catch (err) {
      console.error(logs.slice(-60).join('\n'));
      throw err;
    }
  },
);
