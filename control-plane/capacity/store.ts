// Where the history persists. A small interface so a Redis store can replace the embedded file
// store: load everything still retained at start, append as samples arrive, and rewrite
// (compact) after retention and downsampling dropped or merged records.
import { appendFile, mkdir, open, readFile, rename } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { HistoryRecord } from './types.ts';

export interface HistoryStore {
  load(): Promise<HistoryRecord[]>;
  append(records: HistoryRecord[]): Promise<void>;
  /** Replace everything with `records` (atomically: a crash leaves the old or the new set). */
  rewrite(records: HistoryRecord[]): Promise<void>;
  close(): Promise<void>;
}

export class MemoryHistoryStore implements HistoryStore {
  records: HistoryRecord[] = [];
  async load() {
    return [...this.records];
  }
  async append(r: HistoryRecord[]) {
    this.records.push(...r);
  }
  async rewrite(r: HistoryRecord[]) {
    this.records = [...r];
  }
  async close() {
    /* nothing */
  }
}

/**
 * JSON lines in `<dir>/history.jsonl`. Appends add whole lines (a crash mid-append can leave one
 * torn last line, which load skips); compaction writes `history.jsonl.tmp`, fsyncs it and renames
 * it over the file, which is atomic on POSIX filesystems.
 */
export class FileHistoryStore implements HistoryStore {
  readonly file: string;
  private chain: Promise<unknown> = Promise.resolve();

  constructor(dir: string) {
    this.file = join(dir, 'history.jsonl');
  }

  async load(): Promise<HistoryRecord[]> {
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    // A torn last line after a crash is skipped.
    return text.split('\n').flatMap((line) => parseHistoryLine(line) ?? []);
  }

  append(records: HistoryRecord[]): Promise<void> {
    if (records.length === 0) return Promise.resolve();
    return this.serial(async () => {
      await mkdir(dirname(this.file), { recursive: true });
      await appendFile(this.file, records.map((r) => JSON.stringify(r)).join('\n') + '\n');
    });
  }

  rewrite(records: HistoryRecord[]): Promise<void> {
    return this.serial(async () => {
      await mkdir(dirname(this.file), { recursive: true });
      // Per-process temp name: a second process pointed at the same directory must not be able to
      // rename this one's half-written file away (it would still be a misconfiguration).
      const tmp = `${this.file}.${process.pid}.tmp`;
      const fh = await open(tmp, 'w');
      try {
        await fh.writeFile(records.map((r) => JSON.stringify(r) + '\n').join(''));
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, this.file);
    });
  }

  async close(): Promise<void> {
    await this.chain;
  }

  /** Appends and rewrites never interleave. */
  private serial(fn: () => Promise<void>): Promise<void> {
    const next = this.chain.then(fn, fn);
    this.chain = next.catch(() => undefined);
    return next;
  }
}

/** One stored history record, or undefined for a line that is not one (torn, foreign). */
export function parseHistoryLine(line: string): HistoryRecord | undefined {
  if (!line) return undefined;
  try {
    const r = JSON.parse(line) as HistoryRecord;
    return (r.kind === 'raw' || r.kind === 'bucket') && typeof r.t === 'number' && typeof r.node === 'string' ? r : undefined;
  } catch {
    return undefined;
  }
}
