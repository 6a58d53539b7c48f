// Routing overhead (issue 18): the same requests sent straight to a simulated vLLM engine, through
// Portkey's gateway (@portkey-ai/gateway, default config, provider openai, custom host = the
// engine) and through router + agent (gRPC), in one run against one engine set to a tiny fixed
// latency, so the differences are the gateways' own cost. Concurrency 1 and 64, JSON (8 tokens)
// and streams (64 tokens, ignore_eos). Per cell: requests/s, latency and TTFT percentiles, and
// each process's CPU (utime+stime from /proc, read before and after the cell) per request and per
// streamed chunk. The issue's goals are printed as a pass/fail table; they are measured, not tuned.
// Usage: npm run bench -- routing   (BENCH_SECONDS per cell, default 4; BENCH_PROFILE=1 runs router,
// agent and Portkey under --cpu-prof into bench-results/profiles/ and prints their top self time).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Pool } from 'undici';
import { REPO_ROOT } from '../../cli/spawn-service.ts';
import { startStack, waitFor, listModels, DEFAULT_MODEL } from '../helpers/stack.ts';
import { freePort } from '../helpers/ports.ts';
import { percentile, printTable, writeResults } from './report.ts';
import { cpuDelta, cpuSnapshot, profilesIn, topSelfTime } from './proc-cpu.ts';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 4);
const WARMUP_MS = 500;
const JSON_TOKENS = 8;
const STREAM_TOKENS = 64;
const PROFILE = process.env.BENCH_PROFILE === '1';
const PROFILE_DIR = join(REPO_ROOT, 'bench-results', 'profiles');

const GOALS = {
  routerUsPerRequest: 250,
  routerUsPerChunk: 8,
  agentUsPerRequest: 150,
  agentUsPerChunk: 8,
  addedP50Ms: 1,
  addedP99Ms: 3,
  throughputRatio: 0.35,
};

type Target = 'direct' | 'portkey' | 'router';

interface Cell {
  requests: number;
  errors: number;
  rps: number;
  p50: number;
  p99: number;
  ttftP50: number;
  ttftP99: number;
  /** SSE data events the client got (the [DONE] line not counted). */
  chunks: number;
  cpuUs: Map<string, number>;
}

// A non-empty token in a chat chunk (the role-only first chunk has content "").
const CONTENT = /"content":"[^"]/;
const DATA_LINE = /^data:/gm;

