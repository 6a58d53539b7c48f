// One GPU node as this router sees it: one long-lived gRPC channel, one WatchStatus stream
// (re-opened with backoff when it breaks), the latest status, and this router's own in-flight
// count to the node (which covers the lag between a dispatch and the next status).
import { EventEmitter } from 'node:events';
import { createNodeAgentClient, grpc, type NodeAgentClient, type NodeStatus__Output } from '../../common/grpc.ts';
import type { AgentChannelSecurity } from '../../common/tls.ts';
import type { Logger } from '../../common/logger.ts';

export class NodeConnection extends EventEmitter {
  readonly client: NodeAgentClient;
  status: NodeStatus__Output | undefined;
  statusReceivedAt = 0;
  /** True while the WatchStatus stream is open. A broken stream = node gone until it reopens. */
  connected = false;
  cordoned = false;
  /** Generations this router has in flight on the node. */
  inFlight = 0;
  /** Dispatches since the last status arrived: not yet visible in the node's own counters. */
  dispatchedSinceStatus = 0;
  /** This router's in-flight count when the last status arrived (to tell its work from others'). */
  inFlightAtStatus = 0;
  private stream: grpc.ClientReadableStream<NodeStatus__Output> | undefined;
  private closed = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private backoffMs = 100;

  constructor(readonly id: string, readonly address: string, private readonly routerId: string, private readonly logger: Logger, security?: AgentChannelSecurity) {
    super();
    this.client = createNodeAgentClient(address, security);
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

  private openWatch(): void {
    if (this.closed) return;
    const stream = this.client.WatchStatus({ routerId: this.routerId });
    this.stream = stream;
    stream.on('data', (status: NodeStatus__Output) => {
      const wasUsable = this.connected;
      this.connected = true;
      this.backoffMs = 100;
      this.status = status;
      this.statusReceivedAt = Date.now();
      this.dispatchedSinceStatus = 0;
      this.inFlightAtStatus = this.inFlight;
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
