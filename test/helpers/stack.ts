// Starts the real processes on loopback with random ports (simulated vLLM engines, control
// plane, agents, router) from a generated config file, and tears them all down. Integration,
// e2e and bench code build on this.
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { spawnService, type ServiceProcess } from '../../cli/spawn-service.ts';
import { sleep } from '../../common/process.ts';
import { generateSecret, mintNodeToken, tokenSha256 } from '../../common/credentials.ts';

export interface SimSpec {
  id: string;
  /** Which engine the simulator imitates (default vllm); its agent gets the same engine.kind. */
  kind?: 'vllm' | 'tgi';
  model?: string;
  args?: string[];
}

export interface AgentSpec {
  id: string;
  /** Which simulator this agent fronts. */
  sim: string;
  extra?: Record<string, unknown>;
  /** Extra fields of the agent's `engine` section (e.g. maxNumSeqs), merged over kind and url. */
  engine?: Record<string, unknown>;
  /** Extra environment for this agent's process (e.g. the fake nvidia-smi's state file). */
  env?: Record<string, string>;
}

/** A simulated hosted provider (test/sim/providers): OpenAI, Azure OpenAI and Anthropic routes. */
export interface ProviderSimSpec {
  id: string;
  /** The key it accepts (given to it through its environment, never as an argument). */
  apiKey: string;
  args?: string[];
}

export interface StackSpec {
  sims: SimSpec[];
  agents: AgentSpec[];
  withControlPlane?: boolean;
  /** The router section; a function receives the provider simulators (for their URLs). */
  router?: Record<string, unknown> | ((ctx: { providerSims: Map<string, ServiceProcess> }) => Record<string, unknown>);
  providerSims?: ProviderSimSpec[];
  /** Extra environment for the router process (provider credentials). */
  routerEnv?: Record<string, string>;
  /** Agents get node tokens (and so check their callers' tokens); default: when there is a control plane. */
  agentTokens?: boolean;
  /** Extra environment for the control plane process. */
  controlPlaneEnv?: Record<string, string>;
  /** Output lines kept in `logs` (default 2000). */
  maxLogLines?: number;
  controlPlane?: Record<string, unknown>;
  logLevel?: string;
  /** Extra top-level config sections (e.g. `telemetry`, `logging`), merged over the defaults. */
  config?: Record<string, unknown>;
}

export interface Stack {
  dir: string;
  /** This stack's own credentials (made per stack): what its router and agents prove themselves with. */
  credentials: { routerToken: string; nodeSecret: string; nodeToken(id: string): string };
  configFile: string;
  sims: Map<string, ServiceProcess>;
  providerSims: Map<string, ServiceProcess>;
  agents: Map<string, ServiceProcess>;
  controlPlane: ServiceProcess | undefined;
  router: ServiceProcess;
  routerUrl: string;
  /** Output lines of every process, for debugging a failed test. */
  logs: string[];
  startAgent(id: string): Promise<ServiceProcess>;
  stop(): Promise<void>;
}

export const DEFAULT_MODEL = 'sim-model';

