// Scenario 7: a real network fault between the router and one agent. The far node (simulator +
// agent) runs in its own network namespace, joined to the router's by a veth pair; the near node
// stays on loopback. Under load, the link to the far node is degraded in the kernel: `tc netem`
// delay and loss where the kernel has netem, otherwise what it has (a `tbf` bandwidth limit,
// which queues, plus random packet drop with nftables). Where namespaces cannot be made (not
// root, no `ip`, a sandbox that forbids it) the scenario says so in its notes and runs nothing:
// its row then has sent 0 and a note starting `not run on this machine:` (not a failure).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { spawnService, type ServiceProcess } from '../../../cli/spawn-service.ts';
import { INSECURE_OVERRIDE_ENV } from '../../../common/credentials.ts';
import { sleep } from '../../../common/process.ts';
import { DEFAULT_MODEL, waitFor } from '../../helpers/stack.ts';
import { CrashWatch, waitServing } from '../harness.ts';
import { chaosAudit } from '../secrets.ts';
import { startLoad, summarise, type ChaosRecord } from '../load.ts';
import type { Scenario, ScenarioOptions, ScenarioResult } from '../types.ts';

const NAME = 'network-fault';
const MAX_LOG_LINES = 200_000;

function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 10_000 });
}
function trySh(cmd: string, args: string[]): string | null {
  try {
    sh(cmd, args);
    return null;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    return (e.stderr || e.message).trim().split('\n')[0] ?? 'failed';
  }
}

/** The namespace plumbing; every step is undone by `down`, whatever got made. */
class NetNs {
  readonly ns: string;
  readonly hostIf: string;
  readonly nsIf: string;
  readonly hostIp: string;
  readonly nsIp: string;
  constructor() {
    const n = process.pid % 200;
    this.ns = `chaos${process.pid}`;
    this.hostIf = `vch${process.pid}`.slice(0, 15);
    this.nsIf = `vcn${process.pid}`.slice(0, 15);
    this.hostIp = `10.213.${n}.1`;
    this.nsIp = `10.213.${n}.2`;
  }
  up(): void {
    sh('ip', ['netns', 'add', this.ns]);
    sh('ip', ['link', 'add', this.hostIf, 'type', 'veth', 'peer', 'name', this.nsIf]);
    sh('ip', ['link', 'set', this.nsIf, 'netns', this.ns]);
    sh('ip', ['addr', 'add', `${this.hostIp}/30`, 'dev', this.hostIf]);
    sh('ip', ['link', 'set', this.hostIf, 'up']);
    this.exec('ip', ['addr', 'add', `${this.nsIp}/30`, 'dev', this.nsIf]);
    this.exec('ip', ['link', 'set', this.nsIf, 'up']);
    this.exec('ip', ['link', 'set', 'lo', 'up']);
  }
  exec(cmd: string, args: string[]): string {
    return sh('ip', ['netns', 'exec', this.ns, cmd, ...args]);
  }
  down(): void {
    trySh('ip', ['link', 'del', this.hostIf]);
    trySh('ip', ['netns', 'del', this.ns]);
  }
}

/** Why this machine cannot run the scenario, or null when it can. */
function unavailable(): string | null {
  if (process.platform !== 'linux') return `not Linux (${process.platform})`;
  if (process.getuid?.() !== 0) return 'not root: network namespaces and qdiscs need CAP_NET_ADMIN';
  for (const tool of ['ip', 'tc']) if (trySh('which', [tool]) !== null) return `\`${tool}\` is not installed`;
  const probe = `chaosprobe${process.pid}`;
  const err = trySh('ip', ['netns', 'add', probe]);
  trySh('ip', ['netns', 'del', probe]);
  return err ? `cannot create a network namespace: ${err}` : null;
}

type Fault = { kind: 'netem' | 'tbf+drop'; describe: string; apply(net: NetNs): void; clear(net: NetNs): void };

