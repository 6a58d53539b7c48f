// OpenAI's Files API (purpose `batch`) and Batch API, so the official SDKs' files.create,
// files.content, batches.create/retrieve/list/cancel work unchanged; plus the operator's
// dead-letter endpoints (admin token). Each caller sees only its tenant's files and jobs.
// Handlers translate HTTP; the work is in router/batch/.
//
// POST /v1/files streams: the multipart body is parsed as it arrives (@fastify/multipart over
// busboy), `purpose` is checked the moment its field arrives, the file part goes straight to a
// temp file on disk with its size counted. OpenAI's SDK sends the fields in the order the caller
// wrote them (`{file, purpose}` puts the file first), so a file before `purpose` is accepted: it
// streams to disk (bounded by the size cap and the byte quota, never memory) and `purpose` is
// checked when the form ends, the temp file deleted if it is wrong. Sent first, a wrong purpose
// is refused before a byte of the file is read. The upload slot and the quotas are checked
// before any of the body is read.
import multipart from '@fastify/multipart';
import { bearerToken, sha256Matcher } from '../../common/credentials.ts';
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { IncomingMessage } from 'node:http';
import { z } from 'zod';
import { ApiError, errors } from '../../common/errors.ts';
import { checkExpiresAfter, type BatchService } from '../batch/service.ts';
import { publicBatch, publicFile } from '../batch/types.ts';
import type { KeyDirectory } from '../tenancy/key-directory.ts';
import { parseBody } from './openai-schemas.ts';

export interface BatchRoutesOptions {
  service: BatchService;
  maxFileBytes: number;
  /** Keys and tenants (router.auth.mode required); without it everything belongs to `anonymous`. */
  directory?: KeyDirectory;
  /** Hex SHA-256 of the admin token (router.adminTokenSha256): the dead-letter endpoints are off without one. */
  adminTokenSha256?: string;
}

const createBatchBody = z.object({
  input_file_id: z.string().min(1),
  endpoint: z.string().min(1),
  completion_window: z.string().min(1),
  metadata: z
    .record(z.string().max(64), z.string().max(512))
    .refine((m) => Object.keys(m).length <= 16, 'at most 16 pairs')
    .nullable()
    .optional(),
  output_expires_after: z.strictObject({ anchor: z.literal('created_at'), seconds: z.number().int().min(3_600).max(2_592_000) }).optional(),
});

/** Multipart framing around the file (boundaries, part headers, small fields): a Content-Length past maxFileBytes plus this is refused unread. */
const FORM_OVERHEAD_BYTES = 64 * 1024;

const listQuery = z.object({
  after: z.string().min(1).optional(),
  limit: z.coerce.number().int().min(1).max(10_000).default(20),
  order: z.enum(['asc', 'desc']).default('desc'),
  purpose: z.string().optional(),
});

const requeueBody = z.object({ custom_ids: z.array(z.string().min(1)).min(1).optional() });

function parseQuery<T>(schema: z.ZodType<T>, q: unknown): T {
  const r = schema.safeParse(q ?? {});
  if (!r.success) {
    const i = r.error.issues[0]!;
    throw errors.invalidRequest(`${i.path.join('.')}: ${i.message}`, i.path.join('.') || null);
  }
  return r.data;
}

/** What a refused upload may still send, read and thrown away, before its connection is cut. */
const LINGER_BYTES = 64 * 1024 * 1024;
const LINGER_MS = 10_000;

/**
 * The answer goes out at once; the rest of the body is read and discarded (bounded), so the client
 * reads the answer instead of a connection reset (closing with unread data makes the kernel send
 * RST: EPIPE while it still writes), and the connection can carry the next request. Past the bound
 * the connection is cut.
 */
function discardRest(raw: IncomingMessage): void {
  let bytes = 0;
  const cut = () => raw.socket.destroy();
  const timer = setTimeout(cut, LINGER_MS);
  timer.unref();
  raw.unpipe();
  raw.on('data', (chunk: Buffer) => {
    bytes += chunk.length;
    if (bytes > LINGER_BYTES) cut();
  });
  raw.once('end', () => clearTimeout(timer));
  raw.once('close', () => clearTimeout(timer));
  raw.resume();
}

