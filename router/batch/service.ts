// The Files and Batch API operations, each scoped to one tenant: a tenant's files and jobs are
// invisible to every other tenant (an id of someone else's answers 404, as an unknown id does).
// Uploads are bounded: concurrent uploads per replica and per tenant, per-tenant file count and
// bytes (checked before the body is read and again while it streams), the size cap while
// streaming; every file expires (expires_after, else the configured default) and the sweeper
// deletes expired files and finished jobs past their retention.
import type { Readable } from 'node:stream';
import { ApiError, errors } from '../../common/errors.ts';
import { TooLargeError } from './blobs.ts';
import type { BatchConfig } from './config.ts';
import { SUPPORTED_ENDPOINTS, newId, parseInputStream } from './lines.ts';
import type { BatchStore } from './store.ts';
import { TERMINAL, publicBatch, type BatchRecord, type DeadLetter, type StoredFile } from './types.ts';

/** Completion windows by name: OpenAI accepts `24h` only; an operator may add more. A Map: client input never indexes an object. */
export function completionWindows(cfg: Pick<BatchConfig, 'completionWindows'>): ReadonlyMap<string, number> {
  return new Map([['24h', 86_400_000], ...Object.entries(cfg.completionWindows)]);
}

/** The longest a job can run: how long its item state must live. */
export function longestWindowMs(cfg: BatchConfig): number {
  return Math.max(cfg.completionWindowMs ?? 0, ...completionWindows(cfg).values());
}

export const EXPIRES_AFTER_MIN_S = 3_600;
export const EXPIRES_AFTER_MAX_S = 2_592_000;

export interface ExpiresAfter {
  anchor: string;
  seconds: number;
}

/** OpenAI's `expires_after` ({anchor: "created_at", seconds: 3600..2592000}); the param named as the form field is. */
export function checkExpiresAfter(anchor: string | undefined, seconds: string | number | undefined): ExpiresAfter | undefined {
  if (anchor === undefined && seconds === undefined) return undefined;
  if (anchor !== 'created_at')
    throw errors.invalidRequest(
      `Invalid expires_after[anchor] '${String(anchor)}': the only anchor is 'created_at'.`,
      'expires_after[anchor]',
    );
  const n = typeof seconds === 'number' ? seconds : /^\d{1,10}$/.test(seconds ?? '') ? Number(seconds) : NaN;
  if (!Number.isInteger(n) || n < EXPIRES_AFTER_MIN_S || n > EXPIRES_AFTER_MAX_S)
    throw errors.invalidRequest(
      `Invalid expires_after[seconds]: an integer from ${EXPIRES_AFTER_MIN_S} to ${EXPIRES_AFTER_MAX_S} is required.`,
      'expires_after[seconds]',
    );
  return { anchor, seconds: n };
}

export function quotaExceeded(message: string): ApiError {
  return errors.invalidRequest(message, 'file', 'file_quota_exceeded');
}

/** Uploads in progress in this process, router-wide and per tenant. */
class UploadSlots {
  private total = 0;
  private readonly perTenant = new Map<string, number>();
  constructor(private readonly cfg: BatchConfig['uploads']) {}

  acquire(tenant: string): () => void {
    const mine = this.perTenant.get(tenant) ?? 0;
    if (this.total >= this.cfg.maxConcurrent)
      throw errors.rateLimited('Too many uploads in progress on this server; retry shortly.', 1, 'too_many_uploads');
    if (mine >= this.cfg.maxConcurrentPerTenant)
      throw errors.rateLimited(
        `At most ${this.cfg.maxConcurrentPerTenant} uploads of one tenant may be in progress at once; retry when one has finished.`,
        1,
        'too_many_uploads',
      );
    this.total += 1;
    this.perTenant.set(tenant, mine + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.total -= 1;
      const n = (this.perTenant.get(tenant) ?? 1) - 1;
      if (n > 0) this.perTenant.set(tenant, n);
      else this.perTenant.delete(tenant);
    };
  }
}

export interface Page<T> {
  object: 'list';
  data: T[];
  first_id: string | null;
  last_id: string | null;
  has_more: boolean;
}

/** OpenAI's cursor pagination: `after` is the last id of the previous page. */
export function paginate<T extends { id: string }>(all: T[], after: string | undefined, limit: number): Page<T> {
  let start = 0;
  if (after) {
    const i = all.findIndex((x) => x.id === after);
    start = i < 0 ? all.length : i + 1;
  }
  const data = all.slice(start, start + limit);
  return { object: 'list', data, first_id: data[0]?.id ?? null, last_id: data.at(-1)?.id ?? null, has_more: start + limit < all.length };
}

