// The fastify setup every service shares: errors always rendered in OpenAI's shape, a bounded
// body, JSON only, no stack traces to clients, and no request bodies in logs.
import Fastify, { LogController, type FastifyInstance, type FastifyError, type FastifyBaseLogger, type FastifyReply } from 'fastify';
import type { IncomingMessage } from 'node:http';
import type { Logger } from './logger.ts';
import { ApiError, errors, isLoadShedding } from './errors.ts';
import { DEFAULT_HTTP_LIMITS, clientErrorHandler, jsonDepthError, nodeServerOptions, type HttpLimits } from './http-limits.ts';

export interface HttpServerOptions {
  logger: Logger;
  bodyLimitBytes?: number;
  /** Receive timeouts, header size and JSON depth (common/http-limits.ts). */
  limits?: HttpLimits;
  /** Serve HTTPS (PEM contents); with `ca` and `requestCert`, clients may present certificates that CA signed (checked by the caller's own auth: unverified ones are not refused at the handshake). */
  https?: { key: Buffer; cert: Buffer; ca?: Buffer; requestCert?: boolean };
}

export interface RouteEntry {
  method: string;
  url: string;
}

const routeTables = new WeakMap<FastifyInstance, RouteEntry[]>();

/** Longest client request id kept; longer ones are replaced (log ids, usage-record ids, engine headers). */
export const MAX_REQUEST_ID_LENGTH = 128;
const SAFE_REQUEST_ID = /^[A-Za-z0-9._:-]+$/;
/** How much of a refused id the log notes (before escaping). */
const NOTED_ID_CHARS = 64;

/**
 * The id a request is known by: the client's `x-request-id` when it is short and of safe
 * characters, else a fresh one, with the client's value (truncated, escaped to printable ASCII)
 * as `clientRequestId` for the log. The only place a request id is taken from a client.
 */
export function safeRequestId(header: unknown): { id: string; clientRequestId?: string } {
  if (typeof header === 'string' && header.length <= MAX_REQUEST_ID_LENGTH && SAFE_REQUEST_ID.test(header)) return { id: header };
  const id = `req_${crypto.randomUUID().replaceAll('-', '')}`;
  if (header === undefined || header === '') return { id };
  const text = typeof header === 'string' ? header : String(header);
  const escaped = text.slice(0, NOTED_ID_CHARS).replace(/[^\x20-\x7e]|\\/g, (c) => {
    const code = c.charCodeAt(0);
    return c === '\\' ? '\\\\' : code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
  });
  const noted = escaped.slice(0, NOTED_ID_CHARS);
  return { id, clientRequestId: noted.length < escaped.length || text.length > NOTED_ID_CHARS ? `${noted}...` : noted };
}

/** The client's refused `x-request-id` (truncated, escaped), for a request that was given a fresh id. */
const clientRequestIds = new WeakMap<IncomingMessage, string>();

/** Every route registered on a server made by createHttpServer (HEAD twins left out): what security tests enumerate. */
export function routesOf(app: FastifyInstance): readonly RouteEntry[] {
  return routeTables.get(app) ?? [];
}

