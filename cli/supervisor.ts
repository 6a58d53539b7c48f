// `npm start`: the whole stack on one machine. Starts the simulated engines, the control plane,
// the agents and the router as separate processes (the same commands operators run on real
// hosts), prints the endpoint, and on Ctrl-C stops them all, router first.
import type { Config } from './config.ts';
import { spawnService, type ServiceProcess } from './spawn-service.ts';
import { sleep } from '../common/process.ts';
import { credentialEnv, localCredentials } from './credentials.ts';

export async function runSupervisor(config: Config, configFile: string): Promise<void> {
  const children: ServiceProcess[] = [];
  let stopping = false;
  const verbose = Boolean(process.env.LOG_LEVEL);
  // Children log at warn unless LOG_LEVEL says otherwise: six processes at info drown the banner.
  const env = { LOG_LEVEL: process.env.LOG_LEVEL || 'warn' };
  const onLine = (name: string) => (line: string) => {
    if (!stopping || verbose) process.stdout.write(`[${name}] ${line}\n`);
  };

  const stopAll = async (code: number) => {
    if (stopping) return;
    stopping = true;
    process.stdout.write('\nstopping...\n');
    for (const c of [...children].reverse()) {
      const result = await c.stop(15_000);
      process.stdout.write(`  ${c.name} stopped (${result})\n`);
    }
    process.exit(code);
  };
  process.on('SIGINT', () => void stopAll(0));
  process.on('SIGTERM', () => void stopAll(0));

  // Secure by default even on a laptop: the control plane, the router and each agent prove
  // themselves with credentials made on first start (data/credentials, readable by this user only),
  // each process getting only its own.
  const creds = localCredentials(process.env.ICP_CREDENTIALS_DIR || 'data/credentials');
  const roleEnv = credentialEnv(creds);
  const start = async (name: string, entry: string, args: string[], ownEnv: Record<string, string> = {}) => {
    const proc = await spawnService({ name, entry, args, env: { ...env, ...ownEnv }, onLine: onLine(name) });
    children.push(proc);
    void proc.exited.then((result) => {
      if (!stopping) process.stdout.write(`[${name}] exited unexpectedly (${result}); the rest keeps running\n`);
    });
    process.stdout.write(`  ${name.padEnd(14)} ${proc.url}\n`);
    return proc;
  };

  try {
    process.stdout.write('starting the stack:\n');
    await Promise.all(
      config.simulators.map((s) =>
        start(s.id, 'test/sim/vllm/main.ts', [
          '--port',
          String(s.port),
          '--model',
          s.model,
          '--speed',
          String(s.speed),
          ...(s.maxNumSeqs ? ['--max-num-seqs', String(s.maxNumSeqs)] : []),
          ...(s.loadTimeMs !== undefined ? ['--load-time-ms', String(s.loadTimeMs)] : []),
        ]),
      ),
    );
    if (config.controlPlaneUrl)
      await start('control-plane', 'cli/main.ts', ['control-plane', '--config', configFile], roleEnv.controlPlane);
    await Promise.all(
      config.agents.map((a) => start(a.id, 'cli/main.ts', ['node-agent', '--id', a.id, '--config', configFile], roleEnv.agent(a.id))),
    );
    const router = await start('router', 'cli/main.ts', ['router', '--config', configFile], roleEnv.router);
    const model = await waitForModels(router.url, 60_000);
    const base = router.url.replace('127.0.0.1', 'localhost');
    process.stdout.write(`
OpenAI-compatible endpoint: ${base}/v1   (models: ${model.join(', ') || 'none ready yet'})

  curl ${base}/v1/chat/completions -H 'content-type: application/json' \\
    -d '{"model":"${model[0] ?? 'MODEL'}","messages":[{"role":"user","content":"Hello!"}]}'

  OpenAI SDK: new OpenAI({ baseURL: '${base}/v1', apiKey: 'unused' })
${
  creds.created
    ? `
Admin token (made now, shown once; kept in ${creds.dir}/admin.token):
  ${creds.adminToken}
  export ICP_ADMIN_TOKEN=$(cat ${creds.dir}/admin.token)   # for npm run admin, the dashboard, /v1/nodes
`
    : `
Admin token: ${creds.dir}/admin.token   (npm run admin, the dashboard, /v1/nodes)
`
}
Ctrl-C stops everything.
`);
  } catch (err) {
    process.stderr.write(`failed to start: ${(err as Error).message}\n`);
    await stopAll(1);
  }
}

async function waitForModels(routerUrl: string, timeoutMs: number): Promise<string[]> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    try {
      const res = await fetch(`${routerUrl}/v1/models`);
      const body = (await res.json()) as { data: { id: string; owned_by: string }[] };
      // Ready when a GPU-pool model is served (the router's own embedders are there at once).
      if (body.data.some((m) => m.owned_by === 'gpu-pool')) return body.data.map((m) => m.id);
    } catch {
      // not up yet
    }
    await sleep(200);
  }
  return [];
}