export async function startStack(spec: StackSpec): Promise<Stack> {
  const dir = mkdtempSync(join(tmpdir(), 'icp-stack-'));
  const configFile = join(dir, 'config.yaml');
  const logs: string[] = [];
  const started: ServiceProcess[] = [];
  const env = { LOG_LEVEL: spec.logLevel ?? 'warn' };
  const onLine = (name: string) => (line: string) => {
    logs.push(`[${name}] ${line}`);
    if (logs.length > (spec.maxLogLines ?? 2_000)) logs.shift();
  };
  // Every stack has its own router token and node secret, each process only its own credential
  // (as `npm start` does); the admin token is the test's (ICP_ADMIN_TOKEN in its environment).
  const credentials = {
    routerToken: generateSecret('icpr'),
    nodeSecret: generateSecret('icps'),
    nodeToken: (id: string) => mintNodeToken(credentials.nodeSecret, id),
  };
  const adminToken = spec.routerEnv?.ICP_ADMIN_TOKEN ?? process.env.ICP_ADMIN_TOKEN;
  const start = async (name: string, entry: string, args: string[], extraEnv: Record<string, string> = {}) => {
    const p = await spawnService({ name, entry, args, env: { ...env, ...extraEnv }, onLine: onLine(name) });
    started.push(p);
    return p;
  };

  try {
    const sims = new Map<string, ServiceProcess>();
    await Promise.all(
      spec.sims.map(async (s) => {
        sims.set(
          s.id,
          await start(s.id, `test/sim/${s.kind ?? 'vllm'}/main.ts`, [
            '--port',
            '0',
            '--model',
            s.model ?? DEFAULT_MODEL,
            ...(s.args ?? []),
          ]),
        );
      }),
    );

    const providerSims = new Map<string, ServiceProcess>();
    await Promise.all(
      (spec.providerSims ?? []).map(async (p) => {
        providerSims.set(
          p.id,
          await start(p.id, 'test/sim/providers/main.ts', ['--port', '0', ...(p.args ?? [])], { SIM_PROVIDER_API_KEY: p.apiKey }),
        );
      }),
    );
    const routerSection = typeof spec.router === 'function' ? spec.router({ providerSims }) : spec.router;

    const config: Record<string, unknown> = {
      // Each stack keeps its capacity history in its own temp dir, never in the checkout's data/.
      controlPlane: {
        listen: { host: '127.0.0.1', port: 0 },
        capacity: { store: { path: join(dir, 'capacity') } },
        shadow: { store: { path: join(dir, 'shadow') } },
        ...spec.controlPlane,
      },
      // ... and its batch files and jobs (router.batch.dataDir) too.
      router: {
        listen: { host: '127.0.0.1', port: 0 },
        ...routerSection,
        batch: { dataDir: join(dir, 'batch'), ...(routerSection?.batch as Record<string, unknown> | undefined) },
      },
      agents: spec.agents.map((a) => ({
        id: a.id,
        listen: { host: '127.0.0.1', port: 0 },
        engine: { kind: spec.sims.find((s) => s.id === a.sim)?.kind ?? 'vllm', url: sims.get(a.sim)!.url, ...a.engine },
        scrapeIntervalMs: 200,
        heartbeatMs: 250,
        ...a.extra,
      })),
      logging: { level: spec.logLevel ?? 'warn' },
      ...spec.config,
    };
    const write = () => writeFileSync(configFile, stringify(config));

    let controlPlane: ServiceProcess | undefined;
    if (spec.withControlPlane !== false) {
      write();
      controlPlane = await start('control-plane', 'cli/main.ts', ['control-plane', '--config', configFile], {
        ICP_ROUTER_TOKEN: credentials.routerToken,
        ICP_NODE_SECRET: credentials.nodeSecret,
        ...spec.controlPlaneEnv,
      });
      config.controlPlaneUrl = controlPlane.url;
    }
    write();
    const agents = new Map<string, ServiceProcess>();
    const startAgent = async (id: string) => {
      const p = await start(id, 'cli/main.ts', ['node-agent', '--id', id, '--config', configFile], {
        // Static nodes (no control plane) get no call tokens: those agents check nothing, on loopback.
        ...((spec.agentTokens ?? spec.withControlPlane !== false) ? { ICP_NODE_TOKEN: credentials.nodeToken(id) } : {}),
        ...spec.agents.find((a) => a.id === id)?.env,
      });
      agents.set(id, p);
      return p;
    };
    await Promise.all(spec.agents.map((a) => startAgent(a.id)));
    if (spec.withControlPlane === false) {
      (config.router as Record<string, unknown>).staticNodes = spec.agents.map((a) => ({ id: a.id, address: agents.get(a.id)!.url }));
      write();
    }
    const router = await start('router', 'cli/main.ts', ['router', '--config', configFile], {
      ICP_ROUTER_TOKEN: credentials.routerToken,
      ...(adminToken ? { ICP_ADMIN_TOKEN_SHA256: tokenSha256(adminToken) } : {}),
      ...spec.routerEnv,
      // Never the admin token, even when the test's own environment has it: the router works without.
      ICP_ADMIN_TOKEN: '',
    });

    return {
      dir,
      credentials,
      configFile,
      sims,
      providerSims,
      agents,
      controlPlane,
      router,
      routerUrl: router.url,
      logs,
      startAgent,
      async stop() {
        await Promise.all([...started].reverse().map((p) => p.stop(5_000)));
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await Promise.all(started.map((p) => p.stop(2_000)));
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

/** The control plane's admin API as tests call it: the operator's token, JSON in and out; a non-2xx fails the test. */
export function adminApi(controlPlaneUrl: () => string, token: string) {
  return async (method: string, path: string, body?: object): Promise<Record<string, unknown>> => {
    const res = await fetch(`${controlPlaneUrl()}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    assert.ok(res.ok, `${method} ${path}: ${res.status}`);
    return (await res.json()) as Record<string, unknown>;
  };
}

/** Polls until `check` returns a truthy value or the time is up; returns the value. */
export async function waitFor<T>(check: () => Promise<T> | T, timeoutMs = 10_000, everyMs = 50): Promise<T> {
  const until = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < until) {
    try {
      const v = await check();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    await sleep(everyMs);
  }
  throw new Error(`condition not met within ${timeoutMs} ms${last ? `: ${(last as Error).message}` : ''}`);
}

export async function listModels(routerUrl: string): Promise<string[]> {
  const res = await fetch(`${routerUrl}/v1/models`);
  const body = (await res.json()) as { data: { id: string }[] };
  return body.data.map((m) => m.id);
}

/**
 * `owned_by` of a model in GET /v1/models: `gpu-pool` while a node serves it, `<provider>:<model>`
 * while only its fallback chain does (a chain model stays listed), undefined when not listed.
 */
export async function modelOwner(routerUrl: string, id: string): Promise<string | undefined> {
  const res = await fetch(`${routerUrl}/v1/models`);
  const body = (await res.json()) as { data: { id: string; owned_by: string }[] };
  return body.data.find((m) => m.id === id)?.owned_by;
}

export async function simState(simUrl: string): Promise<{ running: number; waiting: number; completed: number; aborted: number }> {
  const res = await fetch(`${simUrl}/sim/state`);
  return (await res.json()) as { running: number; waiting: number; completed: number; aborted: number };
}

export async function setSimFaults(simUrl: string, faults: Record<string, unknown>): Promise<void> {
  const res = await fetch(`${simUrl}/sim/faults`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(faults),
  });
  if (!res.ok) throw new Error(`setting faults failed: ${res.status}`);
}
