// A watch stream: the full snapshot on connect and on every change, as SSE `snapshot` events,
// with keep-alive comments (a router notices a dead control plane by their absence). The state
// behind a watch is small (membership, tenant policy), so whole snapshots spare routers any diff
// bookkeeping. Streams are ended when the server closes, so close() never waits on them.
//
// Bounded (issue 17): watchers that never read used to get every change queued for them, one
// serialisation each, until the process ran out of memory. Now a change is serialised once and
// shared; a watcher whose socket has not drained keeps only the latest snapshot (sent on 'drain'),
// never a backlog; one that stays undrained past `stallTimeoutMs`, or whose unsent bytes pass
// `maxUnsentBytes`, is dropped (a router reconnects); and the number of watchers is capped.
import type { FastifyInstance } from 'fastify';
import type { EventEmitter } from 'node:events';
import type { ServerResponse } from 'node:http';
import { errors } from '../../common/errors.ts';

export interface SnapshotSource<T> extends EventEmitter {
  snapshot(): T;
}

export interface WatchLimits {
  /** Watchers of one route at a time; the next is answered 503 `too_many_watchers` with Retry-After. */
  maxWatchers: number;
  /** A watcher whose unsent bytes (`res.writableLength`) pass this is dropped; must exceed the largest snapshot. */
  maxUnsentBytes: number;
  /** A watcher whose socket has not drained for this long is dropped (checked every keep-alive interval). */
  stallTimeoutMs: number;
}

export const DEFAULT_WATCH_LIMITS: WatchLimits = { maxWatchers: 256, maxUnsentBytes: 8 * 1024 * 1024, stallTimeoutMs: 30_000 };

const KEEP_ALIVE = Buffer.from(': keep-alive\n\n');

interface Watcher {
  res: ServerResponse;
  /** write() said the buffer is full; nothing more is written until 'drain'. */
  blocked: boolean;
  blockedSince: number;
  /** The latest snapshot not yet written (only while blocked); older ones are forgotten. */
  pending: Buffer | undefined;
}

/** One SSE frame, built once per change and shared by every watcher's socket. */
function frame(snapshot: unknown): Buffer {
  return Buffer.from(`event: snapshot\ndata: ${JSON.stringify(snapshot)}\n\n`);
}

export function snapshotStreamRoute<T>(
  app: FastifyInstance,
  path: string,
  source: SnapshotSource<T>,
  keepAliveMs: number,
  limits: Partial<WatchLimits> = {},
): void {
  const { maxWatchers, maxUnsentBytes, stallTimeoutMs } = { ...DEFAULT_WATCH_LIMITS, ...limits };
  const watchers = new Set<Watcher>();

  const drop = (w: Watcher, reason: string) => {
    app.log.warn({ path, reason, unsentBytes: w.res.writableLength }, 'watch: dropped a watcher that does not read');
    watchers.delete(w);
    w.res.destroy();
  };

  const send = (w: Watcher, buf: Buffer) => {
    if (w.res.destroyed || w.res.writableEnded) return;
    if (w.blocked) {
      w.pending = buf;
      return;
    }
    const ok = w.res.write(buf);
    if (w.res.writableLength > maxUnsentBytes) return drop(w, 'unsent bytes over the limit');
    if (!ok) {
      w.blocked = true;
      w.blockedSince = Date.now();
    }
  };

  const onChange = (snap: T) => {
    if (watchers.size === 0) return;
    const buf = frame(snap);
    for (const w of watchers) send(w, buf);
  };
  source.on('change', onChange);

  // One timer per route, not per watcher: keep-alives for those that drain, the stall check for those that do not.
  const timer = setInterval(() => {
    const now = Date.now();
    for (const w of watchers) {
      if (!w.blocked) send(w, KEEP_ALIVE);
      else if (now - w.blockedSince > stallTimeoutMs) drop(w, 'not drained within the stall timeout');
    }
  }, keepAliveMs);
  timer.unref();

  app.addHook('preClose', async () => {
    for (const w of watchers) w.res.end();
  });
  app.addHook('onClose', async () => {
    clearInterval(timer);
    source.off('change', onChange);
  });

  app.get(path, (req, reply) => {
    if (watchers.size >= maxWatchers) {
      throw errors.overloaded(
        `Too many watchers on ${path}; retry later.`,
        Math.max(1, Math.ceil(keepAliveMs / 1000)),
        'too_many_watchers',
      );
    }
    reply.hijack();
    const res = reply.raw;
    const w: Watcher = { res, blocked: false, blockedSince: 0, pending: undefined };
    watchers.add(w);
    const close = () => {
      watchers.delete(w);
      w.pending = undefined;
    };
    // The response's 'close' (socket gone or ended); the request's fires once its body is read.
    res.on('close', close);
    res.on('error', close);
    res.on('drain', () => {
      w.blocked = false;
      const p = w.pending;
      w.pending = undefined;
      if (p) send(w, p);
    });
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
    send(w, frame(source.snapshot()));
  });
}