export class BatchService {
  private readonly windows: ReadonlyMap<string, number>;
  private readonly slots: UploadSlots;

  constructor(
    private readonly store: BatchStore,
    private readonly cfg: BatchConfig,
    private readonly now: () => number = Date.now,
  ) {
    this.windows = completionWindows(cfg);
    this.slots = new UploadSlots(cfg.uploads);
  }

  /** A slot for one upload (429 with Retry-After when the server's or the tenant's are taken); call the result when done. */
  acquireUpload(tenant: string): () => void {
    return this.slots.acquire(tenant);
  }

  /** The tenant's live files and their bytes (expired ones do not count, swept or not). */
  private async usage(tenant: string): Promise<{ files: number; bytes: number }> {
    const nowSec = Math.floor(this.now() / 1000);
    let files = 0;
    let bytes = 0;
    for (const f of await this.store.listFiles(tenant)) {
      if (isExpired(f, nowSec)) continue;
      files += 1;
      bytes += f.bytes;
    }
    return { files, bytes };
  }

  /** Before the body is read: room for one more file? Returns how many bytes it may have. */
  async uploadAllowance(tenant: string): Promise<number> {
    const q = this.cfg.quota;
    const u = await this.usage(tenant);
    if (u.files >= q.maxFilesPerTenant)
      throw quotaExceeded(`File quota exceeded: at most ${q.maxFilesPerTenant} files per tenant; delete some or let them expire.`);
    if (u.bytes >= q.maxBytesPerTenant)
      throw quotaExceeded(`Storage quota exceeded: at most ${q.maxBytesPerTenant} bytes per tenant; delete some files or let them expire.`);
    return Math.min(this.cfg.maxFileBytes, q.maxBytesPerTenant - u.bytes);
  }

  /** The purpose check, done as soon as the field arrives (before the file when the client sends it first). */
  checkPurpose(purpose: string): void {
    if (purpose !== 'batch')
      throw errors.invalidRequest(`Invalid purpose '${purpose}': this server stores files for purpose 'batch' only.`, 'purpose');
  }

  /** Streams the file part to a temp file on disk, within `maxBytes`; 413 past maxFileBytes, 400 past the byte quota. */
  async receiveFile(content: Readable, maxBytes: number): Promise<{ tmp: string; bytes: number }> {
    try {
      return await this.store.blobs.receive(content, maxBytes);
    } catch (err) {
      if (err instanceof TooLargeError) {
        if (maxBytes >= this.cfg.maxFileBytes) throw errors.payloadTooLarge(`The file is larger than ${this.cfg.maxFileBytes} bytes.`);
        throw quotaExceeded(`Storage quota exceeded: this file would take the tenant past ${this.cfg.quota.maxBytesPerTenant} bytes.`);
      }
      throw err;
    }
  }

  async discardUpload(received: { tmp: string }): Promise<void> {
    await this.store.blobs.discard(received.tmp);
  }

  /** Makes a received temp file a File object (quotas checked again: another upload may have finished meanwhile). */
  async commitUpload(
    tenant: string,
    received: { tmp: string; bytes: number },
    meta: { filename: string; purpose: string; expiresAfter?: ExpiresAfter },
  ): Promise<StoredFile> {
    try {
      this.checkPurpose(meta.purpose);
      if (received.bytes === 0) throw errors.invalidRequest('The file is empty.', 'file');
      const q = this.cfg.quota;
      const u = await this.usage(tenant);
      if (u.files + 1 > q.maxFilesPerTenant) throw quotaExceeded(`File quota exceeded: at most ${q.maxFilesPerTenant} files per tenant.`);
      if (u.bytes + received.bytes > q.maxBytesPerTenant)
        throw quotaExceeded(`Storage quota exceeded: at most ${q.maxBytesPerTenant} bytes per tenant.`);
      const createdAt = Math.floor(this.now() / 1000);
      const file: StoredFile = {
        id: newId('file-'),
        object: 'file',
        bytes: received.bytes,
        created_at: createdAt,
        filename: meta.filename.slice(0, 255),
        purpose: 'batch',
        status: 'processed',
        expires_at: createdAt + (meta.expiresAfter?.seconds ?? this.cfg.fileExpiresAfterSeconds),
        tenant,
      };
      await this.store.blobs.commit(received.tmp, file.id);
      await this.store.putFile(file);
      return file;
    } finally {
      await this.store.blobs.discard(received.tmp);
    }
  }

