// The cluster's membership: agents register and heartbeat; a node that misses heartbeats for
// `ttlMs` expires. Static nodes (from config) never expire. Cordoned nodes stay listed but
// routers send them nothing new. Every change is published to watchers.
import { EventEmitter } from 'node:events';

export interface NodeRecord {
  id: string;
  address: string;
  models: string[];
  labels: Record<string, string>;
  static: boolean;
  cordoned: boolean;
  registeredAt: number;
  lastHeartbeatAt: number;
}

export interface RegisterInput {
  id: string;
  address: string;
  models?: string[];
  labels?: Record<string, string>;
}

export class NodeRegistry extends EventEmitter {
  private readonly nodes = new Map<string, NodeRecord>();
  private sweeper: NodeJS.Timeout | undefined;
  private version = 0;

  constructor(
    readonly ttlMs: number,
    private readonly now: () => number = Date.now,
  ) {
    super();
  }

  start(sweepEveryMs = Math.max(100, Math.floor(this.ttlMs / 4))): void {
    this.sweeper = setInterval(() => this.sweep(), sweepEveryMs);
    this.sweeper.unref();
  }

  stop(): void {
    if (this.sweeper) clearInterval(this.sweeper);
  }

  addStatic(id: string, address: string): void {
    const t = this.now();
    this.nodes.set(id, { id, address, models: [], labels: {}, static: true, cordoned: false, registeredAt: t, lastHeartbeatAt: t });
    this.changed();
  }

  register(input: RegisterInput): NodeRecord {
    const t = this.now();
    const prev = this.nodes.get(input.id);
    const record: NodeRecord = {
      id: input.id,
      address: input.address,
      models: input.models ?? [],
      labels: input.labels ?? {},
      static: prev?.static ?? false,
      // A node that re-registers (agent restart) keeps its cordon: an operator's decision.
      cordoned: prev?.cordoned ?? false,
      registeredAt: prev && prev.address === input.address ? prev.registeredAt : t,
      lastHeartbeatAt: t,
    };
    this.nodes.set(input.id, record);
    const visible = !prev || prev.address !== record.address || prev.models.join() !== record.models.join();
    if (visible) this.changed();
    return record;
  }

  /** False when the node is unknown (expired): the agent must register again. */
  heartbeat(id: string): boolean {
    const n = this.nodes.get(id);
    if (!n) return false;
    n.lastHeartbeatAt = this.now();
    return true;
  }

  deregister(id: string): boolean {
    const n = this.nodes.get(id);
    if (!n || n.static) return false;
    this.nodes.delete(id);
    this.changed();
    return true;
  }

  setCordoned(id: string, cordoned: boolean): NodeRecord | undefined {
    const n = this.nodes.get(id);
    if (!n) return undefined;
    if (n.cordoned !== cordoned) {
      n.cordoned = cordoned;
      this.changed();
    }
    return n;
  }

  get(id: string): NodeRecord | undefined {
    return this.nodes.get(id);
  }

  list(): NodeRecord[] {
    return [...this.nodes.values()].sort((a, b) => a.id.localeCompare(b.id));
  }

  snapshot(): { version: number; nodes: NodeRecord[] } {
    return { version: this.version, nodes: this.list() };
  }

  sweep(): void {
    const cutoff = this.now() - this.ttlMs;
    let removed = false;
    for (const n of this.nodes.values()) {
      if (!n.static && n.lastHeartbeatAt < cutoff) {
        this.nodes.delete(n.id);
        removed = true;
        this.emit('expired', n);
      }
    }
    if (removed) this.changed();
  }

  private changed(): void {
    this.version += 1;
    this.emit('change', this.snapshot());
  }
}
