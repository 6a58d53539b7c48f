// Follows the control plane's node watch stream (SSE snapshots). When the control plane is
// down the router keeps its last membership: the control plane is never on the request path.
import { EventEmitter } from 'node:events';
import { request } from 'undici';
import { createParser } from 'eventsource-parser';
import type { Logger } from '../../common/logger.ts';
import { sleep } from '../../common/process.ts';

export interface Member {
  id: string;
  address: string;
  cordoned: boolean;
}

export class ControlPlaneWatch extends EventEmitter {
  private stopped = false;
  private abort = new AbortController();
  connected = false;

  constructor(private readonly url: string, private readonly logger: Logger) {
    super();
  }

  start(): void {
    void this.loop();
  }

  stop(): void {
    this.stopped = true;
    this.abort.abort();
  }

  private async loop(): Promise<void> {
    let backoff = 200;
    let lastWarn = 0;
    while (!this.stopped) {
      try {
        await this.follow();
        backoff = 200;
      } catch (err) {
        if (this.stopped) return;
        if (Date.now() - lastWarn > 10_000) {
          lastWarn = Date.now();
          this.logger.warn({ err: (err as Error).message }, 'control plane watch failed; keeping last membership');
        }
      }
      this.connected = false;
      if (this.stopped) return;
      await sleep(backoff);
      backoff = Math.min(backoff * 2, 2_000);
    }
  }

  private async follow(): Promise<void> {
    const res = await request(this.url.replace(/\/+$/, '') + '/v1/nodes/watch', {
      method: 'GET',
      signal: this.abort.signal,
      headersTimeout: 5_000,
      // The server sends a keep-alive comment every few seconds: silence means it is gone.
      bodyTimeout: 15_000,
    });
    if (res.statusCode !== 200) {
      await res.body.dump();
      throw new Error(`watch answered ${res.statusCode}`);
    }
    this.connected = true;
    const parser = createParser({
      onEvent: (ev) => {
        if (ev.event !== 'snapshot') return;
        const snap = JSON.parse(ev.data) as { nodes: { id: string; address: string; cordoned: boolean }[] };
        this.emit('members', snap.nodes.map((n) => ({ id: n.id, address: n.address, cordoned: n.cordoned })) satisfies Member[]);
      },
    });
    for await (const piece of res.body) parser.feed((piece as Buffer).toString('utf8'));
    throw new Error('watch stream ended');
  }
}
