// Builds NodeStatus and pushes it to every watching router: at once on a change (coalesced per
// tick) and every heartbeat interval otherwise, so a router can tell a quiet node from a dead one.
import type { NodeStatus } from '../common/grpc.ts';

type Sink = (status: NodeStatus) => void;

export class StatusPublisher {
  private seq = 0;
  private readonly sinks = new Map<Sink, () => void>();
  private timer: NodeJS.Timeout | undefined;
  private pending = false;
  private last: NodeStatus | undefined;

  constructor(
    private readonly build: () => Omit<NodeStatus, 'seq' | 'timestampMs' | 'heartbeatIntervalMs'>,
    private readonly heartbeatMs: number,
  ) {}

  start(): void {
    this.timer = setInterval(() => this.publish(), this.heartbeatMs);
    this.timer.unref();
  }

  /** Stops the heartbeat and ends every subscription (their `end` callbacks run). */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    const ends = [...this.sinks.values()];
    this.sinks.clear();
    for (const end of ends) end();
  }

  /** `end` runs when the publisher stops, so watch streams close cleanly instead of being cut. */
  subscribe(sink: Sink, end: () => void = () => undefined): () => void {
    this.sinks.set(sink, end);
    sink(this.current());
    return () => this.sinks.delete(sink);
  }

  /** Something changed: publish on the next tick (several changes in one tick make one status). */
  changed(): void {
    if (this.pending) return;
    this.pending = true;
    setImmediate(() => {
      this.pending = false;
      this.publish();
    });
  }

  current(): NodeStatus {
    return this.last ?? this.next();
  }

  get subscriberCount(): number {
    return this.sinks.size;
  }

  private next(): NodeStatus {
    this.seq += 1;
    this.last = { ...this.build(), seq: String(this.seq), timestampMs: String(Date.now()), heartbeatIntervalMs: this.heartbeatMs };
    return this.last;
  }

  private publish(): void {
    const status = this.next();
    for (const sink of this.sinks.keys()) sink(status);
  }
}