/** netem where the kernel has it; otherwise a bandwidth limit and random drop, which it may have. */
function chooseFault(net: NetNs): Fault | string {
  const netem = trySh('tc', ['qdisc', 'add', 'dev', net.hostIf, 'root', 'netem', 'delay', '1ms']);
  if (netem === null) {
    trySh('tc', ['qdisc', 'del', 'dev', net.hostIf, 'root']);
    return {
      kind: 'netem',
      describe: 'tc netem delay 150ms ±50ms, loss 10%, both directions',
      apply: (n) => {
        sh('tc', ['qdisc', 'add', 'dev', n.hostIf, 'root', 'netem', 'delay', '150ms', '50ms', 'loss', '10%']);
        n.exec('tc', ['qdisc', 'add', 'dev', n.nsIf, 'root', 'netem', 'delay', '150ms', '50ms', 'loss', '10%']);
      },
      clear: (n) => {
        trySh('tc', ['qdisc', 'del', 'dev', n.hostIf, 'root']);
        trySh('ip', ['netns', 'exec', n.ns, 'tc', 'qdisc', 'del', 'dev', n.nsIf, 'root']);
      },
    };
  }
  const tbf = trySh('tc', ['qdisc', 'add', 'dev', net.hostIf, 'root', 'tbf', 'rate', '1mbit', 'burst', '32kbit', 'latency', '400ms']);
  trySh('tc', ['qdisc', 'del', 'dev', net.hostIf, 'root']);
  const nft = trySh('which', ['nft']);
  if (tbf !== null || nft !== null) return `no usable fault: netem (${netem}), tbf (${tbf ?? 'ok'}), nft (${nft ?? 'ok'})`;
  return {
    kind: 'tbf+drop',
    describe: `tc netem is not in this kernel (${netem}); used tc tbf rate 256kbit (queueing up to 500 ms) and nftables random drop of 15% of packets, both directions`,
    apply: (n) => {
      sh('tc', ['qdisc', 'add', 'dev', n.hostIf, 'root', 'tbf', 'rate', '256kbit', 'burst', '16kbit', 'latency', '500ms']);
      n.exec('tc', ['qdisc', 'add', 'dev', n.nsIf, 'root', 'tbf', 'rate', '256kbit', 'burst', '16kbit', 'latency', '500ms']);
      n.exec('nft', [
        'add table inet chaos { chain in { type filter hook input priority 0; meta random & 2147483647 < 322122547 drop; }; chain out { type filter hook output priority 0; meta random & 2147483647 < 322122547 drop; }; }',
      ]);
    },
    clear: (n) => {
      trySh('tc', ['qdisc', 'del', 'dev', n.hostIf, 'root']);
      trySh('ip', ['netns', 'exec', n.ns, 'tc', 'qdisc', 'del', 'dev', n.nsIf, 'root']);
      trySh('ip', ['netns', 'exec', n.ns, 'nft', 'delete table inet chaos']);
    },
  };
}

/** The row of a run this machine cannot do; `NOT_RUN` starts its only note. */
export const NOT_RUN = 'not run on this machine:';

function skipped(note: string): ScenarioResult {
  return {
    scenario: NAME,
    sent: 0,
    completed: 0,
    typedErrors: {},
    lost: 0,
    duplicated: 0,
    p99Ms: 0,
    recoveryMs: null,
    notes: [`${NOT_RUN} ${note}`],
  };
}

