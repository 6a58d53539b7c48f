// One lane's queue: bounded, and fair between tenants. Each tenant has its own FIFO (oldest
// first); tenants take turns, so one tenant's burst cannot starve another's single request.

export interface Queued {
  tenant: string;
  enqueuedAt: number;
  /** absolute ms on the controller's clock */
  deadline: number;
}

export class FairQueue<T extends Queued> {
  private readonly byTenant = new Map<string, T[]>();
  /** Round-robin order of tenants with queued work; the next to serve is first. */
  private turn: string[] = [];
  private count = 0;

  constructor(readonly capacity: number) {}

  get size(): number {
    return this.count;
  }

  get full(): boolean {
    return this.count >= this.capacity;
  }

  push(e: T): boolean {
    if (this.full) return false;
    let q = this.byTenant.get(e.tenant);
    if (!q) {
      q = [];
      this.byTenant.set(e.tenant, q);
      this.turn.push(e.tenant);
    }
    q.push(e);
    this.count++;
    return true;
  }

  /** The entry that would be served next, without removing it. */
  peek(): T | undefined {
    const t = this.turn[0];
    return t === undefined ? undefined : this.byTenant.get(t)![0];
  }

  /** Serve the next entry: the head of the tenant whose turn it is; that tenant goes to the back. */
  shift(): T | undefined {
    const t = this.turn.shift();
    if (t === undefined) return undefined;
    const q = this.byTenant.get(t)!;
    const e = q.shift()!;
    this.count--;
    if (q.length > 0) this.turn.push(t);
    else this.byTenant.delete(t);
    return e;
  }

  remove(e: T): boolean {
    const q = this.byTenant.get(e.tenant);
    const i = q ? q.indexOf(e) : -1;
    if (!q || i < 0) return false;
    q.splice(i, 1);
    this.count--;
    if (q.length === 0) {
      this.byTenant.delete(e.tenant);
      this.turn = this.turn.filter((x) => x !== e.tenant);
    }
    return true;
  }

  /** The most recently queued entry (the eviction victim when a higher lane needs the room). */
  youngest(): T | undefined {
    let y: T | undefined;
    for (const q of this.byTenant.values()) {
      const last = q[q.length - 1];
      if (last && (!y || last.enqueuedAt >= y.enqueuedAt)) y = last;
    }
    return y;
  }

  /** Removes and returns every entry whose deadline has passed. */
  expire(now: number): T[] {
    const out: T[] = [];
    for (const q of this.byTenant.values()) for (const e of q) if (e.deadline <= now) out.push(e);
    for (const e of out) this.remove(e);
    return out;
  }

  oldestAge(now: number): number {
    let age = 0;
    for (const q of this.byTenant.values()) if (q[0]) age = Math.max(age, now - q[0].enqueuedAt);
    return age;
  }
}
