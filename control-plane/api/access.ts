// Who may call which control-plane route: one table, checked on every request before routing
// reaches a handler. A route registered without an entry fails the start (and the test that
// compares this table with fastify's route table), so nothing is reachable by omission.
// docs/security.md prints the same table.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { TLSSocket } from 'node:tls';
import { errors } from '../../common/errors.ts';
import { bearerToken, NODE_ID_PATTERN, tokenMatcher, verifyNodeToken, type Principal, type Role } from '../../common/credentials.ts';

export type Access = 'public' | readonly Role[];

const operator = ['operator'] as const;
const router = ['router'] as const;

/** `METHOD url` (fastify's route pattern) -> who may call it. */
export const CONTROL_PLANE_ACCESS: ReadonlyMap<string, Access> = new Map<string, Access>([
  ['GET /healthz', 'public'],
  ['GET /readyz', 'public'],
  // The dashboard's page and assets carry no data; every API it reads needs the admin token.
  ['GET /dashboard', 'public'],
  ['GET /dashboard/', 'public'],
  ['GET /dashboard/dashboard.js', 'public'],
  ['GET /dashboard/dashboard.css', 'public'],
  // Agents: each only for its own id (checked in the handler, nodes.ts).
  ['POST /v1/nodes/register', ['node']],
  ['POST /v1/nodes/:id/heartbeat', ['node']],
  ['DELETE /v1/nodes/:id', ['node', 'operator']],
  // Operators.
  ['GET /v1/nodes', operator],
  ['POST /v1/nodes/:id/cordon', operator],
  ['POST /v1/nodes/:id/uncordon', operator],
  ['POST /v1/nodes/:id/drain', operator],
  ['POST /v1/nodes/:id/resume', operator],
  ['POST /v1/admin/tenants', operator],
  ['GET /v1/admin/tenants', operator],
  ['PATCH /v1/admin/tenants/:id', operator],
  ['POST /v1/admin/tenants/:id/keys', operator],
  ['GET /v1/admin/keys', operator],
  ['DELETE /v1/admin/keys/:id', operator],
  ['GET /v1/admin/usage', operator],
  ['GET /v1/admin/shadow/summary', operator],
  ['GET /v1/admin/shadow/records', operator],
  ['GET /v1/capacity', operator],
  ['GET /v1/capacity/history', operator],
  ['GET /v1/cluster', operator],
  ['GET /v1/routers', operator],
  // Routers: membership (with each node's call token) and policy (key hashes) in; usage, shadow
  // records and lane reports out.
  ['GET /v1/nodes/watch', ['router', 'operator']],
  ['GET /v1/policy/watch', ['router', 'operator']],
  ['POST /v1/admin/usage/records', router],
  ['POST /v1/admin/shadow/records', router],
  ['POST /v1/routers/:id/report', router],
]);

export interface ControlPlaneCredentials {
  /** Operator (admin API); absent = no operator can call. */
  adminToken?: string;
  /** Routers; absent = no router can follow the watches or ship usage. */
  routerToken?: string;
  /** Node tokens are HMACs under this; absent = agents prove themselves by certificate only. */
  nodeSecret?: string;
}

export interface AccessOptions {
  credentials: ControlPlaneCredentials;
  /** With HTTPS and a client CA: a verified client certificate's CN is a node id (role node). */
  clientCertificates: boolean;
  /** Hosts (the Host header, port left out) this control plane answers to; empty = any. */
  allowedHosts: readonly string[];
}

declare module 'fastify' {
  interface FastifyRequest {
    principal?: Principal;
  }
}

