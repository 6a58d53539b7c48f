// Cold start to /readyz and idle RSS of the router and the agent: TypeScript through tsx on the
// machine's old Node (how production ran before) against the compiled dist/ on the pinned Node
// (how it runs now), alternating the two, several runs each; medians and min-max.
// Baseline Node: ICP_BASELINE_NODE, else /usr/bin/node (Node 20 on these machines).
// Setup not measured: one simulated engine and one control plane, started once.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { REPO_ROOT, spawnService } from '../../cli/spawn-service.ts';
import { freePort } from '../helpers/ports.ts';
import { percentile, printTable, writeResults } from './report.ts';
import { credentialEnv } from '../../cli/credentials.ts';
import { generateSecret } from '../../common/credentials.ts';

const RUNS = Number(process.env.STARTUP_RUNS ?? 5);
const IDLE_MS = 3_000;
const baselineNode = process.env.ICP_BASELINE_NODE ?? '/usr/bin/node';
const version = (bin: string) => execFileSync(bin, ['--version'], { encoding: 'utf8' }).trim();

interface Variant {
  name: string;
  node: string;
  argv: string[];
  freshTmp?: boolean;
}
const variants: Variant[] = [
  { name: `tsx on ${version(baselineNode)}`, node: baselineNode, argv: ['--import', 'tsx', 'cli/main.ts'] },
  // A new Kubernetes pod: /tmp is an empty emptyDir, so tsx's transform cache starts cold.
  { name: `tsx on ${version(baselineNode)}, empty /tmp`, node: baselineNode, argv: ['--import', 'tsx', 'cli/main.ts'], freshTmp: true },
  { name: `compiled on ${process.version}`, node: process.execPath, argv: ['dist/cli/main.js'] },
];

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

/** Resident memory of a process and its children (tsx's esbuild service is a child). */
function treeRssMiB(pid: number): number {
  let total = rssMiB(pid);
  const children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim();
  for (const c of children ? children.split(/\s+/) : []) total += treeRssMiB(Number(c));
  return total;
}

async function untilReady(url: string, child: ChildProcess, limitMs = 120_000): Promise<number> {
  const t0 = performance.now();
  while (performance.now() - t0 < limitMs) {
    if (child.exitCode !== null) throw new Error(`exited ${child.exitCode} before ready`);
    try {
      if ((await fetch(url)).status === 200) return performance.now() - t0;
    } catch {
      /* not listening yet */
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`${url} not ready within ${limitMs} ms`);
}

async function main(): Promise<void> {
  if (!existsSync(join(REPO_ROOT, 'dist/cli/main.js')))
    execFileSync(process.execPath, [join(REPO_ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'], {
      cwd: REPO_ROOT,
      stdio: 'inherit',
    });
  const dir = mkdtempSync(join(tmpdir(), 'icp-startup-'));
  const [cp, sim] = await Promise.all([freePort(), freePort()]);
  const base = {
    controlPlaneUrl: `http://127.0.0.1:${cp}`,
    controlPlane: { listen: { port: cp }, capacity: { enabled: false }, shadow: { store: { path: join(dir, 'shadow') } } },
  };
  const baseFile = join(dir, 'base.yaml');
  writeFileSync(baseFile, stringify(base));
  const engine = await spawnService({
    name: 'sim',
    entry: 'test/sim/vllm/main.ts',
    args: ['--port', String(sim), '--model', 'sim-startup'],
  });
  // Each process with only its own credential, as `npm start` gives them.
  const creds = credentialEnv({ adminToken: generateSecret(), routerToken: generateSecret(), nodeSecret: generateSecret() });
  const plane = await spawnService({
    name: 'control-plane',
    entry: 'cli/main.ts',
    args: ['control-plane', '--config', baseFile],
    compiled: true,
    env: creds.controlPlane,
  });
  const samples = new Map<string, { readyMs: number[]; rssMiB: number[] }>();
  try {
    for (let run = 0; run < RUNS; run++) {
      for (const v of run % 2 === 0 ? variants : [...variants].reverse()) {
        const tmp = v.freshTmp ? mkdtempSync(join(dir, 'tmp-')) : undefined;
        for (const service of ['router', 'node-agent'] as const) {
          const [port, http] = await Promise.all([freePort(), freePort()]);
          const file = join(dir, `${service}-${run}.yaml`);
          const id = `bench-${run}-${variants.indexOf(v)}`;
          writeFileSync(
            file,
            stringify({
              ...base,
              router: { listen: { port } },
              agents: [{ id, listen: { port }, httpListen: { host: '127.0.0.1', port: http }, engine: { url: `http://127.0.0.1:${sim}` } }],
            }),
          );
          const args = service === 'router' ? ['router', '--config', file] : ['node-agent', '--id', id, '--config', file];
          const child = spawn(v.node, [...v.argv, ...args], {
            cwd: REPO_ROOT,
            stdio: 'ignore',
            env: {
              ...process.env,
              LOG_LEVEL: 'warn',
              ...(service === 'router' ? creds.router : creds.agent(id)),
              ...(tmp ? { TMPDIR: tmp } : {}),
            },
          });
          try {
            const readyMs = await untilReady(`http://127.0.0.1:${service === 'router' ? port : http}/readyz`, child);
            await new Promise((r) => setTimeout(r, IDLE_MS));
            const key = `${service}|${v.name}`;
            const s = samples.get(key) ?? { readyMs: [], rssMiB: [] };
            s.readyMs.push(readyMs);
            s.rssMiB.push(treeRssMiB(child.pid!));
            samples.set(key, s);
          } finally {
            child.kill('SIGTERM');
            await new Promise((r) => (child.exitCode !== null ? r(undefined) : child.once('exit', r)));
          }
        }
      }
    }
  } finally {
    await plane.stop(5_000);
    await engine.stop(5_000);
    rmSync(dir, { recursive: true, force: true });
  }
  const rows = [...samples].map(([key, s]) => {
    const [service, variant] = key.split('|');
    return {
      service,
      variant,
      runs: s.readyMs.length,
      ready_p50_ms: Math.round(percentile(s.readyMs, 50)),
      ready_min_ms: Math.round(Math.min(...s.readyMs)),
      ready_max_ms: Math.round(Math.max(...s.readyMs)),
      idle_rss_p50_mib: Math.round(percentile(s.rssMiB, 50)),
      rss_min_mib: Math.round(Math.min(...s.rssMiB)),
      rss_max_mib: Math.round(Math.max(...s.rssMiB)),
    };
  });
  printTable(
    `cold start to /readyz and idle RSS (${IDLE_MS / 1000} s after ready, process + children), ${RUNS} runs each, alternating`,
    rows,
  );
  writeResults('startup', { runs: RUNS, idleMs: IDLE_MS, rows });
}

await main();
