// Which nodes this router recently sent each prompt block to: an approximation of the nodes'
// prefix caches built from our own picks (no engine reports its cache contents). LRU-bounded.

export class PrefixIndex {
  /** block hash -> nodes that got it, most recent last (at most `nodesPerBlock`). */
  private readonly blocks = new Map<string, string[]>();

  constructor(
    private readonly capacityBlocks = 100_000,
    /** A hot prefix may live on a few nodes at once (the affinity guard spreads it). */
    private readonly nodesPerBlock = 4,
  ) {}

  get size(): number {
    return this.blocks.size;
  }

  record(hashes: readonly string[], nodeId: string): void {
    for (const h of hashes) {
      const nodes = this.blocks.get(h);
      if (nodes) {
        this.blocks.delete(h); // re-insert: most recently used last
        const i = nodes.indexOf(nodeId);
        if (i >= 0) nodes.splice(i, 1);
        nodes.push(nodeId);
        if (nodes.length > this.nodesPerBlock) nodes.shift();
        this.blocks.set(h, nodes);
      } else {
        this.blocks.set(h, [nodeId]);
      }
    }
    while (this.blocks.size > this.capacityBlocks) {
      const oldest = this.blocks.keys().next().value;
      if (oldest === undefined) break;
      this.blocks.delete(oldest);
    }
  }

  /** Node id -> number of leading blocks of `hashes` it holds. */
  match(hashes: readonly string[]): Map<string, number> {
    const out = new Map<string, number>();
    for (let i = 0; i < hashes.length; i++) {
      const nodes = this.blocks.get(hashes[i]!);
      if (!nodes) break;
      let any = false;
      for (const n of nodes) {
        // Leading blocks only: a node counts at block i only if it held block i-1 too.
        if ((out.get(n) ?? 0) === i) {
          out.set(n, i + 1);
          any = true;
        }
      }
      if (!any) break;
    }
    return out;
  }

  /** Forget a node (it left the pool or restarted: its cache is gone). */
  forget(nodeId: string): void {
    for (const [h, nodes] of this.blocks) {
      const i = nodes.indexOf(nodeId);
      if (i < 0) continue;
      nodes.splice(i, 1);
      if (nodes.length === 0) this.blocks.delete(h);
    }
  }
}
