// The headline batch test: 1,000 items, 5% failing deterministically (2.5% unknown model: 404,
// error file at once; 2.5% a simulator 500 keyed on the prompt: retried, then dead-lettered),
// run by two router replicas sharing Redis; one is SIGKILLed mid-run and restarted. Every
// custom_id ends in the output or the error file exactly once, the dead-letter list holds exactly
// the 5xx items. Then the embedded default (file store, one router): SIGKILL mid-run, restart,
// the same exactly-once count.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import OpenAI, { toFile } from 'openai';
import { startStack, waitFor, setSimFaults, DEFAULT_MODEL, type Stack } from '../../helpers/stack.ts';
import { startRedis, type RedisProcess } from '../../helpers/redis.ts';
import { spawnService, type ServiceProcess } from '../../../cli/spawn-service.ts';
import { tokenSha256 } from '../../../common/credentials.ts';

const ADMIN_TOKEN = `admin-${Math.random().toString(36).slice(2)}`;
const FAULT = 'FAIL-WITH-500';
const BATCH = { pollMs: 30, leaseMs: 1_500, concurrencyPerJob: 16, retryBaseMs: 20, retryMaxMs: 200, maxAttempts: 2, yieldMs: 20 };

function requests(n: number): { text: string; bad: Set<string>; faulty: Set<string> } {
  const bad = new Set<string>();
  const faulty = new Set<string>();
  const lines: string[] = [];
  for (let i = 0; i < n; i++) {
    const id = `item-${i}`;
    // Every 20th item fails: half of them with an unknown model, half with the simulator's 500.
    const kind = i % 20 === 7 ? 'bad' : i % 20 === 13 ? 'fault' : 'ok';
    if (kind === 'bad') bad.add(id);
    if (kind === 'fault') faulty.add(id);
    lines.push(
      JSON.stringify({
        custom_id: id,
        method: 'POST',
        url: '/v1/chat/completions',
        body: {
          model: kind === 'bad' ? 'no-such-model' : DEFAULT_MODEL,
          messages: [{ role: 'user', content: kind === 'fault' ? `${FAULT} ${i}` : `item ${i}` }],
          max_tokens: 4,
        },
      }),
    );
  }
  return { text: lines.join('\n') + '\n', bad, faulty };
}

interface Line {
  custom_id: string;
  response: { status_code: number } | null;
  error: unknown;
}
const lines = async (c: OpenAI, id: string | null | undefined): Promise<Line[]> =>
  id
    ? (await (await c.files.content(id)).text())
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as Line)
    : [];

