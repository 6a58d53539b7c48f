// Scenario 6: slow and vanishing clients, while steady load (openai SDK) runs beside them:
//  a. readers that stop reading a long stream (raw sockets paused after the first bytes): the
//     router's RSS must stay flat, and the requests must settle at their deadline;
//  b. a crowd of idle connections (1,000 short, 5,000 long) that never send a byte: the router
//     must keep serving the steady load;
//  c. a client that disconnects at every point: mid headers, mid body, right after the body,
//     right after the response headers, mid stream, mid JSON generation.
// Afterwards nothing may be left behind: no request in flight on the node, no queue slot, no
// concurrency lease (the limited tenant can again run exactly its maxConcurrent streams), and
// the engine must have aborted every sequence whose client left (simulator /sim/state).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type Socket } from 'node:net';
import OpenAI from 'openai';
import { startStack, simState, waitFor, DEFAULT_MODEL, type Stack } from '../../helpers/stack.ts';
import { sleep } from '../../../common/process.ts';
import { CrashWatch, waitServing } from '../harness.ts';
import { chaosAudit, auditStack, PROMPT_MARKER } from '../secrets.ts';
import { startLoad, summarise } from '../load.ts';
import { mb, sampleRss, scrape, sumOf } from '../probes.ts';
import type { Scenario, ScenarioOptions, ScenarioResult } from '../types.ts';

const NAME = 'slow-clients';
const ADMIN_TOKEN = 'adm-chaos-slow-clients-6c0f2a9e41d7';
const DEADLINE_MS = 6_000;
const MAX_CONCURRENT = 4;
const MAX_LOG_LINES = 500_000;

/** One raw HTTP/1.1 request, written by hand so it can be cut anywhere. */
function rawRequest(body: object, key: string): { head: string; body: string } {
  const b = JSON.stringify(body);
  return {
    head: `POST /v1/chat/completions HTTP/1.1\r\nhost: router\r\ncontent-type: application/json\r\nauthorization: Bearer ${key}\r\ncontent-length: ${Buffer.byteLength(b)}\r\n\r\n`,
    body: b,
  };
}

function open(url: string): Promise<Socket> {
  const { port, hostname } = new URL(url);
  return new Promise((resolve, reject) => {
    const s = connect(Number(port), hostname, () => resolve(s));
    s.once('error', reject);
  });
}

/** Resolves once the socket has received `n` data events whose text matches `until` (or any data). */
function received(s: Socket, until: (text: string) => boolean, timeoutMs = 10_000): Promise<boolean> {
  return new Promise((resolve) => {
    let text = '';
    const t = setTimeout(() => resolve(false), timeoutMs);
    s.on('data', (d: Buffer) => {
      text += d.toString('utf8');
      if (until(text)) {
        clearTimeout(t);
        resolve(true);
      }
    });
    s.once('close', () => {
      clearTimeout(t);
      resolve(false);
    });
  });
}