/** The principal a request's credential proves, or undefined (no or a wrong credential). */
function authenticate(req: FastifyRequest, opts: AccessOptions, match: ReturnType<typeof matchers>): Principal | undefined {
  const token = bearerToken(req.headers.authorization);
  if (token !== undefined) {
    if (match.admin(token)) return { role: 'operator', via: 'token' };
    if (match.router(token)) return { role: 'router', via: 'token' };
    const nodeId = verifyNodeToken(opts.credentials.nodeSecret, token);
    if (nodeId) return { role: 'node', nodeId, via: 'token' };
    return undefined;
  }
  if (opts.clientCertificates) {
    const socket = req.raw.socket as Partial<TLSSocket>;
    if (socket.authorized && typeof socket.getPeerCertificate === 'function') {
      const cn = socket.getPeerCertificate().subject?.CN;
      if (typeof cn === 'string' && NODE_ID_PATTERN.test(cn)) return { role: 'node', nodeId: cn, via: 'certificate' };
    }
  }
  return undefined;
}

function matchers(c: ControlPlaneCredentials) {
  return { admin: tokenMatcher(c.adminToken), router: tokenMatcher(c.routerToken) };
}

const STATE_CHANGING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/** Installs the table: an unlisted route fails registration; every request is checked against its entry. */
export function installAccessControl(app: FastifyInstance, opts: AccessOptions): void {
  const match = matchers(opts.credentials);
  const hosts = new Set(opts.allowedHosts.map((h) => h.toLowerCase()));
  app.addHook('onRoute', (r) => {
    for (const method of [r.method].flat()) {
      if (method === 'HEAD') continue;
      if (!CONTROL_PLANE_ACCESS.has(`${method} ${r.url}`))
        throw new Error(`route ${method} ${r.url} has no entry in CONTROL_PLANE_ACCESS (control-plane/api/access.ts)`);
    }
  });
  app.addHook('onRequest', async (req) => {
    // DNS rebinding: a browser tricked into calling us under another name sends that name.
    if (hosts.size > 0) {
      const host = (req.headers.host ?? '').replace(/:\d+$/, '').toLowerCase();
      if (!hosts.has(host))
        throw errors.forbidden(`Host '${host.slice(0, 100)}' is not one this control plane answers to.`, 'host_not_allowed');
    }
    const url = req.routeOptions.url;
    if (url === undefined) return; // no route: the 404 handler answers
    const method = req.method === 'HEAD' ? 'GET' : req.method;
    const access = CONTROL_PLANE_ACCESS.get(`${method} ${url}`);
    if (access === undefined) throw errors.forbidden('This route has no access rule.', 'no_access_rule');
    if (access === 'public') return;
    const principal = authenticate(req, opts, match);
    if (!principal) {
      const anyCredential = req.headers.authorization !== undefined;
      throw errors.unauthorized(anyCredential ? 'Invalid credential.' : 'This route needs a credential: Authorization: Bearer <token>.');
    }
    if (!access.includes(principal.role))
      throw errors.forbidden(`The ${principal.role} credential may not call ${method} ${url}.`, 'role_not_allowed');
    // After the credential: a caller learns nothing about a route it may not call.
    if (STATE_CHANGING.has(req.method)) refuseCrossSite(req);
    req.principal = principal;
  });
}

/**
 * State-changing calls come from programs, never from a web page on another origin: a page's
 * cross-origin `text/plain` POST needs no CORS preflight, so refuse what a browser marks as
 * cross-site and any body that is not JSON.
 */
function refuseCrossSite(req: FastifyRequest): void {
  const site = req.headers['sec-fetch-site'];
  if (site === 'cross-site' || site === 'same-site') throw errors.forbidden('Cross-site requests are refused.', 'cross_site_request');
  const origin = req.headers.origin;
  if (origin !== undefined) {
    const host = req.headers.host ?? '';
    let sameOrigin = false;
    try {
      sameOrigin = new URL(origin).host === host;
    } catch {
      // a malformed Origin is not ours
    }
    if (!sameOrigin) throw errors.forbidden('Cross-origin requests are refused.', 'cross_site_request');
  }
  const hasBody =
    req.headers['content-length'] !== undefined ? req.headers['content-length'] !== '0' : req.headers['transfer-encoding'] !== undefined;
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (hasBody && type !== 'application/json')
    throw errors.unsupportedMediaType('State-changing requests send their body as application/json.');
}
