// Scenario 3: the stateless and shared parts going away under load. Two routers (fixed ports,
// behind the load generator's modelled load balancer: it tries the next router when a connection
// is refused, and backs off while every router refuses), tenants with keys, limits in Redis.
// A restarted router first leaves the balancer's rotation, then gets SIGTERM, as a Kubernetes
// Service does with our router Deployment's preStop sleep (deploy/k8s/router.yaml): without it,
// a request racing onto an idle keep-alive connection just as the router closes it is reset
// unanswered (HTTP/1.1's keep-alive race; seen once in ~300 requests in CI).
//  - router-restart: one router gets SIGTERM (its in-flight streams finish), comes back on its port.
//  - rolling-restart: both routers, one after the other.
//  - control-plane-down: the control plane is SIGKILLed and comes back later on its port; the
//    routers keep serving from the last membership and tenant snapshot.
//  - redis-down: Redis killed and restarted on its port; limits fail open (onStoreError: open).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { startStack, DEFAULT_MODEL, waitFor, type Stack } from '../../helpers/stack.ts';
import { startRedis, type RedisProcess } from '../../helpers/redis.ts';
import { freePort } from '../../helpers/ports.ts';
import { spawnService, type ServiceProcess } from '../../../cli/spawn-service.ts';
import { runAdmin } from '../../../cli/admin.ts';
import { CrashWatch, modelNodes, phases, runPhase, waitServing } from '../harness.ts';
import { mergeResults, neverRecovered, type LoadTenant } from '../load.ts';
import { auditStack, chaosAudit } from '../secrets.ts';
import type { Scenario, ScenarioOptions, ScenarioResult } from '../types.ts';
import { sleep } from '../../../common/process.ts';

const ROUTER_TIMEOUT_MS = 8_000;
/** Every line the processes write is kept for the leak audit (secrets.ts). */
const MAX_LOG_LINES = 50_000;
const CLIENT_MARGIN_MS = 8_000;
/** The modelled preStop: how long a router is out of rotation before its SIGTERM. */
const PRESTOP_MS = 1_000;

