// Issue 17: watchers that never read plus fast membership churn used to take the control plane to
// gigabytes and an out-of-memory abort (every change was serialised and queued for every watcher,
// with no bound). A control plane process, 200 raw-socket watchers that never read, a few hundred
// registrations changing quickly: its RSS stays under RSS_BOUND_MIB and it keeps serving.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { createParser } from 'eventsource-parser';
import { EventEmitter } from 'node:events';
import type { FastifyInstance } from 'fastify';
import { spawnService, type ServiceProcess } from '../../cli/spawn-service.ts';
import { mintNodeToken } from '../../common/credentials.ts';
import { sleep } from '../../common/process.ts';
import { createHttpServer } from '../../common/http.ts';
import { pino } from 'pino';
import { snapshotStreamRoute, type WatchLimits } from '../../control-plane/api/snapshot-stream.ts';

/** Measured after the fix on a loaded 2-core machine: max 215-276 MiB (base ~135) over 286-1 942 changes in 10 s; before: 489 MiB after 85 changes, still climbing. */
const RSS_BOUND_MIB = 384;
const SILENT_WATCHERS = 200;
const NODES = 300;
const CHURN_MS = 10_000;

function rssMiB(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

const ADMIN_TOKEN = 'watch-flood-admin';
const ROUTER_TOKEN = 'watch-flood-router';
const NODE_SECRET = 'watch-flood-node-secret';

/**
 * Membership churn: registers `nodes` agents (each with a few dozen long model names, so one
 * snapshot is a few hundred KiB), then re-registers them with a moving port, each a visible
 * change, until `stop()` says so. All churn goes through here so the registration call (after
 * the node-credential change) is adapted in one place. Returns how many changes it made.
 */
async function churnMembership(baseUrl: string, nodes: number, stop: () => boolean, concurrency = 8): Promise<number> {
  const models = Array.from({ length: 24 }, (_, i) => `org-${i}/a-rather-long-model-name-for-the-snapshot-${i}`);
  let changes = 0;
  let next = 0;
  const worker = async () => {
    while (!stop()) {
      const i = next++ % nodes;
      const round = Math.floor(next / nodes);
      const res = await fetch(`${baseUrl}/v1/nodes/register`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${mintNodeToken(NODE_SECRET, `flood-${i}`)}` },
        body: JSON.stringify({ id: `flood-${i}`, address: `10.9.${i % 250}.${1 + (i % 200)}:${10_000 + (round % 5000)}`, models }),
      });
      await res.arrayBuffer();
      if (res.status === 200) changes++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return changes;
}

/** A watcher that connects and never reads a byte. */
function silentWatcher(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port }, () => {
      s.write(
        `GET /v1/nodes/watch HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${ROUTER_TOKEN}\r\nAccept: text/event-stream\r\n\r\n`,
      );
      s.pause();
      resolve(s);
    });
    s.once('error', reject);
  });
}

/** A router-like watcher that reads everything and keeps the latest snapshot. */
function readingWatcher(baseUrl: string) {
  const state = { latest: undefined as { version: number; nodes: { id: string }[] } | undefined, events: 0 };
  const ac = new AbortController();
  const done = (async () => {
    const res = await fetch(`${baseUrl}/v1/nodes/watch`, { signal: ac.signal, headers: { authorization: `Bearer ${ROUTER_TOKEN}` } });
    assert.equal(res.status, 200);
    const parser = createParser({
      onEvent: (e) => {
        if (e.event !== 'snapshot') return;
        state.events++;
        state.latest = JSON.parse(e.data) as typeof state.latest;
      },
    });
    const decoder = new TextDecoder();
    for await (const chunk of res.body!) parser.feed(decoder.decode(chunk as Uint8Array, { stream: true }));
  })().catch((err: unknown) => {
    if ((err as Error).name !== 'AbortError') throw err;
  });
  return { state, stop: () => ac.abort(), done };
}

describe('watch flood (issue 17)', () => {
  let dir: string;
  let cp: ServiceProcess;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'icp-watch-flood-'));
    const configFile = join(dir, 'config.yaml');
    writeFileSync(
      configFile,
      stringify({
        controlPlane: {
          listen: { host: '127.0.0.1', port: 0 },
          nodeTtlMs: 120_000,
          capacity: { enabled: false },
          // The churn is the load here, not a finding: the registration rate limit would refuse most of it.
          nodes: { registrationsPerMinute: 10_000_000, registrationsPerMinutePerNode: 10_000_000 },
          shadow: { store: { path: join(dir, 'shadow') } },
        },
        logging: { level: 'warn' },
      }),
    );
    cp = await spawnService({
      name: 'control-plane',
      entry: 'cli/main.ts',
      args: ['control-plane', '--config', configFile],
      // A ceiling well above the bound, so the unfixed code fails the assertion (or aborts) instead of taking the machine's memory.
      env: {
        NODE_OPTIONS: '--max-old-space-size=1536',
        ICP_ADMIN_TOKEN: ADMIN_TOKEN,
        ICP_ROUTER_TOKEN: ROUTER_TOKEN,
        ICP_NODE_SECRET: NODE_SECRET,
      },
    });
  });
  after(async () => {
    await cp?.stop(5_000);
    rmSync(dir, { recursive: true, force: true });
  });

  it('200 watchers that never read + churn: RSS stays bounded, a real watcher stays current, /healthz answers', async () => {
    const pid = cp.child.pid!;
    const port = Number(new URL(cp.url).port);
    const base = rssMiB(pid);

    const real = readingWatcher(cp.url);
    const silent: Socket[] = [];
    let dropped = 0;
    for (let i = 0; i < SILENT_WATCHERS; i++) {
      const s = await silentWatcher(port);
      s.on('error', () => {});
      s.once('close', () => dropped++);
      silent.push(s);
    }

    let maxRss = base;
    let over = false;
    const sampler = setInterval(() => {
      const r = rssMiB(pid);
      if (r > maxRss) maxRss = r;
      if (r > RSS_BOUND_MIB) over = true;
    }, 100);
    const started = Date.now();
    const exited = () => cp.child.exitCode !== null || cp.child.signalCode !== null;
    // Stops early once over the bound, so the unfixed code does not take the machine's memory.
    const changes = await churnMembership(cp.url, NODES, () => over || exited() || Date.now() - started > CHURN_MS);
    clearInterval(sampler);
    const elapsedMs = Date.now() - started;

    console.log(
      JSON.stringify({
        baseRssMiB: Math.round(base),
        maxRssMiB: Math.round(maxRss),
        changes,
        elapsedMs,
        silentDropped: dropped,
        realEvents: real.state.events,
      }),
    );
    assert.equal(exited(), false, 'the control plane must not die');
    assert.ok(
      maxRss < RSS_BOUND_MIB,
      `RSS reached ${Math.round(maxRss)} MiB (bound ${RSS_BOUND_MIB} MiB) after ${changes} changes in ${elapsedMs} ms`,
    );

    // Still serving: health, and the reading watcher sees a change made after the flood.
    assert.equal((await fetch(`${cp.url}/healthz`)).status, 200);
    const marker = await fetch(`${cp.url}/v1/nodes/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${mintNodeToken(NODE_SECRET, 'marker')}` },
      body: JSON.stringify({ id: 'marker', address: '10.0.0.1:1' }),
    });
    assert.equal(marker.status, 200);
    const deadline = Date.now() + 15_000;
    while (!real.state.latest?.nodes.some((n) => n.id === 'marker')) {
      assert.ok(Date.now() < deadline, 'the reading watcher must get the current snapshot');
      await sleep(50);
    }
    const listed = (
      (await (await fetch(`${cp.url}/v1/nodes`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).json()) as { data: unknown[] }
    ).data.length;
    assert.equal(real.state.latest.nodes.length, listed, 'the snapshot it has is the whole current membership');

    real.stop();
    await real.done;
    // Watchers that never read do not hold up a shutdown: SIGTERM ends the process well within its grace.
    const t0 = Date.now();
    const exit = await cp.stop(20_000);
    console.log(JSON.stringify({ shutdownMs: Date.now() - t0, exit }));
    assert.equal(exit, 0, 'exited by itself, not killed');
    for (const s of silent) s.destroy();
  });
});

/** A source whose snapshot is `pad` bytes of filler plus a version, to fill socket buffers quickly. */
class PaddedSource extends EventEmitter {
  version = 0;
  /** How many times a snapshot was serialised. */
  serialised = 0;
  constructor(public pad: number) {
    super();
  }
  snapshot() {
    const count = () => this.serialised++;
    return {
      version: this.version,
      pad: 'x'.repeat(this.pad),
      counted: {
        toJSON() {
          count();
          return 1;
        },
      },
    };
  }
  change() {
    this.version++;
    this.emit('change', this.snapshot());
  }
}

/** Reads a raw socket's whole SSE stream (after the HTTP head) and returns the snapshot versions seen. */
function versionsOf(raw: string): number[] {
  return [...raw.matchAll(/event: snapshot\ndata: \{"version":(\d+)/g)].map((m) => Number(m[1]));
}

describe('watch stream bounds (control-plane/api/snapshot-stream.ts)', () => {
  let app: FastifyInstance;
  let url: string;
  let port: number;
  const source = new PaddedSource(64 * 1024);
  // The server's own word that it dropped a watcher (a paused client socket never sees its close).
  const drops: { reason: string; unsentBytes: number }[] = [];
  const logger = pino({ level: 'warn' }, { write: (line: string) => void drops.push(JSON.parse(line) as (typeof drops)[number]) });
  const start = async (limits: Partial<WatchLimits>, keepAliveMs = 100) => {
    drops.length = 0;
    app = createHttpServer({ logger });
    snapshotStreamRoute(app, '/watch', source, keepAliveMs, limits);
    url = await app.listen({ host: '127.0.0.1', port: 0 });
    port = Number(new URL(url).port);
  };
  const raw = (): Promise<Socket> =>
    new Promise((resolve, reject) => {
      const s = connect({ host: '127.0.0.1', port }, () => {
        s.write('GET /watch HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
        resolve(s);
      });
      s.once('error', reject);
    });
  after(async () => {
    await app?.close();
  });

  it('caps the watcher count: the next gets a 503 in OpenAI shape with Retry-After; a freed slot is reused', async () => {
    await start({ maxWatchers: 2 });
    const a = new AbortController();
    const first = await fetch(`${url}/watch`, { signal: a.signal });
    const second = await fetch(`${url}/watch`);
    assert.equal(first.status, 200);
    assert.equal(second.status, 200);
    const third = await fetch(`${url}/watch`);
    assert.equal(third.status, 503);
    assert.equal(third.headers.get('retry-after'), '1');
    const body = (await third.json()) as { error: { message: string; type: string; param: unknown; code: string } };
    assert.deepEqual(Object.keys(body.error).sort(), ['code', 'message', 'param', 'type']);
    assert.equal(body.error.code, 'too_many_watchers');
    a.abort();
    await waitUntil(async () => {
      const again = await fetch(`${url}/watch`);
      if (again.status === 200) await again.body?.cancel();
      else await again.arrayBuffer();
      return again.status === 200;
    });
    await second.body?.cancel();
    await app.close();
  });

  it('serialises a change once, however many watchers there are', async () => {
    await start({}, 60_000);
    const sockets = await Promise.all(Array.from({ length: 20 }, () => raw()));
    const got = sockets.map(() => '');
    sockets.forEach((s, i) => s.setEncoding('utf8').on('data', (d: string) => (got[i] += d)));
    await waitUntil(() => got.every((g) => versionsOf(g).length === 1));
    source.serialised = 0;
    for (let i = 0; i < 10; i++) source.change();
    await waitUntil(() => got.every((g) => versionsOf(g).at(-1) === source.version));
    assert.equal(source.serialised, 10);
    for (const s of sockets) s.destroy();
    await app.close();
  });

  it('coalesces: a watcher that is not draining gets the latest snapshot on drain, never the backlog', async () => {
    await start({ stallTimeoutMs: 60_000 }, 60_000);
    const s = await raw();
    s.pause();
    await sleep(100);
    for (let i = 0; i < 400; i++) source.change(); // 400 x 64 KiB = 25 MiB if queued
    const last = source.version;
    let text = '';
    s.setEncoding('utf8');
    s.on('data', (d: string) => (text += d));
    s.resume();
    await waitUntil(() => versionsOf(text).at(-1) === last);
    const seen = versionsOf(text);
    assert.ok(seen.length < 100, `got ${seen.length} of 400 changes: a backlog was queued`);
    assert.equal(seen.at(-1), last);
    s.destroy();
    await app.close();
  });

  it('drops a watcher that stays undrained past the stall timeout, and one over the unsent-byte limit', async () => {
    // Changes spaced out, each written whole, until the kernel's socket buffers (MiBs on loopback) are full.
    const fillUntil = async (dropped: () => boolean) => {
      for (let i = 0; i < 300 && !dropped(); i++) {
        source.change();
        await sleep(5);
      }
      await waitUntil(dropped, 10_000);
    };
    source.pad = 1024 * 1024;
    await start({ stallTimeoutMs: 300 });
    const stalled = await raw();
    stalled.pause();
    await fillUntil(() => drops.some((d) => d.reason.includes('stall')));
    stalled.destroy();
    await app.close();

    await start({ maxUnsentBytes: 512 * 1024, stallTimeoutMs: 60_000 }, 60_000);
    const big = await raw();
    big.pause();
    await fillUntil(() => drops.some((d) => d.reason.includes('unsent')));
    assert.ok(drops.find((x) => x.reason.includes('unsent'))!.unsentBytes > 512 * 1024);
    big.destroy();
    source.pad = 64 * 1024;
  });
});

async function waitUntil(check: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    assert.ok(Date.now() < deadline, 'timed out waiting');
    await sleep(25);
  }
}
