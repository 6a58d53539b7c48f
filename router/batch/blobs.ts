// File bytes on disk under `dataDir/blobs` for every store (Redis holds metadata only, so file
// bytes never share the Redis that holds rate limits). An upload streams into a temp file with its
// size counted as it arrives (over the limit: the stream is cut and the temp file deleted), is
// fsynced, then renamed into place: a file is either whole or absent, never partial.
import { createReadStream, createWriteStream, mkdirSync, readdirSync, rmSync, statSync, type ReadStream } from 'node:fs';
import { open, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

export class TooLargeError extends Error {
  constructor(readonly limit: number) {
    super(`more than ${limit} bytes`);
  }
}

/** Ids are server-made (`file-…`, `batch_…`); anything else never reaches the file system. */
const SAFE_ID = /^[A-Za-z0-9_-]{1,128}$/;

export class BlobStore {
  private readonly dir: string;
  private readonly tmpDir: string;

  constructor(dataDir: string) {
    this.dir = join(dataDir, 'blobs');
    this.tmpDir = join(dataDir, 'tmp');
    mkdirSync(this.dir, { recursive: true });
    mkdirSync(this.tmpDir, { recursive: true });
    this.cleanTemp(10 * 60_000);
  }

  /** Temp files of uploads that a crash interrupted (older than any upload can take; replicas may share the dir). */
  cleanTemp(olderThanMs: number): void {
    const cutoff = Date.now() - olderThanMs;
    for (const name of readdirSync(this.tmpDir)) {
      const p = join(this.tmpDir, name);
      try {
        if (statSync(p).mtimeMs < cutoff) rmSync(p, { force: true });
      } catch {
        // gone already (another replica)
      }
    }
  }

  path(id: string): string {
    if (!SAFE_ID.test(id)) throw new Error(`unsafe blob id ${JSON.stringify(id)}`);
    return join(this.dir, id);
  }

  /** Streams `source` into a temp file; rejects with TooLargeError past `maxBytes` (the temp file deleted). */
  async receive(source: Readable, maxBytes: number): Promise<{ tmp: string; bytes: number }> {
    const tmp = join(this.tmpDir, `${process.pid}-${randomBytes(8).toString('hex')}`);
    let bytes = 0;
    const count = new Transform({
      transform(chunk: Buffer, _enc, done) {
        bytes += chunk.length;
        if (bytes > maxBytes) return done(new TooLargeError(maxBytes));
        done(null, chunk);
      },
    });
    try {
      await pipeline(source, count, createWriteStream(tmp));
      await fsyncFile(tmp);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
    return { tmp, bytes };
  }

  /** Moves a received temp file into place as `id`. */
  async commit(tmp: string, id: string): Promise<void> {
    await rename(tmp, this.path(id));
  }

  async discard(tmp: string): Promise<void> {
    await rm(tmp, { force: true });
  }

  /** Writes `id` from lines (output and error files), atomically; returns its size. */
  async writeLines(id: string, lines: Iterable<string>): Promise<number> {
    const tmp = join(this.tmpDir, `${process.pid}-${randomBytes(8).toString('hex')}`);
    let bytes = 0;
    const ws = createWriteStream(tmp);
    try {
      await pipeline(
        (function* () {
          for (const l of lines) {
            const b = Buffer.from(`${l}\n`);
            bytes += b.length;
            yield b;
          }
        })(),
        ws,
      );
      await fsyncFile(tmp);
      await rename(tmp, this.path(id));
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
    return bytes;
  }

  exists(id: string): boolean {
    try {
      return statSync(this.path(id)).isFile();
    } catch {
      return false;
    }
  }

  read(id: string): ReadStream {
    return createReadStream(this.path(id));
  }

  async delete(id: string): Promise<void> {
    await rm(this.path(id), { force: true });
  }
}

/** The bytes on the disk before the rename makes the file visible. */
async function fsyncFile(path: string): Promise<void> {
  const fh = await open(path, 'r+');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