export const batchRoutes: FastifyPluginAsync<BatchRoutesOptions> = async (app, opts) => {
  // busboy's own caps are the backstop; the service counts the file's bytes against the tenant's allowance.
  await app.register(multipart, {
    limits: { fileSize: opts.maxFileBytes + 1, files: 1, fields: 8, fieldSize: 1024, parts: 10, headerPairs: 20 },
  });
  const svc = opts.service;

  const owner = (req: FastifyRequest): { tenant: string; keyId: string | null } => {
    if (!opts.directory) return { tenant: 'anonymous', keyId: null };
    const p = opts.directory.authenticate(req.headers.authorization);
    return { tenant: p.tenantId, keyId: p.keyId };
  };

  app.post('/v1/files', async (req) => {
    try {
      return await upload(req);
    } catch (err) {
      // Refused with the body still arriving (a wrong purpose, a cap, a quota, too large).
      if (!req.raw.complete) discardRest(req.raw);
      throw err;
    }
  });

  const upload = async (req: FastifyRequest) => {
    const { tenant } = owner(req);
    if (!req.isMultipart()) throw errors.invalidRequest('Upload the file as multipart/form-data with fields `file` and `purpose`.', 'file');
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > opts.maxFileBytes + FORM_OVERHEAD_BYTES)
      throw errors.payloadTooLarge(`The file is larger than ${opts.maxFileBytes} bytes.`);
    const release = svc.acquireUpload(tenant);
    let received: { tmp: string; bytes: number } | undefined;
    try {
      const allowance = await svc.uploadAllowance(tenant);
      let filename = 'upload.jsonl';
      let purpose: string | undefined;
      // Client field names only ever compared, never used as keys.
      let anchor: string | undefined;
      let seconds: string | undefined;
      try {
        for await (const part of req.parts()) {
          if (part.type === 'file') {
            if (part.fieldname !== 'file')
              throw errors.invalidRequest(`Unexpected file field '${part.fieldname}': send it as 'file'.`, 'file');
            filename = part.filename || filename;
            received = await svc.receiveFile(part.file, allowance);
            continue;
          }
          const value = String(part.value);
          if (part.fieldname === 'purpose') {
            purpose = value;
            // Before the file when the client sent purpose first: a wrong one stops here, the file unread.
            svc.checkPurpose(purpose);
          } else if (part.fieldname === 'expires_after[anchor]') anchor = value;
          else if (part.fieldname === 'expires_after[seconds]') seconds = value;
        }
      } catch (err) {
        if (err instanceof ApiError) throw err;
        const e = err as { statusCode?: number; message: string; code?: string };
        if (e.code === 'FST_REQ_FILE_TOO_LARGE') throw errors.payloadTooLarge(`The file is larger than ${opts.maxFileBytes} bytes.`);
        // busboy's part, file and field caps.
        if (e.statusCode === 413)
          throw errors.payloadTooLarge('Too many parts in the form: send one `file`, `purpose` and optionally `expires_after`.');
        throw errors.invalidRequest(`Could not read the upload: ${e.message}`, 'file');
      }
      if (!purpose) throw errors.invalidRequest('Missing the `purpose` field.', 'purpose');
      svc.checkPurpose(purpose);
      const expiresAfter = checkExpiresAfter(anchor, seconds);
      if (!received) throw errors.invalidRequest('Missing the `file` field.', 'file');
      const r = received;
      received = undefined;
      return publicFile(await svc.commitUpload(tenant, r, { filename, purpose, expiresAfter }));
    } finally {
      release();
      if (received) await svc.discardUpload(received);
    }
  };

  app.get('/v1/files', async (req) => {
    const q = parseQuery(listQuery, req.query);
    const page = await svc.listFiles(owner(req).tenant, {
      purpose: q.purpose,
      after: q.after,
      limit: Math.min(q.limit, 10_000),
      order: q.order,
    });
    return { ...page, data: page.data.map(publicFile) };
  });

  app.get<{ Params: { id: string } }>('/v1/files/:id', async (req) => publicFile(await svc.getFile(owner(req).tenant, req.params.id)));

  app.get<{ Params: { id: string } }>('/v1/files/:id/content', async (req, reply) => {
    // Streamed from disk.
    const content = await svc.fileContent(owner(req).tenant, req.params.id);
    reply.header('content-type', 'application/octet-stream');
    return reply.send(content);
  });

  app.delete<{ Params: { id: string } }>('/v1/files/:id', async (req) => {
    await svc.deleteFile(owner(req).tenant, req.params.id);
    return { id: req.params.id, object: 'file', deleted: true };
  });

  app.post('/v1/batches', async (req) => {
    const { tenant, keyId } = owner(req);
    const body = parseBody(createBatchBody, req.body) as z.infer<typeof createBatchBody>;
    return publicBatch(await svc.createBatch(tenant, keyId, body));
  });

  app.get('/v1/batches', async (req) => {
    const q = parseQuery(listQuery, req.query);
    return svc.listBatches(owner(req).tenant, q.after, Math.min(q.limit, 100));
  });

  app.get<{ Params: { id: string } }>('/v1/batches/:id', async (req) => publicBatch(await svc.getBatch(owner(req).tenant, req.params.id)));

  app.post<{ Params: { id: string } }>('/v1/batches/:id/cancel', async (req) =>
    publicBatch(await svc.cancelBatch(owner(req).tenant, req.params.id)),
  );

  // Operator endpoints: any tenant's job, the admin token only (checked against its digest: the
  // router never holds the token itself).
  const isAdmin = sha256Matcher(opts.adminTokenSha256);
  const admin = (req: FastifyRequest) => {
    if (!opts.adminTokenSha256)
      throw errors.forbidden('The operator routes are off: set router.adminTokenSha256 (or ICP_ADMIN_TOKEN_SHA256).', 'admin_disabled');
    const token = bearerToken(req.headers.authorization);
    if (token === undefined || !isAdmin(token)) throw errors.unauthorized('Invalid admin token.');
  };

  app.get<{ Params: { id: string } }>('/v1/admin/batches/:id/dead_letters', async (req) => {
    admin(req);
    return svc.deadLetters(req.params.id);
  });

  app.post<{ Params: { id: string } }>('/v1/admin/batches/:id/dead_letters/requeue', async (req) => {
    admin(req);
    const body = req.body ? (parseBody(requeueBody, req.body) as z.infer<typeof requeueBody>) : {};
    return svc.requeue(req.params.id, body.custom_ids);
  });
};