export const networkFault: Scenario = {
  name: NAME,
  description:
    'kernel-level delay/loss (netem, else tbf + nftables drop) on a veth link between the router and one agent in its own network namespace',
  async run(opts: ScenarioOptions): Promise<ScenarioResult> {
    const why = unavailable();
    if (why) return skipped(why);
    const net = new NetNs();
    const dir = mkdtempSync(join(tmpdir(), 'chaos-net-'));
    const started: ServiceProcess[] = [];
    const logs: string[] = [];
    const crashes = new CrashWatch();
    let fault: Fault | string | undefined;
    try {
      net.up();
      fault = chooseFault(net);
      if (typeof fault === 'string') return skipped(fault);
      const start = async (name: string, entry: string, args: string[], inNs: boolean) => {
        const p = await spawnService({
          name,
          entry,
          args,
          // The far agent listens on the namespace's private address, reachable only from this
          // machine; the router dials it as a static node (no control plane to hand out call tokens).
          env: { LOG_LEVEL: 'info', ...(inNs ? { [INSECURE_OVERRIDE_ENV]: '1' } : {}) },
          prefix: inNs ? ['ip', 'netns', 'exec', net.ns] : undefined,
          onLine: (line) => {
            logs.push(`[${name}] ${line}`);
            if (logs.length > MAX_LOG_LINES) logs.shift();
          },
        });
        started.push(p);
        crashes.watch(p);
        return p;
      };
      const simArgs = [
        '--port',
        '0',
        '--model',
        DEFAULT_MODEL,
        '--max-num-seqs',
        '32',
        '--decode-step-ms',
        '20',
        '--decode-step-ms-per-seq',
        '0',
      ];
      const [simNear, simFar] = await Promise.all([
        start('sim-near', 'test/sim/vllm/main.ts', simArgs, false),
        start('sim-far', 'test/sim/vllm/main.ts', [...simArgs, '--host', net.nsIp], true),
      ]);
      const agent = (id: string, host: string, url: string) => ({
        id,
        listen: { host, port: 0 },
        engine: { kind: 'vllm', url, maxNumSeqs: 32 },
        scrapeIntervalMs: 200,
        heartbeatMs: 250,
      });
      const config: Record<string, unknown> = {
        router: { listen: { host: '127.0.0.1', port: 0 }, requestTimeoutMs: 8_000 },
        agents: [agent('node-near', '127.0.0.1', simNear.url), agent('node-far', net.nsIp, simFar.url)],
        logging: { level: 'info' },
      };
      const configFile = join(dir, 'config.yaml');
      writeFileSync(configFile, stringify(config));
      const [agentNear, agentFar] = await Promise.all([
        start('node-near', 'cli/main.ts', ['node-agent', '--id', 'node-near', '--config', configFile], false),
        start('node-far', 'cli/main.ts', ['node-agent', '--id', 'node-far', '--config', configFile], true),
      ]);
      (config.router as Record<string, unknown>).staticNodes = [
        { id: 'node-near', address: agentNear.url },
        { id: 'node-far', address: agentFar.url },
      ];
      writeFileSync(configFile, stringify(config));
      const router = await start('router', 'cli/main.ts', ['router', '--config', configFile], false);
      await waitServing(router.url, DEFAULT_MODEL);
      // Both nodes in use before the fault.
      await waitFor(
        async () => {
          await fetch(`${router.url}/v1/chat/completions`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ model: DEFAULT_MODEL, messages: [{ role: 'user', content: 'warm' }], max_tokens: 1 }),
          }).then((r) => r.arrayBuffer());
          const text = await (await fetch(`${router.url}/metrics`)).text();
          return text.includes('router_node_picks_total{node="node-far"}') && text.includes('router_node_picks_total{node="node-near"}');
        },
        30_000,
        50,
      );

      const f = opts.mode === 'long' ? 6 : 1;
      const timing = { baseMs: 3_000 * f, faultMs: 8_000 * f, afterMs: 6_000 * f };
      const load = startLoad({
        targets: [router.url],
        model: DEFAULT_MODEL,
        tenants: [{ name: 'net-a' }, { name: 'net-b' }],
        lanes: ['critical', 'standard'],
        ratePerSec: 8,
        deadlineMs: 8_000,
        maxTokens: 16,
        durationMs: timing.baseMs + timing.faultMs + timing.afterMs,
      });
      await sleep(timing.baseMs);
      const faultAt = Date.now();
      fault.apply(net);
      await sleep(timing.faultMs);
      fault.clear(net);
      const clearedAt = Date.now();
      const records: ChaosRecord[] = await load.done;
      const result = summarise(NAME, records, clearedAt);
      const by = (from: number, to: number, node: string) =>
        records.filter((r) => r.startedAt >= from && r.startedAt < to && r.backend === `node:${node}` && r.outcome.kind === 'completed')
          .length;
      const p99 = (from: number, to: number) => {
        const l = records
          .filter((r) => r.startedAt >= from && r.startedAt < to && r.outcome.kind === 'completed')
          .map((r) => r.endedAt - r.startedAt)
          .sort((a, b) => a - b);
        return l.length ? l[Math.ceil(0.99 * l.length) - 1]! : 0;
      };
      const t0 = records.reduce((m, r) => Math.min(m, r.startedAt), Infinity);
      return {
        ...result,
        extra: {
          ...result.extra,
          fault: fault.kind,
          farServedBefore: by(t0, faultAt, 'node-far'),
          nearServedBefore: by(t0, faultAt, 'node-near'),
          farServedDuring: by(faultAt, clearedAt, 'node-far'),
          nearServedDuring: by(faultAt, clearedAt, 'node-near'),
          farServedAfter: by(clearedAt, Infinity, 'node-far'),
          p99BeforeMs: p99(t0, faultAt),
          p99DuringMs: p99(faultAt, clearedAt),
          p99AfterMs: p99(clearedAt, Infinity),
        },
        notes: [...(result.notes ?? []), `fault: ${fault.describe}`],
        crashed: crashes.close(),
      };
    } finally {
      crashes.close();
      if (typeof fault === 'object') fault.clear(net);
      chaosAudit.addLines(`${NAME} logs`, logs);
      await Promise.all([...started].reverse().map((p) => p.stop(5_000)));
      net.down();
      rmSync(dir, { recursive: true, force: true });
    }
  },
};
