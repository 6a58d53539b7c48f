// OpenAI's Files API (purpose `batch`) and Batch API, so the official SDKs' files.create,
// files.content, batches.create/retrieve/list/cancel work unchanged; plus the operator's
// dead-letter endpoints (admin token). Each caller sees only its tenant's files and jobs.
// Handlers translate HTTP; the work is in router/batch/.
import multipart from '@fastify/multipart';
import { bearerToken, sha256Matcher } from '../../common/credentials.ts';
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { ApiError, errors } from '../../common/errors.ts';
import type { BatchService } from '../batch/service.ts';
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
  output_expires_after: z.unknown().optional(),
});

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

export const batchRoutes: FastifyPluginAsync<BatchRoutesOptions> = async (app, opts) => {
  await app.register(multipart, { limits: { fileSize: opts.maxFileBytes, files: 1, fields: 10 } });
  const svc = opts.service;

  const owner = (req: FastifyRequest): { tenant: string; keyId: string | null } => {
    if (!opts.directory) return { tenant: 'anonymous', keyId: null };
    const p = opts.directory.authenticate(req.headers.authorization);
    return { tenant: p.tenantId, keyId: p.keyId };
  };

  app.post('/v1/files', async (req) => {
    const { tenant } = owner(req);
    if (!req.isMultipart()) throw errors.invalidRequest('Upload the file as multipart/form-data with fields `file` and `purpose`.', 'file');
    let content: Buffer | undefined;
    let filename = 'upload.jsonl';
    let purpose: string | undefined;
    try {
      for await (const part of req.parts()) {
        if (part.type === 'file') {
          content = await part.toBuffer();
          filename = part.filename || filename;
        } else if (part.fieldname === 'purpose') {
          purpose = String(part.value);
        }
      }
    } catch (err) {
      if (err instanceof ApiError) throw err;
      const e = err as { statusCode?: number; message: string };
      if (e.statusCode === 413) throw errors.payloadTooLarge(`The file is larger than ${opts.maxFileBytes} bytes.`);
      throw errors.invalidRequest(`Could not read the upload: ${e.message}`, 'file');
    }
    if (!content) throw errors.invalidRequest('Missing the `file` field.', 'file');
    if (!purpose) throw errors.invalidRequest('Missing the `purpose` field.', 'purpose');
    return publicFile(await svc.uploadFile(tenant, filename, purpose, content));
  });

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
