// A watch stream: the full snapshot on connect and on every change, as SSE `snapshot` events,
// with keep-alive comments (a router notices a dead control plane by their absence). The state
// behind a watch is small (membership, tenant policy), so whole snapshots spare routers any diff
// bookkeeping. Streams are ended when the server closes, so close() never waits on them.
import type { FastifyInstance } from 'fastify';
import type { EventEmitter } from 'node:events';
import type { ServerResponse } from 'node:http';

export interface SnapshotSource<T> extends EventEmitter {
  snapshot(): T;
}

export function snapshotStreamRoute<T>(app: FastifyInstance, path: string, source: SnapshotSource<T>, keepAliveMs: number): void {
  const watchers = new Set<ServerResponse>();
  app.addHook('preClose', async () => {
    for (const res of watchers) res.end();
  });
  app.get(path, (req, reply) => {
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
    const send = (snap: T) => res.write(`event: snapshot\ndata: ${JSON.stringify(snap)}\n\n`);
    watchers.add(res);
    send(source.snapshot());
    source.on('change', send);
    const keepAlive = setInterval(() => res.write(': keep-alive\n\n'), keepAliveMs);
    const close = () => {
      clearInterval(keepAlive);
      watchers.delete(res);
      source.off('change', send);
    };
    req.raw.on('close', close);
    res.on('error', close);
  });
}
