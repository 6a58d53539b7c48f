// Registers the agent with the control plane and heartbeats. The control plane being down must
// never stop the agent serving: failures are logged (rate-limited) and retried. A 404 on heartbeat
// means the registry forgot us (expiry, restart): register again.
import { request } from 'undici';
import type { Logger } from '../common/logger.ts';

export interface RegistrationOptions {
  controlPlaneUrl: string;
  nodeId: string;
  address: string;
  heartbeatMs: number;
  models: () => string[];
  logger: Logger;
}

export class Registration {
  private timer: NodeJS.Timeout | undefined;
  private registered = false;
  private lastWarnAt = 0;
  private registeredModels = '';

  constructor(private readonly opts: RegistrationOptions) {}

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
  }

  private async beat(): Promise<void> {
    try {
      const models = this.opts.models();
      // Re-register when the served models change, so /v1/nodes shows the truth.
      if (this.registered && models.join() !== this.registeredModels) this.registered = false;
      if (!this.registered) {
        const status = await this.call('POST', '/v1/nodes/register', { id: this.opts.nodeId, address: this.opts.address, models });
        if (status !== 200) throw new Error(`register answered ${status}`);
        this.registered = true;
        this.registeredModels = models.join();
        this.opts.logger.info({ controlPlane: this.opts.controlPlaneUrl }, 'registered with control plane');
        return;
      }
      const status = await this.call('POST', `/v1/nodes/${encodeURIComponent(this.opts.nodeId)}/heartbeat`);
      if (status === 404) this.registered = false;
      else if (status !== 204) throw new Error(`heartbeat answered ${status}`);
    } catch (err) {
      this.registered = false;
      if (Date.now() - this.lastWarnAt > 10_000) {
        this.lastWarnAt = Date.now();
        this.opts.logger.warn({ err: (err as Error).message }, 'control plane unreachable; still serving, will retry');
      }
    }
  }

  private async call(method: 'POST' | 'DELETE', path: string, body?: unknown): Promise<number> {
    const res = await request(this.opts.controlPlaneUrl.replace(/\/+$/, '') + path, {
      method,
      body: body === undefined ? undefined : JSON.stringify(body),
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      headersTimeout: 2_000,
      bodyTimeout: 2_000,
    });
    await res.body.dump();
    return res.statusCode;
  }
}