describe('batch: 1,000 items, a router SIGKILLed mid-run, every item exactly once', () => {
  let redis: RedisProcess;
  let stack: Stack;
  const extra: ServiceProcess[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'icp-batch-restart-'));

  const startRouter = async (configFile: string, name: string) => {
    const p = await spawnService({
      name,
      entry: 'cli/main.ts',
      args: ['router', '--config', configFile],
      env: { LOG_LEVEL: 'warn', ICP_ROUTER_TOKEN: stack.credentials.routerToken, ICP_ADMIN_TOKEN_SHA256: tokenSha256(ADMIN_TOKEN) },
      onLine: (l) => stack.logs.push(`[${name}] ${l}`),
    });
    extra.push(p);
    return p;
  };
  const progress = async (c: OpenAI, id: string) => {
    const b = await c.batches.retrieve(id);
    return b.request_counts!.completed + b.request_counts!.failed;
  };
  const until = async (c: OpenAI, id: string, status: string, ms: number) => {
    let last: OpenAI.Batch | undefined;
    await waitFor(async () => (last = await c.batches.retrieve(id)).status === status, ms, 200);
    return last!;
  };
  const checkExactlyOnce = async (c: OpenAI, b: OpenAI.Batch, n: number, bad: Set<string>, faulty: Set<string>) => {
    const out = await lines(c, b.output_file_id);
    const errs = await lines(c, b.error_file_id);
    const seen = new Map<string, number>();
    for (const l of [...out, ...errs]) seen.set(l.custom_id, (seen.get(l.custom_id) ?? 0) + 1);
    assert.equal(seen.size, n, 'every custom_id is there');
    assert.deepEqual(
      [...seen.values()].filter((v) => v !== 1),
      [],
      'each exactly once',
    );
    assert.equal(out.length + errs.length, n);
    assert.ok(out.every((l) => l.response?.status_code === 200 && !bad.has(l.custom_id) && !faulty.has(l.custom_id)));
    assert.deepEqual(new Set(errs.map((l) => l.custom_id)), new Set([...bad, ...faulty]));
    assert.deepEqual(b.request_counts, { total: n, completed: n - bad.size - faulty.size, failed: bad.size + faulty.size });
  };

  before(async () => {
    redis = await startRedis();
    process.env.ICP_ADMIN_TOKEN = ADMIN_TOKEN;
    stack = await startStack({
      sims: [{ id: 'a', args: ['--max-num-seqs', '128', '--decode-step-ms', '2', '--decode-step-ms-per-seq', '0'] }],
      agents: [{ id: 'gpu-a', sim: 'a' }],
      router: { fallback: { breaker: { nodes: false } }, batch: { ...BATCH, redisUrl: redis.url } },
    });
    await setSimFaults(stack.sims.get('a')!.url, { http5xxWhenBodyContains: FAULT });
    await waitFor(
      async () => ((await (await fetch(`${stack.routerUrl}/v1/models`)).json()) as { data: unknown[] }).data.length >= 1,
      20_000,
    );
  });

  after(async () => {
    delete process.env.ICP_ADMIN_TOKEN;
    await Promise.all(extra.map((p) => p.stop(3_000)));
    await stack?.stop();
    await redis?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('two replicas on Redis, one killed and restarted', async () => {
    const second = await startRouter(stack.configFile, 'router-2');
    const a = new OpenAI({ baseURL: `${stack.routerUrl}/v1`, apiKey: 'unused', maxRetries: 0 });
    const b = new OpenAI({ baseURL: `${second.url}/v1`, apiKey: 'unused', maxRetries: 0 });
    const { text, bad, faulty } = requests(1_000);
    const file = await a.files.create({ file: await toFile(Buffer.from(text), 'thousand.jsonl'), purpose: 'batch' });
    const batch = await a.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' });

    await waitFor(async () => (await progress(b, batch.id)) >= 250, 60_000, 100);
    stack.router.kill('SIGKILL');
    await stack.router.exited;
    const killedAt = await progress(b, batch.id);
    assert.ok(killedAt < 1_000, `killed mid-run (${killedAt} done)`);
    const restarted = await startRouter(stack.configFile, 'router-1-restarted');

    const done = await until(b, batch.id, 'completed', 90_000);
    await checkExactlyOnce(b, done, 1_000, bad, faulty);
    // The restarted replica sees the same job and files (Redis), and the same dead letters.
    const c = new OpenAI({ baseURL: `${restarted.url}/v1`, apiKey: 'unused', maxRetries: 0 });
    assert.equal((await c.batches.retrieve(batch.id)).output_file_id, done.output_file_id);
    const dead = (await (
      await fetch(`${restarted.url}/v1/admin/batches/${batch.id}/dead_letters`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })
    ).json()) as { data: { custom_id: string; attempts: number }[] };
    assert.deepEqual(new Set(dead.data.map((d) => d.custom_id)), faulty);
    assert.ok(dead.data.every((d) => d.attempts === BATCH.maxAttempts));
  });

  it('the embedded default (file store, one router) survives a SIGKILL too', async () => {
    const cfg = parse(readFileSync(stack.configFile, 'utf8')) as { router: { batch: Record<string, unknown> } };
    cfg.router.batch = { ...BATCH, dataDir: join(dir, 'batch') };
    const fileCfg = join(dir, 'file-store.yaml');
    writeFileSync(fileCfg, stringify(cfg));
    let router = await startRouter(fileCfg, 'router-file');
    let c = new OpenAI({ baseURL: `${router.url}/v1`, apiKey: 'unused', maxRetries: 0 });
    const { text, bad, faulty } = requests(300);
    const file = await c.files.create({ file: await toFile(Buffer.from(text), 'three-hundred.jsonl'), purpose: 'batch' });
    const batch = await c.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' });
    await waitFor(async () => (await progress(c, batch.id)) >= 60, 60_000, 50);
    router.kill('SIGKILL');
    await router.exited;
    router = await startRouter(fileCfg, 'router-file-restarted');
    c = new OpenAI({ baseURL: `${router.url}/v1`, apiKey: 'unused', maxRetries: 0 });
    const done = await until(c, batch.id, 'completed', 60_000);
    await checkExactlyOnce(c, done, 300, bad, faulty);
  });
});
