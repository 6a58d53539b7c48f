// A job's parsed items on disk (`dataDir/items/<batch>.jsonl`, one validated item per line, and
// `<batch>.idx`, the byte offset of every line): the worker reads the one item it runs, so a
// running job holds 8 bytes per item in memory, not its whole input, and a finished job nothing.
// Next to the file bytes (blobs.ts), never in Redis.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { open, rm, writeFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { ItemSpec } from './types.ts';

const SAFE_ID = /^[A-Za-z0-9_-]{1,128}$/;

export interface ItemWriter {
  add(item: ItemSpec): Promise<void>;
  /** Writes the index; the items are readable from now on. */
  done(): Promise<number>;
  abort(): Promise<void>;
}

export class ItemFiles {
  private readonly dir: string;
  /** Offsets of the jobs this process is running (dropped by `release`). */
  private readonly index = new Map<string, Float64Array>();

  constructor(dataDir: string) {
    this.dir = join(dataDir, 'items');
    mkdirSync(this.dir, { recursive: true });
  }

  private paths(batchId: string) {
    if (!SAFE_ID.test(batchId)) throw new Error(`unsafe batch id ${JSON.stringify(batchId)}`);
    return { data: join(this.dir, `${batchId}.jsonl`), idx: join(this.dir, `${batchId}.idx`) };
  }

  async writer(batchId: string): Promise<ItemWriter> {
    const p = this.paths(batchId);
    const fh: FileHandle = await open(p.data, 'w');
    const offsets: number[] = [0];
    let pos = 0;
    let closed = false;
    return {
      add: async (item) => {
        const b = Buffer.from(`${JSON.stringify(item)}\n`);
        await fh.write(b);
        pos += b.length;
        offsets.push(pos);
      },
      done: async () => {
        await fh.sync();
        await fh.close();
        closed = true;
        const idx = Float64Array.from(offsets);
        await writeFile(p.idx, Buffer.from(idx.buffer));
        this.index.set(batchId, idx);
        return offsets.length - 1;
      },
      abort: async () => {
        if (!closed) await fh.close().catch(() => undefined);
        await this.delete(batchId);
      },
    };
  }

  /** All at once (a job from a data dir written before items files existed). */
  writeAllSync(batchId: string, items: ItemSpec[]): void {
    const p = this.paths(batchId);
    const offsets: number[] = [0];
    const bufs = items.map((it) => Buffer.from(`${JSON.stringify(it)}\n`));
    for (const b of bufs) offsets.push(offsets.at(-1)! + b.length);
    writeFileSync(p.data, Buffer.concat(bufs));
    writeFileSync(p.idx, Buffer.from(Float64Array.from(offsets).buffer));
  }

  private offsets(batchId: string): Float64Array | undefined {
    let idx = this.index.get(batchId);
    if (!idx) {
      try {
        const b = readFileSync(this.paths(batchId).idx);
        idx = new Float64Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
      } catch {
        return undefined;
      }
      this.index.set(batchId, idx);
    }
    return idx;
  }

  count(batchId: string): number {
    return Math.max(0, (this.offsets(batchId)?.length ?? 1) - 1);
  }

  async get(batchId: string, index: number): Promise<ItemSpec | undefined> {
    const idx = this.offsets(batchId);
    if (!idx || !Number.isInteger(index) || index < 0 || index + 1 >= idx.length) return undefined;
    const start = idx[index]!;
    const len = idx[index + 1]! - start;
    const fh = await open(this.paths(batchId).data, 'r');
    try {
      const buf = Buffer.alloc(len);
      await fh.read(buf, 0, len, start);
      return JSON.parse(buf.toString('utf8')) as ItemSpec;
    } finally {
      await fh.close();
    }
  }

  /** Forgets the job's offsets (a finished job leaves memory); the files stay until `delete`. */
  release(batchId: string): void {
    this.index.delete(batchId);
  }

  async delete(batchId: string): Promise<void> {
    this.index.delete(batchId);
    const p = this.paths(batchId);
    await Promise.all([rm(p.data, { force: true }), rm(p.idx, { force: true })]);
  }
}
