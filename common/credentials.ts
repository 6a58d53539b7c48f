// The credentials the services prove themselves with (docs/security.md, "Identities and roles"):
//   operator  the admin token (ICP_ADMIN_TOKEN): the control plane's admin API, node actions.
//   router    the router token (ICP_ROUTER_TOKEN): read policy and membership, write usage,
//             shadow records and lane reports. Never the admin token.
//   node      a node token per agent (ICP_NODE_TOKEN), `icpn.<node id>.<mac>`: an HMAC of the node
//             id under the control plane's node secret (ICP_NODE_SECRET), so the control plane
//             checks any node's token without a table, and one node's token proves nothing about
//             another's. With mTLS, the agent's client certificate (CN = node id) serves instead.
// Calls into an agent carry tokens derived from that agent's node token: routers get the node's
// call token from the membership watch (router credential required), the control plane derives
// the control token (Drain, Resume) itself. An agent knows only its own node token and derives
// both, so a compromised agent can impersonate nobody but itself.
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';

export type Role = 'operator' | 'router' | 'node';

/** Who a caller proved to be; `nodeId` for role `node`. */
export interface Principal {
  role: Role;
  nodeId?: string;
  /** How it proved it (for the log): a bearer token or a verified client certificate. */
  via: 'token' | 'certificate';
}

const NODE_TOKEN_PREFIX = 'icpn.';
export const NODE_ID_PATTERN = /^[A-Za-z0-9._-]{1,128}$/;

/** A fresh random secret (256 bits), URL-safe. */
export function generateSecret(prefix = 'icp'): string {
  return `${prefix}_${randomBytes(32).toString('base64url')}`;
}

const digest = (s: string) => createHash('sha256').update(s).digest();

/** Hex SHA-256 of a token: what a service that only checks a token keeps (router.adminTokenSha256). */
export function tokenSha256(token: string): string {
  return digest(token).toString('hex');
}

/** A token check in constant time whatever the lengths (digests are compared). */
export function tokenMatcher(token: string | undefined): (presented: string) => boolean {
  if (!token) return () => false;
  return digestMatcher(digest(token));
}

/** The same, from a hex SHA-256 (the service never holds the token itself). */
export function sha256Matcher(hexDigest: string | undefined): (presented: string) => boolean {
  if (!hexDigest || !/^[0-9a-f]{64}$/i.test(hexDigest)) return () => false;
  return digestMatcher(Buffer.from(hexDigest, 'hex'));
}

function digestMatcher(expected: Buffer): (presented: string) => boolean {
  return (presented) => timingSafeEqual(digest(presented), expected);
}

/** The bearer token of an Authorization header, or undefined. */
export function bearerToken(header: string | string[] | undefined): string | undefined {
  if (typeof header !== 'string') return undefined;
  const m = /^Bearer[ \t]+([^\s]{1,4096})[ \t]*$/i.exec(header);
  return m?.[1];
}

const mac = (key: string | Buffer, data: string) => createHmac('sha256', key).update(data).digest('base64url');

/** The node token of `nodeId` under `nodeSecret` (`icp credentials node-token` prints it). */
export function mintNodeToken(nodeSecret: string, nodeId: string): string {
  if (!NODE_ID_PATTERN.test(nodeId)) throw new Error(`node id '${nodeId}': letters, digits, dot, dash and underscore only (1-128)`);
  return `${NODE_TOKEN_PREFIX}${nodeId}.${mac(nodeSecret, `icp-node:${nodeId}`)}`;
}

/** The node id a node token proves, or undefined when it does not verify. */
export function verifyNodeToken(nodeSecret: string | undefined, token: string): string | undefined {
  if (!nodeSecret) return undefined;
  const nodeId = nodeIdOfToken(token);
  return nodeId !== undefined && tokenMatcher(mintNodeToken(nodeSecret, nodeId))(token) ? nodeId : undefined;
}

/** The node id a node token names, unverified (verifyNodeToken checks it; the agent checks its own token names it). */
export function nodeIdOfToken(token: string): string | undefined {
  const dot = token.lastIndexOf('.');
  if (!token.startsWith(NODE_TOKEN_PREFIX) || dot <= NODE_TOKEN_PREFIX.length) return undefined;
  const id = token.slice(NODE_TOKEN_PREFIX.length, dot);
  return NODE_ID_PATTERN.test(id) ? id : undefined;
}

/** What routers present to a node's gRPC server (Generate, WatchStatus). */
export function agentCallToken(nodeToken: string): string {
  return `icpc.${mac(nodeToken, 'icp-agent-call')}`;
}

/** What the control plane presents to a node's gRPC server (Drain, Resume, WatchStatus). */
export function agentControlToken(nodeToken: string): string {
  return `icpx.${mac(nodeToken, 'icp-agent-control')}`;
}

/** A secret from its file (which wins) or an environment variable; trimmed; empty = absent. */
export function readSecret(file: string | undefined, envValue: string | undefined): string | undefined {
  const v = file ? readFileSync(file, 'utf8').trim() : envValue?.trim();
  return v ? v : undefined;
}

/** Loopback hosts: the only ones a service may listen on with authentication off. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h) || h === '::ffff:127.0.0.1';
}

export const INSECURE_OVERRIDE_ENV = 'ICP_DANGEROUSLY_ALLOW_UNAUTHENTICATED_NETWORK';

/**
 * Refuses to start a service that would listen beyond loopback with authentication off, unless the
 * operator set the loudly named override. `missing` says what is off (empty = secure).
 */
export function assertSecureListen(
  service: string,
  host: string,
  missing: string[],
  env: NodeJS.ProcessEnv,
  warn: (msg: string) => void,
): void {
  if (missing.length === 0 || isLoopbackHost(host)) return;
  const what = `${service} would listen on ${host} with ${missing.join(', ')}`;
  if (env[INSECURE_OVERRIDE_ENV] === '1') {
    warn(`INSECURE: ${what}; allowed only because ${INSECURE_OVERRIDE_ENV}=1`);
    return;
  }
  throw new Error(
    `refusing to start: ${what}. Configure the credentials (docs/security.md), listen on 127.0.0.1, or set ${INSECURE_OVERRIDE_ENV}=1 to accept an unauthenticated service on the network.`,
  );
}
