// The embedded default: files, jobs and item state in memory, mirrored to `dataDir` so they
// survive a restart (one router; leases only keep this process's own workers apart). Item state
// is a journal of transitions (finished, retried, dead-lettered, requeued) appended behind, at
// most `flushMs` old, so the cost per item is one short line, not a rewrite of the whole job:
// after a crash the items finished in that window run again, and their lines are still written
// once, because the lost journal lines lost them too. Claims are not journaled: after a restart
// every leased item is claimable at once.
//
// Memory: file and job records (small) stay loaded; a job's item state is loaded from its journal
// when the job is worked on and dropped again when it ends (`release`); items are read from disk
// one at a time (item-file.ts), file bytes never enter memory (blobs.ts).
import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BlobStore } from './blobs.ts';
import { ItemFiles } from './item-file.ts';
import type { BatchStore } from './store.ts';
import { TERMINAL, type BatchRecord, type Claim, type DeadLetter, type ItemCounts, type ItemSpec, type StoredFile } from './types.ts';

interface ItemState {
  /** index -> time from which it may be claimed (unfinished items only). */
  ready: Map<number, number>;
  leases: Map<number, string>;
  attempts: Map<number, number>;
  output: Map<number, string>;
  errors: Map<number, string>;
  dead: Map<number, DeadLetter>;
}

/** One journal line. */
type Op =
  | { o: 'f'; i: number; to: 'output' | 'errors'; l: string }
  | { o: 'r'; i: number; at: number; c: boolean }
  | { o: 'd'; i: number; l: string; d: DeadLetter }
  | { o: 'q'; i: number; at: number }
  | { o: 'drop' };

function writeAtomic(path: string, data: string | Buffer): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, data);
  renameSync(tmp, path);
}

export class FileBatchStore implements BatchStore {
  readonly kind = 'file' as const;
  readonly blobs: BlobStore;
  readonly itemFiles: ItemFiles;
  private files = new Map<string, StoredFile>();
  private batches = new Map<string, BatchRecord>();
  private state = new Map<string, ItemState>();
  private active = new Set<string>();
  private locks = new Map<string, { owner: string; until: number }>();
  private pending = new Map<string, string[]>();
  private timer: NodeJS.Timeout | undefined;
  private readonly filesDir: string;
  private readonly batchesDir: string;

  constructor(
    private readonly dir: string,
    private readonly flushMs = 100,
  ) {
    this.filesDir = join(dir, 'files');
    this.batchesDir = join(dir, 'batches');
    mkdirSync(this.filesDir, { recursive: true });
    mkdirSync(this.batchesDir, { recursive: true });
    this.blobs = new BlobStore(dir);
    this.itemFiles = new ItemFiles(dir);
    this.load();
  }

  private load(): void {
    for (const name of readdirSync(this.filesDir)) {
      if (!name.endsWith('.json')) continue;
      const f = JSON.parse(readFileSync(join(this.filesDir, name), 'utf8')) as StoredFile;
      this.files.set(f.id, f);
      // Bytes of a data dir from before blobs/ existed move there.
      const legacy = join(this.filesDir, `${f.id}.bin`);
      if (existsSync(legacy)) renameSync(legacy, this.blobs.path(f.id));
    }
    for (const name of readdirSync(this.batchesDir)) {
      const m = /^(.+)\.batch\.json$/.exec(name);
      if (m) this.batches.set(m[1]!, JSON.parse(readFileSync(join(this.batchesDir, name), 'utf8')) as BatchRecord);
    }
    const activePath = join(this.dir, 'active.json');
    if (existsSync(activePath)) for (const id of JSON.parse(readFileSync(activePath, 'utf8')) as string[]) this.active.add(id);
  }

  /** A job's item state from its items file and journal (after a restart, or for a finished job needed again). */
  private loadState(id: string): ItemState | undefined {
    const legacy = join(this.batchesDir, `${id}.items.json`);
    if (!this.itemFiles.count(id) && existsSync(legacy)) {
      this.itemFiles.writeAllSync(id, JSON.parse(readFileSync(legacy, 'utf8')) as ItemSpec[]);
      rmSync(legacy, { force: true });
    }
    const count = this.itemFiles.count(id);
    const journal = join(this.batchesDir, `${id}.journal.jsonl`);
    if (!count && !existsSync(journal)) return undefined;
    const st = this.fresh(count, Date.now());
    if (existsSync(journal)) {
      for (const text of readFileSync(journal, 'utf8').split('\n')) {
        if (!text) continue;
        try {
          apply(st, JSON.parse(text) as Op);
        } catch {
          break; // a torn last line from a crash mid-append: everything before it holds
        }
      }
    }
    return st;
  }

