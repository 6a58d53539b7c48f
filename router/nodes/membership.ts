// Follows one of the control plane's watch streams (SSE `snapshot` events: node membership,
// tenant policy). When the control plane is down the router keeps the last snapshot: the control
// plane is never on the request path. Each snapshot is parsed against its contract; a malformed
// one is logged and dropped whole, so the last good snapshot stays in force (never half-applied).
import { EventEmitter } from 'node:events';
import { request } from 'undici';
import { createParser } from 'eventsource-parser';
import type { z } from 'zod';
import { membershipSnapshotSchema, type MembershipSnapshot } from '../../common/contracts.ts';
import type { Logger } from '../../common/logger.ts';
import { sleep } from '../../common/process.ts';

export interface Member {
  id: string;
  address: string;
  cordoned: boolean;
  /** What this router presents to the node (absent: the node checks certificates, or nothing). */
  callToken?: string;
}

/** Emits 'snapshot' with each snapshot of `path` that `schema` accepts. */
export class SnapshotWatch<T> extends EventEmitter {
  private stopped = false;
  private abort = new AbortController();
  connected = false;
  /** Snapshots refused as malformed since start (each is logged with its reason). */
  rejected = 0;

  constructor(
    private readonly url: string,
    private readonly logger: Logger,
    private readonly path: string,
    private readonly schema: z.ZodType<T>,
    private readonly headers: Record<string, string> = {},
  ) {
    super();
  }

  /** The snapshot in `data`, or undefined (logged) when it is not JSON or breaks the contract. */
  parse(data: string): T | undefined {
    let json: unknown;
    try {
      json = JSON.parse(data);
    } catch (err) {
      return this.reject(`not JSON: ${(err as Error).message}`);
    }
    const r = this.schema.safeParse(json);
    if (!r.success)
      return this.reject(
        r.error.issues
          .slice(0, 3)
          .map((i) => `${i.path.join('.') || 'snapshot'}: ${i.message}`)
          .join('; '),
      );
    return r.data;
  }

  private reject(reason: string): undefined {
    this.rejected += 1;
    this.logger.warn({ path: this.path, reason }, 'malformed control plane snapshot; keeping the last good one');
    return undefined;
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
          this.logger.warn({ err: (err as Error).message, path: this.path }, 'control plane watch failed; keeping the last snapshot');
        }
      }
      this.connected = false;
      if (this.stopped) return;
      await sleep(backoff);
      backoff = Math.min(backoff * 2, 2_000);
    }
  }

  private async follow(): Promise<void> {
    const res = await request(this.url.replace(/\/+$/, '') + this.path, {
      method: 'GET',
      headers: this.headers,
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
        const snap = this.parse(ev.data);
        if (snap !== undefined) this.emit('snapshot', snap);
      },
    });
    for await (const piece of res.body) parser.feed((piece as Buffer).toString('utf8'));
    throw new Error('watch stream ended');
  }
}

/** Node membership: emits 'members' (Member[]) on every snapshot of /v1/nodes/watch. */
export class ControlPlaneWatch extends SnapshotWatch<MembershipSnapshot> {
  constructor(url: string, logger: Logger, headers: Record<string, string> = {}) {
    super(url, logger, '/v1/nodes/watch', membershipSnapshotSchema, headers);
    this.on('snapshot', (snap: MembershipSnapshot) => {
      this.emit(
        'members',
        snap.nodes.map((n) => ({
          id: n.id,
          address: n.address,
          cordoned: n.cordoned,
          ...(n.callToken !== undefined ? { callToken: n.callToken } : {}),
        })) satisfies Member[],
      );
    });
  }
}