  /** One whole upload from a stream (the route does the same in steps, checking purpose as it arrives). */
  async receiveUpload(
    tenant: string,
    u: { filename: string; purpose: string; expiresAfter?: ExpiresAfter; content: Readable },
  ): Promise<StoredFile> {
    const release = this.acquireUpload(tenant);
    try {
      this.checkPurpose(u.purpose);
      const received = await this.receiveFile(u.content, await this.uploadAllowance(tenant));
      return await this.commitUpload(tenant, received, u);
    } finally {
      release();
    }
  }

  async getFile(tenant: string, id: string): Promise<StoredFile> {
    const f = await this.store.getFile(id);
    // Expired is gone, whether or not the sweeper has deleted it yet.
    if (!f || f.tenant !== tenant || isExpired(f, Math.floor(this.now() / 1000))) throw errors.notFound(`No such File object: ${id}`);
    return f;
  }

  /** The file's bytes as a stream from disk. */
  async fileContent(tenant: string, id: string): Promise<Readable> {
    await this.getFile(tenant, id);
    if (!this.store.blobs.exists(id)) throw errors.notFound(`No such File object: ${id}`);
    return this.store.blobs.read(id);
  }

  async listFiles(
    tenant: string,
    q: { purpose?: string; after?: string; limit: number; order: 'asc' | 'desc' },
  ): Promise<Page<StoredFile>> {
    const nowSec = Math.floor(this.now() / 1000);
    let all = (await this.store.listFiles(tenant)).filter((f) => !isExpired(f, nowSec));
    if (q.purpose) all = all.filter((f) => f.purpose === q.purpose);
    if (q.order === 'asc') all.reverse();
    return paginate(all, q.after, q.limit);
  }

  async deleteFile(tenant: string, id: string): Promise<void> {
    await this.getFile(tenant, id);
    await this.store.deleteFile(id);
  }

  /** Deletes expired files (records and bytes) and jobs past their retention; returns how many files. */
  async sweep(max = 1_000): Promise<number> {
    const now = this.now();
    let n = 0;
    for (const id of await this.store.expiredFiles(Math.floor(now / 1000), max)) if (await this.store.deleteFile(id)) n += 1;
    for (const id of await this.store.expiredBatches(now - this.cfg.batchRetentionSeconds * 1000, max)) await this.store.deleteBatch(id);
    return n;
  }

  async createBatch(
    tenant: string,
    keyId: string | null,
    body: {
      input_file_id: string;
      endpoint: string;
      completion_window: string;
      metadata?: Record<string, string> | null;
      output_expires_after?: ExpiresAfter;
    },
  ): Promise<BatchRecord> {
    if (!(SUPPORTED_ENDPOINTS as readonly string[]).includes(body.endpoint))
      throw errors.invalidRequest(`Unsupported endpoint '${body.endpoint}': use one of ${SUPPORTED_ENDPOINTS.join(', ')}.`, 'endpoint');
    const windowMs = this.windows.get(body.completion_window);
    if (windowMs === undefined)
      throw errors.invalidRequest(
        `Invalid completion_window '${body.completion_window}': use one of ${[...this.windows.keys()].join(', ')}.`,
        'completion_window',
      );
    const file = await this.getFile(tenant, body.input_file_id).catch(() => {
      throw errors.invalidRequest(`No such File object: ${body.input_file_id}`, 'input_file_id');
    });
    if (file.purpose !== 'batch') throw errors.invalidRequest(`File ${file.id} was not uploaded for purpose 'batch'.`, 'input_file_id');
    if (!this.store.blobs.exists(file.id)) throw errors.invalidRequest(`No such File object: ${file.id}`, 'input_file_id');
    const id = newId('batch_');
    // Line by line from disk into the job's items file: the input is never one string in memory.
    const writer = await this.store.itemFiles.writer(id);
    let parsed: Awaited<ReturnType<typeof parseInputStream>>;
    try {
      parsed = await parseInputStream(
        this.store.blobs.read(file.id),
        { endpoint: body.endpoint, maxItems: this.cfg.maxItemsPerBatch, maxLineBytes: this.cfg.maxLineBytes },
        (item) => writer.add(item),
      );
    } catch (err) {
      await writer.abort();
      throw err;
    }
    const { count, errors: problems } = parsed;
    if (problems.length) await writer.abort();
    else await writer.done();
    const now = this.now();
    const sec = Math.floor(now / 1000);
    const expiresAtMs = now + (this.cfg.completionWindowMs ?? windowMs);
    const rec: BatchRecord = {
      id,
      object: 'batch',
      endpoint: body.endpoint,
      errors: null,
      input_file_id: file.id,
      completion_window: body.completion_window,
      status: 'in_progress',
      output_file_id: null,
      error_file_id: null,
      created_at: sec,
      in_progress_at: sec,
      expires_at: Math.floor(expiresAtMs / 1000),
      finalizing_at: null,
      completed_at: null,
      failed_at: null,
      expired_at: null,
      cancelling_at: null,
      cancelled_at: null,
      request_counts: { total: count, completed: 0, failed: 0 },
      metadata: body.metadata ?? null,
      tenant,
      keyId,
      expiresAtMs,
      ...(body.output_expires_after ? { outputExpiresAfterSeconds: body.output_expires_after.seconds } : {}),
    };
    if (problems.length) {
      // OpenAI's shape for a file that fails validation: status failed, the problems in `errors`.
      Object.assign(rec, {
        status: 'failed',
        in_progress_at: null,
        failed_at: sec,
        errors: { object: 'list', data: problems },
        request_counts: { total: 0, completed: 0, failed: 0 },
      });
      await this.store.putBatch(rec);
      return rec;
    }
    await this.store.initItems(rec.id, count, now);
    await this.store.putBatch(rec);
    await this.store.setActive(rec.id, true);
    return rec;
  }

