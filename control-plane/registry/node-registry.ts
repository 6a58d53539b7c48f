// The cluster's membership: agents register and heartbeat; a node that misses heartbeats for
// `ttlMs` expires. Static nodes (from config) never expire. Cordoned nodes stay listed but
// routers send them nothing new. Every change is published to watchers.
import { EventEmitter } from 'node:events';
import { randomBytes, timingSafeEqual } from 'node:crypto';

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

export type HeartbeatResult = 'ok' | 'unknown' | 'stale';

export class NodeRegistryFullError extends Error {}

export class NodeRegistry extends EventEmitter {
  private readonly nodes = new Map<string, NodeRecord>();
  /** Each registration's epoch: heartbeats must carry it, so only the process that registered keeps the entry alive. Never published. */
  private readonly epochs = new Map<string, Buffer>();
  /** Nodes registered (static ones are not counted). */
  maxNodes = Infinity;
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

  /** Registers (or re-registers) a node; returns the record and the new epoch its heartbeats carry. */
  register(input: RegisterInput): NodeRecord & { epoch: string } {
    const t = this.now();
    const prev = this.nodes.get(input.id);
    if (!prev && this.dynamicCount() >= this.maxNodes)
      throw new NodeRegistryFullError(`the registry holds its maximum of ${this.maxNodes} nodes`);
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
    const epoch = randomBytes(16);
    this.epochs.set(input.id, epoch);
    const visible = !prev || prev.address !== record.address || prev.models.join() !== record.models.join();
    if (visible) this.changed();
    return { ...record, epoch: epoch.toString('base64url') };
  }

  /** `unknown` when the node is not registered (expired): the agent must register again; `stale` when the epoch is not the current registration's. */
  heartbeat(id: string, epoch?: string): HeartbeatResult {
    const n = this.nodes.get(id);
    if (!n) return 'unknown';
    const want = this.epochs.get(id);
    if (want) {
      const got = Buffer.from(epoch ?? '', 'base64url');
      if (got.length !== want.length || !timingSafeEqual(got, want)) return 'stale';
    }
    n.lastHeartbeatAt = this.now();
    return 'ok';
  }

  private dynamicCount(): number {
    let n = 0;
    for (const r of this.nodes.values()) if (!r.static) n += 1;
    return n;
  }

  deregister(id: string): boolean {
    const n = this.nodes.get(id);
    if (!n || n.static) return false;
    this.nodes.delete(id);
    this.epochs.delete(id);
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
        this.epochs.delete(n.id);
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