export const routerControlPlaneRedis: Scenario = {
  name: 'router-cp-redis',
  description: 'router restart and rolling restart of two routers (SIGTERM), control plane down, Redis down and back',
  async run(opts: ScenarioOptions): Promise<ScenarioResult> {
    const crashes = new CrashWatch();
    const adminToken = `chaos-admin-${Math.random().toString(36).slice(2)}`;
    const hadToken = process.env.ICP_ADMIN_TOKEN;
    process.env.ICP_ADMIN_TOKEN = adminToken;
    chaosAudit.addSecret('router-cp-redis admin token', adminToken);
    let stack: Stack | undefined;
    let redis: RedisProcess | undefined;
    const routers: ServiceProcess[] = [];
    const stateDir = mkdtempSync(join(tmpdir(), 'chaos-cp-'));
    // The last lines of the processes this scenario starts itself, for a failed run.
    const logs: string[] = [];
    const keep = (name: string) => (line: string) => {
      logs.push(`[${name}] ${line}`);
      if (logs.length > MAX_LOG_LINES) logs.shift();
    };
    let controlPlane: ServiceProcess | undefined;
    try {
      redis = await startRedis();
      const cpPort = await freePort();
      const simArgs = ['--max-num-seqs', '64', '--decode-step-ms', '25', '--decode-step-ms-per-seq', '0'];
      stack = await startStack({
        sims: [
          { id: 'sim-a', args: simArgs },
          { id: 'sim-b', args: simArgs },
        ],
        agents: [
          { id: 'node-a', sim: 'sim-a' },
          { id: 'node-b', sim: 'sim-b' },
        ],
        // A fixed port and a state file: the control plane comes back where agents and routers look.
        controlPlane: { listen: { host: '127.0.0.1', port: cpPort }, stateFile: join(stateDir, 'control-plane.json') },
        maxLogLines: MAX_LOG_LINES,
        router: {
          requestTimeoutMs: ROUTER_TIMEOUT_MS,
          shutdownGraceMs: 15_000,
          auth: { mode: 'required', redisUrl: redis.url, onStoreError: 'open', commandTimeoutMs: 500 },
        },
      });
      const s = stack;
      const r = redis;
      crashes.watchStack(s);
      controlPlane = s.controlPlane;
      // The stack's own router (random port) is not behind the balancer: stop it to spare the CPU.
      crashes.expect(s.router);
      await s.router.stop(5_000);

      // Two routers on fixed ports, each from a copy of the stack's config.
      const base = parse(readFileSync(s.configFile, 'utf8')) as { router: { listen: { port: number } } };
      const ports = [await freePort(), await freePort()];
      const configs = ports.map((port, i) => {
        const file = join(s.dir, `router-${i}.yaml`);
        writeFileSync(file, stringify({ ...base, router: { ...base.router, listen: { host: '127.0.0.1', port } } }));
        return file;
      });
      const startRouter = async (i: number) => {
        const t0 = Date.now();
        const p = await spawnService({
          name: `router-${i}`,
          entry: 'cli/main.ts',
          args: ['router', '--config', configs[i]!],
          env: { LOG_LEVEL: 'warn', ICP_ROUTER_TOKEN: s.credentials.routerToken },
          timeoutMs: 120_000,
          onLine: keep(`router-${i}`),
        });
        console.error(`  router-${i} listening after ${Date.now() - t0} ms`);
        routers[i] = p;
        crashes.watch(p);
        return p;
      };
      await Promise.all([startRouter(0), startRouter(1)]);
      const targets = ports.map((p) => `http://127.0.0.1:${p}`);
      const inRotation = new Set(targets);

      const admin = async (...args: string[]) => {
        let text = '';
        const code = await runAdmin([...args, '--url', controlPlane!.url], (t) => (text += t + '\n'));
        if (code !== 0) throw new Error(`admin ${args.join(' ')}: ${text}`);
        return JSON.parse(text) as Record<string, unknown>;
      };
      const tenants: LoadTenant[] = [];
      for (const [name, policy] of [
        ['interactive', { maxLane: 'critical', rpm: 100_000 }],
        ['batch', { rpm: 100_000, maxConcurrent: 200 }],
      ] as const) {
        const t = await admin('tenants', 'create', '--name', name, '--policy', JSON.stringify(policy));
        const k = await admin('keys', 'create', String(t.id), '--name', 'chaos');
        tenants.push({ name, apiKey: String(k.key) });
        chaosAudit.addSecret(`router-cp-redis key of ${name}`, String(k.key));
      }
      for (const u of targets) {
        await waitServing(u, DEFAULT_MODEL, 60_000, tenants[0]!.apiKey);
        await waitFor(async () => (await modelNodes(u, DEFAULT_MODEL, 12, tenants[0]!.apiKey)) >= 2, 30_000, 200);
      }

      const load = {
        targets: () => targets.filter((t) => inRotation.has(t)),
        model: DEFAULT_MODEL,
        ratePerSec: 6,
        deadlineMs: ROUTER_TIMEOUT_MS,
        deadlineMarginMs: CLIENT_MARGIN_MS,
        tenants,
        lanes: ['critical', 'standard'] as ('critical' | 'standard')[],
        maxTokens: 16,
      };
      const timing = phases(opts, { baseMs: 2_000, faultMs: 0, afterMs: 4_000 });
      const restart = async (i: number) => {
        const old = routers[i]!;
        crashes.expect(old);
        // Out of the endpoints first (the preStop sleep); requests already on it still finish.
        inRotation.delete(targets[i]!);
        await sleep(PRESTOP_MS);
        const t0 = Date.now();
        const code = await old.stop(20_000);
        console.error(`  router-${i} stopped (${code}) after ${Date.now() - t0} ms`);
        await startRouter(i);
        await waitServing(targets[i]!, DEFAULT_MODEL, 60_000, tenants[0]!.apiKey);
        probeGenerations += 1; // the readiness probe's one generation is not load
        inRotation.add(targets[i]!);
      };
      let probeGenerations = 0;
      const takeProbes = () => {
        const n = probeGenerations;
        probeGenerations = 0;
        return n;
      };
      const parts: ScenarioResult[] = [];

      // One router restarted while the other serves; every connection it refuses goes to the other.
      parts.push(
        await runPhase({
          name: 'router-restart',
          load,
          timing,
          stack: s,
          inject: () => restart(0),
          clear: async () => undefined,
          extraGenerations: takeProbes,
        }),
      );
      parts.push(
        await runPhase({
          name: 'rolling-restart',
          load,
          timing,
          stack: s,
          extraGenerations: takeProbes,
          inject: async () => {
            await restart(0);
            await restart(1);
          },
          clear: async () => undefined,
        }),
      );
      // Control plane away for a minute in the soak (5 s in CI): routers keep the last snapshot.
      const cpDown = opts.mode === 'long' ? 60_000 : 5_000;
      parts.push(
        await runPhase({
          name: 'control-plane-down',
          load,
          timing: { ...timing, faultMs: cpDown },
          stack: s,
          inject: async () => {
            crashes.expect(controlPlane);
            controlPlane!.kill('SIGKILL');
            await controlPlane!.exited;
          },
          clear: async () => {
            controlPlane = await spawnService({
              name: 'control-plane',
              entry: 'cli/main.ts',
              args: ['control-plane', '--config', s.configFile],
              env: { LOG_LEVEL: 'warn', ICP_ROUTER_TOKEN: s.credentials.routerToken, ICP_NODE_SECRET: s.credentials.nodeSecret },
              timeoutMs: 120_000,
              onLine: keep('control-plane'),
            });
            crashes.watch(controlPlane);
          },
        }),
      );
      parts.push(
        await runPhase({
          name: 'redis-down',
          load,
          timing: { ...timing, faultMs: opts.mode === 'long' ? 30_000 : 4_000 },
          stack: s,
          inject: async () => {
            await r.stop();
          },
          clear: async () => {
            await r.restart();
          },
        }),
      );
      // After everything came back, the keys still work on both routers (nothing was forgotten).
      const violations = neverRecovered(parts);
      for (const u of targets) {
        const res = await fetch(`${u}/v1/chat/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${tenants[1]!.apiKey}` },
          body: JSON.stringify({ model: DEFAULT_MODEL, messages: [{ role: 'user', content: 'after' }], max_tokens: 1 }),
        });
        if (!res.ok) violations.push(`${u} refused a valid key after recovery: ${res.status} ${await res.text()}`);
      }
      const crashed = crashes.close();
      if (crashed.length || violations.length) console.error(logs.slice(-60).join('\n'));
      return { ...mergeResults('router-cp-redis', parts), crashed, ...(violations.length ? { violations } : {}) };
    } catch (err) {
      console.error(logs.slice(-60).join('\n'));
      throw err;
    } finally {
      crashes.close();
      // The routers this scenario started write to `logs`; the stack's own processes to stack.logs.
      if (logs.length >= MAX_LOG_LINES) chaosAudit.markTruncated('router-cp-redis routers');
      chaosAudit.addLines('router-cp-redis routers', logs);
      if (stack) await auditStack('router-cp-redis', stack, MAX_LOG_LINES);
      await Promise.all(routers.map((p) => p.stop(5_000)));
      if (controlPlane && controlPlane !== stack?.controlPlane) await controlPlane.stop(5_000);
      await stack?.stop();
      await redis?.stop();
      rmSync(stateDir, { recursive: true, force: true });
      if (hadToken === undefined) delete process.env.ICP_ADMIN_TOKEN;
      else process.env.ICP_ADMIN_TOKEN = hadToken;
    }
  },
};