  async getBatch(tenant: string, id: string): Promise<BatchRecord> {
    const b = await this.store.getBatch(id);
    if (!b || b.tenant !== tenant) throw errors.notFound(`No such Batch object: ${id}`);
    return this.withLiveCounts(b);
  }

  /** A running job's counts come from its items; a finished job's are stored with it. */
  private async withLiveCounts(b: BatchRecord): Promise<BatchRecord> {
    if (TERMINAL.has(b.status)) return b;
    const c = await this.store.counts(b.id);
    b.request_counts = { total: b.request_counts.total, completed: c.output, failed: c.errors };
    return b;
  }

  async listBatches(tenant: string, after: string | undefined, limit: number) {
    const page = paginate(await this.store.listBatches(tenant), after, limit);
    return { ...page, data: await Promise.all(page.data.map(async (b) => publicBatch(await this.withLiveCounts(b)))) };
  }

  async cancelBatch(tenant: string, id: string): Promise<BatchRecord> {
    const b = await this.getBatch(tenant, id);
    if (b.status === 'in_progress' || b.status === 'validating') {
      b.status = 'cancelling';
      b.cancelling_at = Math.floor(this.now() / 1000);
      await this.store.putBatch(b);
      await this.store.setActive(b.id, true);
    } else if (b.status !== 'cancelling' && b.status !== 'cancelled') {
      throw errors.invalidRequest(`Cannot cancel a batch with status '${b.status}'.`, null, 'batch_not_cancellable');
    }
    return b;
  }

  // Operator view (admin token): any tenant's job.
  async deadLetters(id: string): Promise<{ object: 'list'; batch_id: string; data: DeadLetter[] }> {
    const b = await this.store.getBatch(id);
    if (!b) throw errors.notFound(`No such Batch object: ${id}`);
    return { object: 'list', batch_id: id, data: await this.store.deadLetters(id) };
  }

  /** Dead letters back to the queue (all, or those with the given custom_ids); a completed job reopens. */
  async requeue(id: string, customIds?: string[]): Promise<{ batch_id: string; requeued: number; status: string }> {
    const b = await this.store.getBatch(id);
    if (!b) throw errors.notFound(`No such Batch object: ${id}`);
    if (b.status !== 'completed' && b.status !== 'in_progress')
      throw errors.invalidRequest(`Dead letters of a batch with status '${b.status}' cannot be requeued.`, null, 'batch_not_requeueable');
    if (this.now() >= b.expiresAtMs) throw errors.invalidRequest("The batch's completion window has ended.", null, 'batch_expired');
    let indexes: number[] | undefined;
    if (customIds) {
      const wanted = new Set(customIds);
      indexes = (await this.store.deadLetters(id)).filter((d) => wanted.has(d.custom_id)).map((d) => d.index);
    }
    const requeued = await this.store.requeue(id, this.now(), indexes);
    if (requeued > 0 && b.status === 'completed') {
      // Back to work; the output and error files are rewritten when it completes again.
      Object.assign(b, { status: 'in_progress', completed_at: null, finalizing_at: null, webhook: undefined });
      await this.store.putBatch(b);
    }
    if (requeued > 0) await this.store.setActive(id, true);
    return { batch_id: id, requeued, status: b.status };
  }
}

function isExpired(f: StoredFile, nowSec: number): boolean {
  return typeof f.expires_at === 'number' && f.expires_at <= nowSec;
}
