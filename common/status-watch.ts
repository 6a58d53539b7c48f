// Follows one node agent's WatchStatus stream: one long-lived gRPC channel, the stream re-opened
// with backoff when it breaks, and the latest status. Routers build their per-node view on it
// (router/nodes/node-connection.ts); the control plane's capacity sampler uses it as it is.
import { EventEmitter } from 'node:events';
import { createNodeAgentClient, grpc, type NodeAgentClient, type NodeStatus__Output } from './grpc.ts';
import type { AgentChannelSecurity } from './tls.ts';
import type { Logger } from './logger.ts';

/** Emits 'status' (NodeStatus__Output) on every status and 'lost' when an open stream breaks. */
export class StatusWatch extends EventEmitter {
  readonly client: NodeAgentClient;
  status: NodeStatus__Output | undefined;
  statusReceivedAt = 0;
  /** True while the WatchStatus stream is open. A broken stream = node gone until it reopens. */
  connected = false;
  private stream: grpc.ClientReadableStream<NodeStatus__Output> | undefined;
  private closed = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private backoffMs = 100;

  /** `watcherId` names the follower to the agent (WatchStatus's routerId). */
  constructor(
    readonly id: string,
    readonly address: string,
    private readonly watcherId: string,
    protected readonly logger: Logger,
    security?: AgentChannelSecurity,
    /** The call (router) or control (control plane) token the agent checks; common/credentials.ts. */
    readonly callToken?: string,
  ) {
    super();
    this.client = createNodeAgentClient(address, security, callToken);
  }

  start(): void {
    this.openWatch();
  }

  close(): void {
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.stream?.cancel();
    this.client.close();
  }

  /** Runs on each status before 'status' is emitted (subclasses reset per-status counters here). */
  protected received(_status: NodeStatus__Output): void {}

  private openWatch(): void {
    if (this.closed) return;
    const stream = this.client.WatchStatus({ routerId: this.watcherId });
    this.stream = stream;
    stream.on('data', (status: NodeStatus__Output) => {
      const wasUsable = this.connected;
      this.connected = true;
      this.backoffMs = 100;
      this.status = status;
      this.statusReceivedAt = Date.now();
      this.received(status);
      if (!wasUsable) this.logger.info({ node: this.id, address: this.address }, 'node status stream open');
      this.emit('status', status);
    });
    const lost = (why: string) => {
      if (this.stream !== stream) return;
      this.stream = undefined;
      const was = this.connected;
      this.connected = false;
      if (was) {
        this.logger.warn({ node: this.id, why }, 'node status stream lost');
        this.emit('lost');
      }
      if (this.closed) return;
      this.retryTimer = setTimeout(() => this.openWatch(), this.backoffMs);
      this.backoffMs = Math.min(this.backoffMs * 2, 2_000);
    };
    stream.on('error', (err: grpc.ServiceError) => lost(err.details || err.message));
    stream.on('end', () => lost('stream ended'));
  }
}
