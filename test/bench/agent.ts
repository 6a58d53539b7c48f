// Node agent cost: its CPU (share of one core) idle and with 200 concurrent streams through it,
// and the time of one nvidia-smi poll with the fake binary (CSV only, and CSV + XML).
// Usage: npx tsx test/bench/agent.ts   (BENCH_SECONDS per window, default 5)
import { readFileSync } from 'node:fs';
import { Pool } from 'undici';
import { startStack, waitFor, listModels, DEFAULT_MODEL } from '../helpers/stack.ts';
import { createFakeNvidiaSmi } from '../sim/nvidia-smi/control.ts';
import { GpuMonitor } from '../../node-agent/gpu/monitor.ts';
import { percentile, printTable, writeResults } from './report.ts';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const CLK_TCK = 100; // Linux USER_HZ

function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK; // utime + stime
}

async function cpuShare(pid: number, seconds: number): Promise<number> {
  const c0 = cpuSeconds(pid);
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  return (cpuSeconds(pid) - c0) / ((performance.now() - t0) / 1000);
}

async function pollTimes(withXml: boolean): Promise<number[]> {
  const smi = createFakeNvidiaSmi({ fixture: 'a10g-driver515.105.01.xml' });
  try {
    const m = new GpuMonitor({ nvidiaSmiPath: smi.path, env: smi.env, xmlIntervalMs: withXml ? 1 : 3_600_000 });
    await m.pollOnce(); // inventory + first XML
    const times: number[] = [];
    for (let i = 0; i < 10; i++) {
      const t = performance.now();
      await m.pollOnce();
      times.push(performance.now() - t);
    }
    m.stop();
    return times;
  } finally {
    smi.cleanup();
  }
}

export async function benchAgent(): Promise<Record<string, unknown>[]> {
  const rows: Record<string, unknown>[] = [];
  const simArgs = ['--max-num-seqs', '256', '--kv-cache-tokens', '1000000', '--decode-step-ms', '20', '--decode-step-ms-per-seq', '0'];
  const stack = await startStack({
    sims: [{ id: 'sim', args: simArgs }],
    agents: [{ id: 'gpu', sim: 'sim', extra: { scrapeIntervalMs: 500, heartbeatMs: 500 } }],
    withControlPlane: false,
    logLevel: 'error',
  });
  try {
    await waitFor(async () => (await listModels(stack.routerUrl)).includes(DEFAULT_MODEL), 20_000);
    const pid = stack.agents.get('gpu')!.child.pid!;
    rows.push({
      case: 'agent idle (scrape 500 ms, 1 router watching)',
      cpu_share_of_one_core: await cpuShare(pid, SECONDS),
      streams: 0,
      chunks_per_s: 0,
    });

    const pool = new Pool(stack.routerUrl, { connections: 200 });
    const body = JSON.stringify({
      model: DEFAULT_MODEL,
      messages: [{ role: 'user', content: 'a long story please' }],
      max_tokens: 64,
      stream: true,
    });
    let chunks = 0;
    let stop = false;
    const worker = async () => {
      while (!stop) {
        const res = await pool.request({
          path: '/v1/chat/completions',
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body,
        });
        for await (const piece of res.body) chunks += (piece.toString().match(/^data: /gm) ?? []).length;
      }
    };
    const workers = Array.from({ length: 200 }, worker);
    await new Promise((r) => setTimeout(r, 2_000)); // ramp up
    const c0 = chunks;
    const t0 = performance.now();
    const share = await cpuShare(pid, SECONDS);
    const rate = (chunks - c0) / ((performance.now() - t0) / 1000);
    stop = true;
    await Promise.all(workers);
    await pool.close();
    rows.push({ case: 'agent with 200 concurrent streams', cpu_share_of_one_core: share, streams: 200, chunks_per_s: rate });
  } finally {
    await stack.stop();
  }
  const csv = await pollTimes(false);
  const xml = await pollTimes(true);
  rows.push({
    case: 'nvidia-smi poll, fake binary, CSV only: p50 ms',
    cpu_share_of_one_core: NaN,
    streams: NaN,
    chunks_per_s: percentile(csv, 50),
  });
  rows.push({
    case: 'nvidia-smi poll, fake binary, CSV + XML: p50 ms',
    cpu_share_of_one_core: NaN,
    streams: NaN,
    chunks_per_s: percentile(xml, 50),
  });
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const rows = await benchAgent();
  printTable('node agent cost', rows);
  writeResults('agent', { seconds: SECONDS, rows });
}
