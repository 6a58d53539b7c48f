// The semantic cache's index: per scope (tenant + model + parameters + conversation before the last
// user message), the embeddings of stored requests' last user messages and the key of the stored
// answer. In memory and bounded (per scope and in total, oldest dropped first); a linear scan of
// one scope is cheap at these sizes (2,000 x 100-d dot products: about a millisecond, test/bench/cache.ts).
export interface SemanticMatch {
  key: string;
  similarity: number;
}

interface Entry {
  vec: Float32Array;
  key: string;
  expiresAt: number;
  alive: boolean;
}

function normalised(v: ArrayLike<number>): Float32Array {
  let n = 0;
  for (let i = 0; i < v.length; i++) n += v[i]! * v[i]!;
  const inv = n > 0 ? 1 / Math.sqrt(n) : 0;
  const out = new Float32Array(v.length);
  for (let i = 0; i < v.length; i++) out[i] = v[i]! * inv;
  return out;
}

export class SemanticIndex {
  private readonly scopes = new Map<string, Entry[]>();
  /** Insertion order across scopes, for the total bound. */
  private readonly order: { scope: string; entry: Entry }[] = [];
  private head = 0;
  private count = 0;

  constructor(
    private readonly maxEntries: number,
    private readonly maxPerScope: number,
    private readonly now: () => number = Date.now,
  ) {}

  get size(): number {
    return this.count;
  }

  add(scope: string, vector: ArrayLike<number>, key: string, ttlMs: number): void {
    const entries = this.scopes.get(scope) ?? [];
    this.scopes.set(scope, entries);
    // One entry per stored answer: a re-store refreshes it.
    const same = entries.findIndex((e) => e.key === key);
    if (same >= 0) this.drop(scope, entries[same]!);
    const entry: Entry = { vec: normalised(vector), key, expiresAt: this.now() + ttlMs, alive: true };
    entries.push(entry);
    this.order.push({ scope, entry });
    this.count++;
    if (entries.length > this.maxPerScope) this.drop(scope, entries[0]!);
    while (this.count > this.maxEntries && this.head < this.order.length) {
      const { scope: s, entry: e } = this.order[this.head++]!;
      this.drop(s, e);
    }
    // Compact the order log now and then (dropped entries linger in it) instead of on every eviction.
    if (this.order.length > 2 * this.maxEntries + 1_024) {
      const live = this.order.slice(this.head).filter((o) => o.entry.alive);
      this.order.length = 0;
      this.order.push(...live);
      this.head = 0;
    }
  }

  /** Stored entries of `scope` at or above `threshold`, most similar first. */
  search(scope: string, vector: ArrayLike<number>, threshold: number, limit = 3): SemanticMatch[] {
    const entries = this.scopes.get(scope);
    if (!entries?.length) return [];
    const q = normalised(vector);
    const now = this.now();
    const out: SemanticMatch[] = [];
    for (const e of [...entries]) {
      if (e.expiresAt <= now) {
        this.drop(scope, e);
        continue;
      }
      let dot = 0;
      for (let i = 0; i < q.length; i++) dot += q[i]! * e.vec[i]!;
      if (dot >= threshold) out.push({ key: e.key, similarity: dot });
    }
    return out.sort((a, b) => b.similarity - a.similarity).slice(0, limit);
  }

  private drop(scope: string, entry: Entry): void {
    const entries = this.scopes.get(scope);
    const i = entries?.indexOf(entry) ?? -1;
    if (!entries || i < 0) return; // already gone (the order log still names it)
    entries.splice(i, 1);
    entry.alive = false;
    this.count--;
    if (entries.length === 0) this.scopes.delete(scope);
  }
}