/** One cell: warm-up (not counted), then SECONDS of closed-loop requests with CPU read around them. */
async function runCell(
  origin: string,
  path: string,
  headers: Record<string, string>,
  concurrency: number,
  stream: boolean,
  pids: Map<string, number>,
): Promise<Cell> {
  const pool = new Pool(origin, { connections: concurrency, pipelining: 1 });
  const body = JSON.stringify({
    model: DEFAULT_MODEL,
    messages: [{ role: 'user', content: 'benchmark prompt of a few words' }],
    max_tokens: stream ? STREAM_TOKENS : JSON_TOKENS,
    // Every stream is exactly STREAM_TOKENS long (the simulator otherwise stops at a random length).
    ignore_eos: true,
    stream,
    ...(stream ? { stream_options: { include_usage: true } } : {}),
  });
  const samples: string[] = [];
  const run = async (ms: number) => {
    const latencies: number[] = [];
    const ttfts: number[] = [];
    let errors = 0;
    let chunks = 0;
    const until = performance.now() + ms;
    const worker = async () => {
      while (performance.now() < until) {
        const t0 = performance.now();
        try {
          const res = await pool.request({ path, method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
          let text = '';
          let ttft = NaN;
          for await (const buf of res.body) {
            const s = (buf as Buffer).toString();
            if (stream && Number.isNaN(ttft) && CONTENT.test(s)) ttft = performance.now() - t0;
            text += s;
          }
          const ok = res.statusCode === 200 && (!stream || (text.includes('[DONE]') && !Number.isNaN(ttft)));
          if (!ok) {
            errors += 1;
            if (samples.length < 3) samples.push(`${res.statusCode} ${text.slice(-200).replace(/\s+/g, ' ')}`);
            continue;
          }
          latencies.push(performance.now() - t0);
          if (stream) {
            ttfts.push(ttft);
            chunks += (text.match(DATA_LINE)?.length ?? 0) - 1;
          }
        } catch (err) {
          errors += 1;
          if (samples.length < 3) samples.push(String(err));
        }
      }
    };
    const started = performance.now();
    // Workers start no request after `until` but finish those in flight, so the CPU read after
    // the cell covers exactly the requests counted.
    await Promise.all(Array.from({ length: concurrency }, worker));
    return { latencies, ttfts, errors, chunks, elapsed: (performance.now() - started) / 1000 };
  };
  try {
    await run(WARMUP_MS);
    const before = cpuSnapshot(pids);
    const r = await run(SECONDS * 1000);
    const cpuUs = cpuDelta(before, cpuSnapshot(pids));
    if (samples.length) console.error(`errors at ${origin}${path} c=${concurrency} stream=${stream}:\n  ${samples.join('\n  ')}`);
    return {
      requests: r.latencies.length,
      errors: r.errors,
      rps: r.latencies.length / r.elapsed,
      p50: percentile(r.latencies, 50),
      p99: percentile(r.latencies, 99),
      ttftP50: percentile(r.ttfts, 50),
      ttftP99: percentile(r.ttfts, 99),
      chunks: r.chunks,
      cpuUs,
    };
  } finally {
    await pool.close();
  }
}

// Portkey's server binds every interface (hono's serve() gets no hostname from its CLI); this
// preload makes a listen() with a port and no host bind loopback only.
const LOOPBACK_ONLY = `data:text/javascript,${encodeURIComponent(
  `import net from 'node:net';
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...a) {
  if (typeof a[0] === 'number' && (a[1] === undefined || typeof a[1] === 'function')) a.splice(1, a[1] === undefined ? 1 : 0, '127.0.0.1');
  return listen.apply(this, a);
};`,
)}`;

/** Portkey's gateway as its own process (its package's node server, build/start-server.js). */
async function startPortkey(env: Record<string, string>): Promise<{ url: string; child: ChildProcess; stop(): Promise<void> }> {
  const port = await freePort();
  const entry = join(REPO_ROOT, 'node_modules', '@portkey-ai', 'gateway', 'build', 'start-server.js');
  const child = spawn(process.execPath, ['--import', LOOPBACK_ONLY, entry, `--port=${port}`, '--headless'], {
    cwd: REPO_ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const tail: string[] = [];
  child.stderr!.on('data', (d: Buffer) => {
    tail.push(d.toString());
    if (tail.length > 20) tail.shift();
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(t);
  };
  try {
    await waitFor(async () => {
      if (child.exitCode !== null) throw new Error(`portkey exited (${child.exitCode}): ${tail.join('')}`);
      return (await fetch(`${url}/`)).ok;
    }, 30_000);
  } catch (err) {
    await stop();
    throw err;
  }
  return { url, child, stop };
}

const us = (cpu: Map<string, number>, name: string, per: number) => (per > 0 && cpu.has(name) ? cpu.get(name)! / per : NaN);

export async function benchRouting(): Promise<Record<string, unknown>> {
  const simArgs = [
    '--decode-step-ms',
    '0.2',
    '--decode-step-ms-per-seq',
    '0',
    '--prefill-ms-per-token',
    '0',
    '--max-num-seqs',
    '256',
    '--kv-cache-tokens',
    '1000000',
  ];
  const profileEnv = (name: string): Record<string, string> => {
    if (!PROFILE) return {};
    const dir = join(PROFILE_DIR, name);
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    return { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --cpu-prof --cpu-prof-dir=${dir}`.trim() };
  };
  const stack = await startStack({
    sims: [{ id: 'sim', args: simArgs }],
    agents: [{ id: 'gpu', sim: 'sim', env: profileEnv('agent') }],
    withControlPlane: false,
    logLevel: 'error',
    // ignore_eos is opt-in at the router (docs/request-fields.md): the streams must be 64 tokens.
    router: { requestFields: { extras: { vllm: ['ignore_eos'] } } },
    routerEnv: profileEnv('router'),
  });
  let portkey: Awaited<ReturnType<typeof startPortkey>> | undefined;
  const rows: Record<string, unknown>[] = [];
  const goals: Record<string, unknown>[] = [];
  try {
    portkey = await startPortkey(profileEnv('portkey'));
    await waitFor(async () => (await listModels(stack.routerUrl)).includes(DEFAULT_MODEL), 20_000);
    const sim = stack.sims.get('sim')!;
    const pids = new Map<string, number>([
      ['sim', sim.child.pid!],
      ['router', stack.router.child.pid!],
      ['agent', stack.agents.get('gpu')!.child.pid!],
      ['portkey', portkey.child.pid!],
    ]);
    const targets: Record<Target, { origin: string; path: string; headers: Record<string, string> }> = {
      direct: { origin: sim.url, path: '/v1/chat/completions', headers: {} },
      portkey: {
        origin: portkey.url,
        path: '/v1/chat/completions',
        headers: { 'x-portkey-provider': 'openai', 'x-portkey-custom-host': `${sim.url}/v1`, authorization: 'Bearer sim-unused' },
      },
      router: { origin: stack.routerUrl, path: '/v1/chat/completions', headers: {} },
    };
    // The gateway process whose cost a row is about (the agent is the router's second hop).
    const gatewayOf: Record<Target, string> = { direct: 'sim', portkey: 'portkey', router: 'router' };
    for (const stream of [false, true]) {
      for (const concurrency of [1, 64]) {
        const cells = new Map<Target, Cell>();
        for (const target of ['direct', 'portkey', 'router'] as const) {
          const t = targets[target];
          cells.set(target, await runCell(t.origin, t.path, t.headers, concurrency, stream, pids));
        }
        const direct = cells.get('direct')!;
        for (const [target, c] of cells) {
          rows.push({
            mode: stream ? 'stream' : 'json',
            c: concurrency,
            target,
            rps: c.rps,
            x_direct: c.rps / direct.rps,
            p50_ms: c.p50,
            p99_ms: c.p99,
            add_p50: c.p50 - direct.p50,
            add_p99: c.p99 - direct.p99,
            ttft_p50: stream ? c.ttftP50 : NaN,
            ttft_p99: stream ? c.ttftP99 : NaN,
            add_ttft50: stream ? c.ttftP50 - direct.ttftP50 : NaN,
            add_ttft99: stream ? c.ttftP99 - direct.ttftP99 : NaN,
            gw_us_req: target === 'direct' ? NaN : us(c.cpuUs, gatewayOf[target], c.requests),
            agent_us_req: target === 'router' ? us(c.cpuUs, 'agent', c.requests) : NaN,
            sim_us_req: us(c.cpuUs, 'sim', c.requests),
            chunks_req: stream ? c.chunks / c.requests : NaN,
            gw_us_chunk: stream && target !== 'direct' ? us(c.cpuUs, gatewayOf[target], c.chunks) : NaN,
            agent_us_chunk: stream && target === 'router' ? us(c.cpuUs, 'agent', c.chunks) : NaN,
            sim_us_chunk: stream ? us(c.cpuUs, 'sim', c.chunks) : NaN,
            n: c.requests,
            errors: c.errors,
          });
        }
        const routed = cells.get('router')!;
        const pk = cells.get('portkey')!;
        const mode = stream ? 'stream' : 'json';
        const goal = (name: string, measured: number, portkeyValue: number, limit: number, atLeast = false) =>
          goals.push({
            goal: name,
            cell: `${mode} c=${concurrency}`,
            router: measured,
            portkey: portkeyValue,
            limit: `${atLeast ? '>=' : '<='} ${limit}`,
            result: Number.isNaN(measured) ? 'n/a' : (atLeast ? measured >= limit : measured <= limit) ? 'pass' : 'FAIL',
          });
        if (!stream) {
          goal(
            'router CPU us/request',
            us(routed.cpuUs, 'router', routed.requests),
            us(pk.cpuUs, 'portkey', pk.requests),
            GOALS.routerUsPerRequest,
          );
          goal('agent CPU us/request', us(routed.cpuUs, 'agent', routed.requests), NaN, GOALS.agentUsPerRequest);
        } else {
          goal(
            'router CPU us/chunk',
            us(routed.cpuUs, 'router', routed.chunks),
            us(pk.cpuUs, 'portkey', pk.chunks),
            GOALS.routerUsPerChunk,
          );
          goal('agent CPU us/chunk', us(routed.cpuUs, 'agent', routed.chunks), NaN, GOALS.agentUsPerChunk);
        }
        if (concurrency === 1) {
          goal('added latency p50 ms', routed.p50 - direct.p50, pk.p50 - direct.p50, GOALS.addedP50Ms);
          goal('added latency p99 ms', routed.p99 - direct.p99, pk.p99 - direct.p99, GOALS.addedP99Ms);
          if (stream) {
            goal('added TTFT p50 ms', routed.ttftP50 - direct.ttftP50, pk.ttftP50 - direct.ttftP50, GOALS.addedP50Ms);
            goal('added TTFT p99 ms', routed.ttftP99 - direct.ttftP99, pk.ttftP99 - direct.ttftP99, GOALS.addedP99Ms);
          }
        } else {
          goal('throughput vs direct', routed.rps / direct.rps, pk.rps / direct.rps, GOALS.throughputRatio, true);
        }
      }
    }
  } finally {
    await portkey?.stop();
    await stack.stop();
  }
  // The profiles are written when each process exits (after stop above).
  const profiles: Record<string, unknown> = {};
  if (PROFILE) {
    for (const name of ['router', 'agent', 'portkey']) {
      const files = profilesIn(join(PROFILE_DIR, name));
      // The router and agent run through tsx, which may leave a second, tiny profile (its loader thread).
      const top = files.map((f) => ({ file: f, top: topSelfTime(f, 15) })).sort((a, b) => b.top.length - a.top.length)[0];
      profiles[name] = top ?? { file: null, top: [] };
    }
  }
  return { rows, goals, profiles };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { rows, goals, profiles } = await benchRouting();
  const title = `routing overhead: direct engine vs Portkey vs router + agent (${SECONDS} s cells, ${JSON_TOKENS}-token JSON, ${STREAM_TOKENS}-token streams${PROFILE ? ', under --cpu-prof: CPU figures inflated' : ''})`;
  printTable(title, rows as Record<string, unknown>[]);
  printTable('issue 18 goals (router + agent; Portkey beside it for reference)', goals as Record<string, unknown>[]);
  for (const [name, p] of Object.entries(profiles as Record<string, { file: string | null; top: Record<string, unknown>[] }>)) {
    printTable(`top self time: ${name} (${p.file ?? 'no profile written'})`, p.top);
  }
  writeResults('routing', {
    seconds: SECONDS,
    jsonTokens: JSON_TOKENS,
    streamTokens: STREAM_TOKENS,
    profiled: PROFILE,
    goalLimits: GOALS,
    rows,
    goals,
    profiles,
  });
}