export function createHttpServer({
  logger,
  bodyLimitBytes = 4 * 1024 * 1024,
  limits = DEFAULT_HTTP_LIMITS,
  https,
}: HttpServerOptions): FastifyInstance {
  const app = Fastify({
    // An HTTPS server is typed apart in fastify; the handlers see the same request and reply.
    ...(https ? { https: { ...https, rejectUnauthorized: false } } : {}),
    http: nodeServerOptions(limits),
    // fastify sets the server's requestTimeout itself (0, no limit, unless given).
    requestTimeout: limits.requestTimeoutMs,
    clientErrorHandler,
    // Errors fastify raises before routing (a malformed URL, an over-long path parameter) in OpenAI's shape too.
    frameworkErrors: (err, req, reply) => {
      const e = toApiError(err);
      void (reply as FastifyReply).code(e.status).header('x-request-id', req.id).send(e.toBody());
    },
    loggerInstance: logger as FastifyBaseLogger,
    // The request log line is written by the service itself (with what it decided), not fastify.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: bodyLimitBytes,
    // Deep or huge JSON must not take the process down: fastify's parser is secure-json-parse
    // on top of JSON.parse; the body limit bounds the size, and we refuse prototype poisoning.
    onProtoPoisoning: 'error',
    onConstructorPoisoning: 'error',
    // While closing, requests on kept-alive connections get our own OpenAI-shaped 503 (below):
    // fastify's would be `{"error":"Service Unavailable"}`, which clients cannot read as an error.
    return503OnClosing: false,
    forceCloseConnections: false,
    // fastify would take any x-request-id as the id; safeRequestId decides instead.
    requestIdHeader: false,
    genReqId: (raw) => {
      const { id, clientRequestId } = safeRequestId(raw.headers['x-request-id']);
      if (clientRequestId !== undefined) clientRequestIds.set(raw, clientRequestId);
      return id;
    },
  });

  const routes: RouteEntry[] = [];
  routeTables.set(app, routes);
  app.addHook('onRoute', (r) => {
    for (const method of [r.method].flat()) if (method !== 'HEAD') routes.push({ method, url: r.url });
  });

  // Every log line of a request whose id was refused notes what the client sent (the request log line included).
  app.addHook('onRequest', (req, reply, done) => {
    // Every answer names its request id (the SDKs expose it as `_request_id`): set on the raw
    // response, so JSON, errors and hijacked streams (which call writeHead themselves) all carry it.
    reply.raw.setHeader('x-request-id', req.id);
    const clientRequestId = clientRequestIds.get(req.raw);
    if (clientRequestId !== undefined) req.log = req.log.child({ clientRequestId });
    done();
  });

  let closing = false;
  app.addHook('preClose', (done) => {
    closing = true;
    done();
  });
  app.addHook('onRequest', (_req, reply, done) => {
    if (!closing) return done();
    const e = errors.overloaded('The server is shutting down; retry the request.', 1, 'shutting_down');
    reply.code(e.status).header('connection', 'close').header('retry-after', '1').send(e.toBody());
  });

  // JSON nesting is bounded before JSON.parse or any validator recurses into the body; then
  // fastify's own parser (secure-json-parse: prototype poisoning refused) does the parsing.
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (req, body, done) => {
    const tooDeep = jsonDepthError(body as string, limits.maxJsonDepth);
    if (tooDeep) return done(tooDeep, undefined);
    // The default parser answers through `done`; nothing awaits what it returns.
    void parseJson(req, body as string, done);
  });

  app.setErrorHandler((err: FastifyError | ApiError, req, reply) => {
    const apiError = toApiError(err);
    // Shedding is the system working as designed: one quiet line with its code, no stack.
    if (apiError.status >= 500) {
      if (isLoadShedding(apiError)) req.log.info({ status: apiError.status, code: apiError.code }, 'request shed');
      else req.log.error({ err }, 'request failed');
    }
    if (apiError.retryAfterSeconds !== undefined) reply.header('retry-after', String(Math.max(1, Math.ceil(apiError.retryAfterSeconds))));
    reply.code(apiError.status).send(apiError.toBody());
  });

  app.setNotFoundHandler((req, reply) => {
    const e = errors.notFound(`Unknown route ${req.method} ${req.url.split('?')[0]}`);
    reply.code(404).send(e.toBody());
  });

  return app;
}

/** Maps fastify's own errors (bad JSON, body too large, wrong content type) to OpenAI's shape. */
export function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  const e = err as Partial<FastifyError> & { message?: string };
  switch (e.code) {
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return errors.unsupportedMediaType('Unsupported content type: send the body as application/json.');
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return errors.payloadTooLarge('Request body is too large.');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return errors.invalidRequest('Request body is empty: expected a JSON object.');
    case 'FST_ERR_BAD_URL':
      return errors.invalidRequest('The request URL is not valid (bad percent-encoding).', null, 'invalid_url');
    case 'FST_ERR_MAX_PARAM_LENGTH':
      return new ApiError(414, 'A path parameter in the URL is too long.', 'invalid_request_error', 'uri_too_long');
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return errors.invalidRequest('Content-Length does not match the body.');
  }
  // A zod schema used with .parse() in a handler: the client's input was invalid.
  if (e.name === 'ZodError' && Array.isArray((err as { issues?: unknown }).issues)) {
    const issue = (err as { issues: { path: PropertyKey[]; message: string }[] }).issues[0];
    const where = issue?.path.map(String).join('.') || null;
    return errors.invalidRequest(`${where ?? 'request'}: ${issue?.message ?? 'invalid'}`, where);
  }
  if (e.statusCode === 400 || e instanceof SyntaxError) {
    return errors.invalidRequest(`We could not parse the JSON body of your request: ${e.message ?? 'invalid JSON'}`);
  }
  if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
    return new ApiError(e.statusCode, e.message ?? 'Bad request', 'invalid_request_error');
  }
  return errors.internal();
}
