// The Files and Batch API operations, each scoped to one tenant: a tenant's files and jobs are
// invisible to every other tenant (an id of someone else's answers 404, as an unknown id does).
import { errors } from '../../common/errors.ts';
import type { BatchConfig } from './config.ts';
import { SUPPORTED_ENDPOINTS, newId, parseInput } from './lines.ts';
import type { BatchStore } from './store.ts';
import { TERMINAL, publicBatch, type BatchRecord, type DeadLetter, type StoredFile } from './types.ts';

const WINDOW_MS: Record<string, number> = { '24h': 86_400_000 };

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
  constructor(
    private readonly store: BatchStore,
    private readonly cfg: BatchConfig,
    private readonly now: () => number = Date.now,
  ) {}

  async uploadFile(tenant: string, filename: string, purpose: string, content: Buffer): Promise<StoredFile> {
    if (purpose !== 'batch')
      throw errors.invalidRequest(`Invalid purpose '${purpose}': this server stores files for purpose 'batch' only.`, 'purpose');
    if (content.length === 0) throw errors.invalidRequest('The file is empty.', 'file');
    const file: StoredFile = {
      id: newId('file-'),
      object: 'file',
      bytes: content.length,
      created_at: Math.floor(this.now() / 1000),
      filename,
      purpose: 'batch',
      status: 'processed',
      expires_at: null,
      tenant,
    };
    await this.store.putFile(file, content);
    return file;
  }

  async getFile(tenant: string, id: string): Promise<StoredFile> {
    const f = await this.store.getFile(id);
    if (!f || f.tenant !== tenant) throw errors.notFound(`No such File object: ${id}`);
    return f;
  }

  async fileContent(tenant: string, id: string): Promise<Buffer> {
    await this.getFile(tenant, id);
    const c = await this.store.getFileContent(id);
    if (!c) throw errors.notFound(`No such File object: ${id}`);
    return c;
  }

  async listFiles(
    tenant: string,
    q: { purpose?: string; after?: string; limit: number; order: 'asc' | 'desc' },
  ): Promise<Page<StoredFile>> {
    let all = await this.store.listFiles(tenant);
    if (q.purpose) all = all.filter((f) => f.purpose === q.purpose);
    if (q.order === 'asc') all.reverse();
    return paginate(all, q.after, q.limit);
  }

  async deleteFile(tenant: string, id: string): Promise<void> {
    await this.getFile(tenant, id);
    await this.store.deleteFile(id);
  }

  async createBatch(
    tenant: string,
    keyId: string | null,
    body: { input_file_id: string; endpoint: string; completion_window: string; metadata?: Record<string, string> | null },
  ): Promise<BatchRecord> {
    if (!(SUPPORTED_ENDPOINTS as readonly string[]).includes(body.endpoint))
      throw errors.invalidRequest(`Unsupported endpoint '${body.endpoint}': use one of ${SUPPORTED_ENDPOINTS.join(', ')}.`, 'endpoint');
    const windowMs = WINDOW_MS[body.completion_window];
    if (windowMs === undefined)
      throw errors.invalidRequest(`Invalid completion_window '${body.completion_window}': only '24h' is supported.`, 'completion_window');
    const file = await this.getFile(tenant, body.input_file_id).catch(() => {
      throw errors.invalidRequest(`No such File object: ${body.input_file_id}`, 'input_file_id');
    });
    if (file.purpose !== 'batch') throw errors.invalidRequest(`File ${file.id} was not uploaded for purpose 'batch'.`, 'input_file_id');
    const content = (await this.store.getFileContent(file.id)) ?? Buffer.alloc(0);
    const now = this.now();
    const { items, errors: problems } = parseInput(content.toString('utf8'), body.endpoint, this.cfg.maxItemsPerBatch);
    const sec = Math.floor(now / 1000);
    const expiresAtMs = now + (this.cfg.completionWindowMs ?? windowMs);
    const rec: BatchRecord = {
      id: newId('batch_'),
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
      request_counts: { total: items.length, completed: 0, failed: 0 },
      metadata: body.metadata ?? null,
      tenant,
      keyId,
      expiresAtMs,
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
    await this.store.initItems(rec.id, items, now);
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
