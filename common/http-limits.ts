// Limits every HTTP server of the project applies to what a client sends (docs/security.md):
// how long receiving a request may take (a client trickling its headers or body holds a socket
// and a parser), how big the headers may be, and how deeply a JSON body may nest. The body size
// limit is fastify's bodyLimit. Responses (SSE streams) are not bounded by these.
import type { Socket } from 'node:net';
import { STATUS_CODES } from 'node:http';
import { z } from 'zod';
import { ApiError, errors } from './errors.ts';

export const httpLimitsSchema = z
  .strictObject({
    /** Whole request (headers and body) must arrive within this; else 408 and the socket closes. */
    requestTimeoutMs: z.number().int().positive().default(30_000),
    /** The headers must arrive within this (at most requestTimeoutMs). */
    headersTimeoutMs: z.number().int().positive().default(10_000),
    /** Request line plus headers, in bytes; more is answered 431. */
    maxHeaderBytes: z
      .number()
      .int()
      .min(1_024)
      .default(16 * 1024),
    /** Nesting of arrays and objects in a JSON body; deeper is a 400 before anything parses it. */
    maxJsonDepth: z.number().int().min(1).default(64),
  })
  .refine((l) => l.headersTimeoutMs <= l.requestTimeoutMs, {
    message: 'headersTimeoutMs must not exceed requestTimeoutMs',
    path: ['headersTimeoutMs'],
  });

export type HttpLimits = z.infer<typeof httpLimitsSchema>;
export const DEFAULT_HTTP_LIMITS: HttpLimits = httpLimitsSchema.parse({});

/** node:http server options for these limits (fastify passes `http` to createServer). */
export function nodeServerOptions(l: HttpLimits) {
  return {
    requestTimeout: l.requestTimeoutMs,
    headersTimeout: l.headersTimeoutMs,
    maxHeaderSize: l.maxHeaderBytes,
    // Node checks the two timeouts on this interval (30 s by default, which would let a slow
    // client hold a socket that much longer than configured).
    connectionsCheckingInterval: Math.max(100, Math.min(5_000, Math.floor(l.headersTimeoutMs / 4))),
  };
}

/** The 400 for a JSON text nesting arrays/objects deeper than `maxDepth` (outside strings), else undefined. */
export function jsonDepthError(text: string, maxDepth: number): ApiError | undefined {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c)
        i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > maxDepth) return errors.invalidRequest(`The JSON body nests deeper than ${maxDepth} levels.`, null, 'json_too_deep');
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return undefined;
}

/**
 * Answers what node's HTTP parser refuses before fastify sees a request (header overflow, a
 * request not received in time, malformed HTTP) in OpenAI's error shape, then closes the socket.
 */
export function clientErrorHandler(err: NodeJS.ErrnoException, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  let e: ApiError;
  if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT')
    e = new ApiError(408, 'The request was not received in time.', 'invalid_request_error', 'request_timeout');
  else if (err.code === 'HPE_HEADER_OVERFLOW')
    e = new ApiError(431, 'The request headers are too large.', 'invalid_request_error', 'headers_too_large');
  else e = errors.invalidRequest('Malformed HTTP request.', null, 'bad_http');
  if (socket.writable) {
    const body = JSON.stringify(e.toBody());
    socket.write(
      `HTTP/1.1 ${e.status} ${STATUS_CODES[e.status]}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy();
}