export const slowClients: Scenario = {
  name: NAME,
  description: 'readers that stop reading, a crowd of idle connections, clients that disconnect at every point; no leaks after',
  async run(opts: ScenarioOptions): Promise<ScenarioResult> {
    const long = opts.mode === 'long';
    chaosAudit.addSecret('admin token', ADMIN_TOKEN);
    const dir = mkdtempSync(join(tmpdir(), 'chaos-slow-'));
    writeFileSync(join(dir, 'admin-token'), ADMIN_TOKEN, { mode: 0o600 });
    const crashes = new CrashWatch();
    let stack: Stack | undefined;
    const sockets = new Set<Socket>();
    const track = (s: Socket) => {
      sockets.add(s);
      s.on('error', () => undefined);
      s.once('close', () => sockets.delete(s));
      return s;
    };
    try {
      stack = await startStack({
        sims: [
          {
            id: 'sim-a',
            args: [
              '--max-num-seqs',
              '16',
              '--decode-step-ms',
              '5',
              '--decode-step-ms-per-seq',
              '0',
              '--max-model-len',
              '131072',
              '--kv-cache-tokens',
              '1000000',
            ],
          },
        ],
        agents: [{ id: 'node-a', sim: 'sim-a', engine: { maxNumSeqs: 16 } }],
        controlPlane: { adminTokenFile: join(dir, 'admin-token') },
        routerEnv: { ICP_ADMIN_TOKEN: ADMIN_TOKEN },
        logLevel: 'info',
        maxLogLines: MAX_LOG_LINES,
        // ignore_eos is opt-in (docs/request-fields.md).
        router: {
          requestTimeoutMs: DEADLINE_MS,
          auth: { mode: 'required' },
          lanes: { defaultMaxLane: 'standard' },
          requestFields: { extras: { vllm: ['ignore_eos'] } },
        },
      });
      crashes.watchStack(stack);
      const s = stack;
      const admin = async (path: string, body: object) => {
        const res = await fetch(`${s.controlPlane!.url}${path}`, {
          method: 'POST',
          headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
          body: JSON.stringify(body),
        });
        if (!res.ok) throw new Error(`admin ${path}: ${res.status}`);
        return (await res.json()) as { id: string; key: string };
      };
      const steadyTenant = await admin('/v1/admin/tenants', { name: 'steady', policy: {} });
      const steadyKey = (await admin(`/v1/admin/tenants/${steadyTenant.id}/keys`, { name: 'k' })).key;
      const limitedTenant = await admin('/v1/admin/tenants', { name: 'limited', policy: { maxConcurrent: MAX_CONCURRENT } });
      const limitedKey = (await admin(`/v1/admin/tenants/${limitedTenant.id}/keys`, { name: 'k' })).key;
      chaosAudit.addSecret('steady tenant key', steadyKey);
      chaosAudit.addSecret('limited tenant key', limitedKey);
      await waitServing(s.routerUrl, DEFAULT_MODEL, 30_000, steadyKey);
      await waitServing(s.routerUrl, DEFAULT_MODEL, 30_000, limitedKey);
      const simUrl = s.sims.get('sim-a')!.url;
      const rss = sampleRss(s.router.child.pid!, 100);
      const rssStart = rss.current();
      const violations: string[] = [];
      const extra: Record<string, number | string> = {};

      const steady = startLoad({
        targets: [s.routerUrl],
        model: DEFAULT_MODEL,
        tenants: [{ name: 'steady', apiKey: steadyKey }],
        ratePerSec: 4,
        deadlineMs: DEADLINE_MS,
        maxTokens: 12,
      });
      await sleep(1_000);

      // a. Readers that stop reading: long streams, paused after the first bytes.
      const pausedN = long ? 16 : 4;
      const pausedMark = rss.elapsed();
      const rssBeforePaused = rss.current();
      const settledBefore = sumOf(await scrape(s.routerUrl), 'router_requests_total');
      for (let i = 0; i < pausedN; i++) {
        const sock = track(await open(s.routerUrl));
        const r = rawRequest(
          {
            model: DEFAULT_MODEL,
            messages: [{ role: 'user', content: `read me slowly ${PROMPT_MARKER}` }],
            max_tokens: 100_000,
            ignore_eos: true,
            stream: true,
          },
          steadyKey,
        );
        sock.once('data', () => sock.pause());
        sock.write(r.head + r.body);
      }
      // They settle at their deadline although none reads on (steady requests settle too: count ours by time).
      await sleep(DEADLINE_MS + 2_000);
      extra.pausedReaders = pausedN;
      extra.pausedReadersRssGrowthMb = mb(rss.peakSince(pausedMark) - rssBeforePaused);
      extra.requestsSettledWhilePaused = sumOf(await scrape(s.routerUrl), 'router_requests_total') - settledBefore;
      for (const sock of [...sockets]) sock.destroy();

      // b. A crowd of idle connections that never send a byte.
      const idleN = long ? 5_000 : 1_000;
      const idleAt = Date.now();
      const idleMark = rss.elapsed();
      const idle: Socket[] = [];
      for (let i = 0; i < idleN; i++) {
        try {
          idle.push(track(await open(s.routerUrl)));
        } catch (err) {
          violations.push(`idle connection ${i} refused: ${(err as Error).message}`);
          break;
        }
      }
      await sleep(long ? 30_000 : 5_000);
      const stillOpen = idle.filter((x) => !x.destroyed).length;
      const duringIdle = steady.records.filter((r) => r.startedAt >= idleAt);
      extra.idleConnections = idle.length;
      extra.idleStillOpenAfterWait = stillOpen;
      extra.steadyDuringIdleCompleted = `${duringIdle.filter((r) => r.outcome.kind === 'completed').length}/${duringIdle.length}`;
      if (duringIdle.length === 0 || duringIdle.some((r) => r.outcome.kind !== 'completed'))
        violations.push(
          `with ${idle.length} idle connections open the router did not serve everything: ${extra.steadyDuringIdleCompleted}`,
        );
      extra.rssPeakWithIdleMb = mb(rss.peakSince(idleMark));
      for (const x of idle) x.destroy();

      // c. Disconnect at every point, several times each, with the limited tenant's key (leases).
      const abortedBefore = (await simState(simUrl)).aborted;
      const rounds = long ? 20 : 4;
      const streamBody = {
        model: DEFAULT_MODEL,
        messages: [{ role: 'user', content: `leave early ${PROMPT_MARKER}` }],
        max_tokens: 2_000,
        ignore_eos: true,
        stream: true,
      };
      const jsonBody = { ...streamBody, stream: false };
      let reachedEngine = 0;
      const points: [string, (sock: Socket) => Promise<void>][] = [
        [
          'mid-headers',
          async (sock) => {
            sock.write(rawRequest(streamBody, limitedKey).head.slice(0, 40));
            await sleep(20);
          },
        ],
        [
          'mid-body',
          async (sock) => {
            const r = rawRequest(streamBody, limitedKey);
            sock.write(r.head + r.body.slice(0, 10));
            await sleep(20);
          },
        ],
        [
          'after-body',
          async (sock) => {
            const r = rawRequest(streamBody, limitedKey);
            sock.write(r.head + r.body);
            await sleep(1);
          },
        ],
        [
          'after-response-headers',
          async (sock) => {
            const r = rawRequest(streamBody, limitedKey);
            const got = received(sock, (t) => t.includes('\r\n\r\n'));
            sock.write(r.head + r.body);
            if (await got) reachedEngine++;
          },
        ],
        [
          'mid-stream',
          async (sock) => {
            const r = rawRequest(streamBody, limitedKey);
            const got = received(sock, (t) => (t.match(/data: /g) ?? []).length >= 5);
            sock.write(r.head + r.body);
            if (await got) reachedEngine++;
          },
        ],
        [
          'mid-json-generation',
          async (sock) => {
            const r = rawRequest(jsonBody, limitedKey);
            sock.write(r.head + r.body);
            // The engine is generating 2,000 tokens: wait until it runs, then leave.
            await waitFor(async () => (await simState(simUrl)).running > 0, 5_000, 20).then(
              () => reachedEngine++,
              () => undefined,
            );
          },
        ],
      ];
      for (let i = 0; i < rounds; i++) {
        for (const [, cut] of points) {
          const sock = track(await open(s.routerUrl));
          await cut(sock);
          sock.destroy();
        }
      }
      extra.disconnects = rounds * points.length;
      const disconnectsEndedAt = Date.now();
      // Quiet: nothing of theirs may remain.
      let leftover = '';
      try {
        await waitFor(
          async () => {
            const m = await scrape(s.routerUrl);
            const st = await simState(simUrl);
            const inFlight = sumOf(m, 'router_node_in_flight_depth');
            const queued = sumOf(m, 'router_queue_depth');
            leftover = `in flight ${inFlight}, queued ${queued}, engine running ${st.running}`;
            // The steady load may hold a few; wait for the disconnected ones to be gone.
            return queued === 0 && st.running <= steady.inFlight() && inFlight <= steady.inFlight();
          },
          15_000,
          100,
        );
      } catch {
        violations.push(`after the disconnects: ${leftover}`);
      }
      const aborted = (await simState(simUrl)).aborted - abortedBefore;
      extra.engineAborted = aborted;
      extra.disconnectsThatReachedEngine = reachedEngine;
      if (aborted < reachedEngine)
        violations.push(`${reachedEngine} disconnected requests reached the engine but only ${aborted} were aborted there`);

      // Steady load goes on a little, so recovery after the disconnects is measured.
      await sleep(3_000);
      const steadyRecords = await steady.stop();
      // Leases: the limited tenant can run exactly maxConcurrent streams again, and no more.
      const client = new OpenAI({ baseURL: `${s.routerUrl}/v1`, apiKey: limitedKey, maxRetries: 0 });
      const tries = await Promise.allSettled(
        Array.from({ length: MAX_CONCURRENT + 1 }, async (_, i) => {
          await sleep(i === MAX_CONCURRENT ? 300 : 0); // the extra one arrives while the others hold their leases
          const stream = await client.chat.completions.create({
            model: DEFAULT_MODEL,
            messages: [{ role: 'user', content: `lease ${i} ${PROMPT_MARKER}` }],
            max_tokens: 200,
            ignore_eos: true,
            stream: true,
          } as OpenAI.ChatCompletionCreateParamsStreaming);
          for await (const _c of stream) {
            /* read to the end */
          }
        }),
      );
      const ok = tries.filter((t) => t.status === 'fulfilled').length;
      const refused = tries.filter((t) => t.status === 'rejected' && (t.reason as { status?: number }).status === 429).length;
      extra.leaseCheck = `${ok} of ${MAX_CONCURRENT + 1} concurrent streams served, ${refused} refused 429`;
      if (ok !== MAX_CONCURRENT || refused !== 1)
        violations.push(`lease check: ${extra.leaseCheck} (expected exactly ${MAX_CONCURRENT} served: leases leaked or not enforced)`);

      rss.stop();
      extra.routerRssStartMb = mb(rssStart);
      extra.routerRssPeakMb = mb(rss.peak());
      if (mb(rss.peak() - rssStart) > 200) violations.push(`router RSS grew ${mb(rss.peak() - rssStart)} MB`);
      const result = summarise(NAME, steadyRecords, disconnectsEndedAt);
      return { ...result, extra: { ...result.extra, ...extra }, crashed: crashes.close(), ...(violations.length ? { violations } : {}) };
    } finally {
      for (const x of sockets) x.destroy();
      crashes.close();
      if (stack) {
        await auditStack(NAME, stack, MAX_LOG_LINES);
        await stack.stop();
      }
      rmSync(dir, { recursive: true, force: true });
    }
  },
};
