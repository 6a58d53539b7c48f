// Registers the agent with the control plane and heartbeats, proving the node's identity with its
// node token (or its client certificate over HTTPS). The control plane being down must never stop
// the agent serving: failures are logged (rate-limited) and retried. A 404 on heartbeat means the
// registry forgot us (expiry, restart), a 409 that another registration of our id replaced ours:
// register again. Heartbeats carry the epoch the registration returned.
import { readFileSync } from 'node:fs';
import { Agent, request } from 'undici';
import type { Logger } from '../common/logger.ts';
import type { AgentClientTls } from '../common/tls.ts';

export interface RegistrationOptions {
  controlPlaneUrl: string;
  nodeId: string;
  address: string;
  heartbeatMs: number;
  models: () => string[];
  logger: Logger;
  nodeToken?: string;
  /** For an https:// control plane: CA to trust, and the client certificate to present. */
  tls?: AgentClientTls;
}

export class Registration {
  private timer: NodeJS.Timeout | undefined;
  private registered = false;
  private lastWarnAt = 0;
  private registeredModels = '';
  private epoch = '';
  private readonly dispatcher: Agent | undefined;

  constructor(private readonly opts: RegistrationOptions) {
    const t = opts.tls;
    this.dispatcher = t
      ? new Agent({
          connect: {
            ca: readFileSync(t.caFile),
            ...(t.certFile && t.keyFile ? { cert: readFileSync(t.certFile), key: readFileSync(t.keyFile) } : {}),
            ...(t.serverName ? { servername: t.serverName } : {}),
          },
        })
      : undefined;
  }

  start(): void {
    const tick = () => {
      void this.beat().finally(() => {
        if (this.timer !== undefined) this.timer = setTimeout(tick, this.opts.heartbeatMs);
      });
    };
    this.timer = setTimeout(tick, 0);
  }

  async stop(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (!this.registered) return;
    await this.call('DELETE', `/v1/nodes/${encodeURIComponent(this.opts.nodeId)}`).catch(() => undefined);
    await this.dispatcher?.close();
  }

  private async beat(): Promise<void> {
    try {
      const models = this.opts.models();
      // Re-register when the served models change, so /v1/nodes shows the truth.
      if (this.registered && models.join() !== this.registeredModels) this.registered = false;
      if (!this.registered) {
        const { status, body } = await this.call('POST', '/v1/nodes/register', {
          id: this.opts.nodeId,
          address: this.opts.address,
          models,
        });
        if (status !== 200) throw new Error(`register answered ${status}${errorMessage(body)}`);
        this.epoch = typeof (body as { epoch?: unknown }).epoch === 'string' ? (body as { epoch: string }).epoch : '';
        this.registered = true;
        this.registeredModels = models.join();
        this.opts.logger.info({ controlPlane: this.opts.controlPlaneUrl }, 'registered with control plane');
        return;
      }
      const { status, body } = await this.call('POST', `/v1/nodes/${encodeURIComponent(this.opts.nodeId)}/heartbeat`);
      if (status === 404 || status === 409) this.registered = false;
      else if (status !== 204) throw new Error(`heartbeat answered ${status}${errorMessage(body)}`);
    } catch (err) {
      this.registered = false;
      if (Date.now() - this.lastWarnAt > 10_000) {
        this.lastWarnAt = Date.now();
        this.opts.logger.warn({ err: (err as Error).message }, 'control plane unreachable; still serving, will retry');
      }
    }
  }

  private async call(method: 'POST' | 'DELETE', path: string, body?: unknown): Promise<{ status: number; body: unknown }> {
    const headers: Record<string, string> = {};
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (this.opts.nodeToken) headers.authorization = `Bearer ${this.opts.nodeToken}`;
    if (this.epoch) headers['x-icp-node-epoch'] = this.epoch;
    const res = await request(this.opts.controlPlaneUrl.replace(/\/+$/, '') + path, {
      method,
      body: body === undefined ? undefined : JSON.stringify(body),
      headers,
      headersTimeout: 2_000,
      bodyTimeout: 2_000,
      ...(this.dispatcher ? { dispatcher: this.dispatcher } : {}),
    });
    if (res.statusCode === 204) {
      await res.body.dump();
      return { status: 204, body: {} };
    }
    // The registry's record or an error in OpenAI's shape.
    const text = await res.body.text();
    let parsed: unknown = {};
    try {
      parsed = JSON.parse(text);
    } catch {
      // not JSON: keep {}
    }
    return { status: res.statusCode, body: parsed };
  }
}

function errorMessage(body: unknown): string {
  const m = (body as { error?: { message?: unknown } }).error?.message;
  return typeof m === 'string' ? `: ${m.slice(0, 200)}` : '';
}