  private fresh(count: number, now: number): ItemState {
    return {
      ready: new Map(Array.from({ length: count }, (_, i) => [i, now])),
      leases: new Map(),
      attempts: new Map(),
      output: new Map(),
      errors: new Map(),
      dead: new Map(),
    };
  }

  /** Applies a transition in memory and queues its journal line. */
  private record(batchId: string, op: Op): void {
    apply(this.st(batchId), op);
    let lines = this.pending.get(batchId);
    if (!lines) this.pending.set(batchId, (lines = []));
    lines.push(JSON.stringify(op));
    this.timer ??= setTimeout(() => this.flush(), this.flushMs);
  }

  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    for (const [id, lines] of this.pending) appendFileSync(join(this.batchesDir, `${id}.journal.jsonl`), lines.join('\n') + '\n');
    this.pending.clear();
  }

  async putFile(file: StoredFile): Promise<void> {
    writeAtomic(join(this.filesDir, `${file.id}.json`), JSON.stringify(file));
    this.files.set(file.id, file);
  }

  async getFile(id: string) {
    return this.files.get(id);
  }

  async listFiles(tenant: string) {
    return [...this.files.values()]
      .filter((f) => f.tenant === tenant)
      .sort((a, b) => b.created_at - a.created_at || (b.id < a.id ? -1 : 1));
  }

  async deleteFile(id: string): Promise<boolean> {
    if (!this.files.delete(id)) return false;
    rmSync(join(this.filesDir, `${id}.json`), { force: true });
    await this.blobs.delete(id);
    return true;
  }

  async expiredFiles(nowSec: number, max: number): Promise<string[]> {
    const out: string[] = [];
    for (const f of this.files.values()) {
      if (out.length >= max) break;
      if (typeof f.expires_at === 'number' && f.expires_at <= nowSec) out.push(f.id);
    }
    return out;
  }

  async putBatch(batch: BatchRecord): Promise<void> {
    writeAtomic(join(this.batchesDir, `${batch.id}.batch.json`), JSON.stringify(batch));
    this.batches.set(batch.id, structuredClone(batch));
  }

  async getBatch(id: string) {
    const b = this.batches.get(id);
    return b && structuredClone(b);
  }

  async listBatches(tenant: string) {
    return [...this.batches.values()]
      .filter((b) => b.tenant === tenant)
      .sort((a, b) => b.created_at - a.created_at || (b.id < a.id ? -1 : 1))
      .map((b) => structuredClone(b));
  }

  async activeBatches() {
    return [...this.active];
  }

  async setActive(id: string, active: boolean): Promise<void> {
    if (active) this.active.add(id);
    else this.active.delete(id);
    writeAtomic(join(this.dir, 'active.json'), JSON.stringify([...this.active]));
  }

  async expiredBatches(cutoffMs: number, max: number): Promise<string[]> {
    const out: string[] = [];
    for (const b of this.batches.values()) {
      if (out.length >= max) break;
      if (TERMINAL.has(b.status) && b.expiresAtMs < cutoffMs && !this.active.has(b.id)) out.push(b.id);
    }
    return out;
  }

  async deleteBatch(id: string): Promise<void> {
    this.flush();
    this.batches.delete(id);
    this.state.delete(id);
    rmSync(join(this.batchesDir, `${id}.batch.json`), { force: true });
    rmSync(join(this.batchesDir, `${id}.journal.jsonl`), { force: true });
    await this.itemFiles.delete(id);
  }

  async initItems(batchId: string, count: number, now: number): Promise<void> {
    writeFileSync(join(this.batchesDir, `${batchId}.journal.jsonl`), '');
    this.state.set(batchId, this.fresh(count, now));
  }

  async getItem(batchId: string, index: number) {
    return this.itemFiles.get(batchId, index);
  }

  release(batchId: string): void {
    // Written first: the journal is what a later load reads back.
    this.flush();
    this.state.delete(batchId);
    this.itemFiles.release(batchId);
  }

  private st(batchId: string): ItemState {
    let s = this.state.get(batchId);
    if (!s) {
      s = this.loadState(batchId);
      if (!s) throw new Error(`no items for batch ${batchId}`);
      this.state.set(batchId, s);
    }
    return s;
  }

  /** Leases live in memory only: a job released (finished, cancelled) or reloaded holds none, so a straggler's answer is refused. */
  private holds(batchId: string, c: Claim): ItemState | undefined {
    const s = this.state.get(batchId);
    return s && s.leases.get(c.index) === c.token && s.ready.has(c.index) ? s : undefined;
  }

  async claim(batchId: string, max: number, now: number, leaseMs: number, owner: string): Promise<Claim[]> {
    const s = this.st(batchId);
    const out: Claim[] = [];
    for (const [idx, at] of s.ready) {
      if (out.length >= max) break;
      if (at > now) continue;
      const token = `${owner}:${idx}:${now}`;
      s.ready.set(idx, now + leaseMs);
      s.leases.set(idx, token);
      out.push({ index: idx, token, attempts: s.attempts.get(idx) ?? 0 });
    }
    return out;
  }

  async renew(batchId: string, claim: Claim, until: number): Promise<boolean> {
    const s = this.holds(batchId, claim);
    if (!s) return false;
    s.ready.set(claim.index, until);
    return true;
  }

  async finish(batchId: string, claim: Claim, to: 'output' | 'errors', line: string): Promise<boolean> {
    if (!this.holds(batchId, claim)) return false;
    this.record(batchId, { o: 'f', i: claim.index, to, l: line });
    return true;
  }

  async retry(batchId: string, claim: Claim, at: number, countAttempt: boolean): Promise<boolean> {
    if (!this.holds(batchId, claim)) return false;
    this.record(batchId, { o: 'r', i: claim.index, at, c: countAttempt });
    return true;
  }

  async deadLetter(batchId: string, claim: Claim, line: string, dead: DeadLetter): Promise<boolean> {
    if (!this.holds(batchId, claim)) return false;
    this.record(batchId, { o: 'd', i: claim.index, l: line, d: dead });
    return true;
  }

  async closeRemaining(batchId: string, lineFor: (index: number) => Promise<string>): Promise<number> {
    const s = this.st(batchId);
    let n = 0;
    for (const idx of [...s.ready.keys()]) {
      const l = await lineFor(idx);
      if (!s.ready.has(idx)) continue;
      this.record(batchId, { o: 'f', i: idx, to: 'errors', l });
      n += 1;
    }
    return n;
  }

  async dropRemaining(batchId: string): Promise<number> {
    const s = this.st(batchId);
    const n = s.ready.size;
    this.record(batchId, { o: 'drop' });
    return n;
  }

  async counts(batchId: string): Promise<ItemCounts> {
    const s = this.st(batchId);
    return { pending: s.ready.size, output: s.output.size, errors: s.errors.size, dead: s.dead.size };
  }

  async results(batchId: string, which: 'output' | 'errors') {
    return new Map(this.st(batchId)[which]);
  }

  async deadLetters(batchId: string) {
    return [...this.st(batchId).dead.values()].sort((a, b) => a.index - b.index);
  }

  async requeue(batchId: string, now: number, indexes?: number[]): Promise<number> {
    const s = this.st(batchId);
    let n = 0;
    for (const idx of indexes ?? [...s.dead.keys()]) {
      if (!s.dead.has(idx)) continue;
      this.record(batchId, { o: 'q', i: idx, at: now });
      n += 1;
    }
    return n;
  }

  async lock(name: string, ttlMs: number, owner: string): Promise<boolean> {
    const l = this.locks.get(name);
    if (l && l.until > Date.now() && l.owner !== owner) return false;
    this.locks.set(name, { owner, until: Date.now() + ttlMs });
    return true;
  }

  async unlock(name: string, owner: string): Promise<void> {
    if (this.locks.get(name)?.owner === owner) this.locks.delete(name);
  }

  async close(): Promise<void> {
    this.flush();
  }
}

/** One transition, the same in memory and on replay. */
function apply(s: ItemState, op: Op): void {
  switch (op.o) {
    case 'f':
      s.ready.delete(op.i);
      s.leases.delete(op.i);
      s[op.to].set(op.i, op.l);
      break;
    case 'r':
      s.ready.set(op.i, op.at);
      s.leases.delete(op.i);
      if (op.c) s.attempts.set(op.i, (s.attempts.get(op.i) ?? 0) + 1);
      break;
    case 'd':
      s.ready.delete(op.i);
      s.leases.delete(op.i);
      s.errors.set(op.i, op.l);
      s.dead.set(op.i, op.d);
      break;
    case 'q':
      s.dead.delete(op.i);
      s.errors.delete(op.i);
      s.attempts.delete(op.i);
      s.ready.set(op.i, op.at);
      break;
    case 'drop':
      s.ready.clear();
      s.leases.clear();
      break;
  }
}
