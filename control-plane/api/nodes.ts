// Node registry API (fastify plugin): register / heartbeat / deregister for agents (each for its
// own id only), list, cordon, drain and resume for operators, and a watch stream (SSE) that
// routers follow. Who may call what: access.ts.
import { EventEmitter } from 'node:events';
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { MembershipSnapshot } from '../../common/contracts.ts';
import { ApiError, errors } from '../../common/errors.ts';
import { NodeRegistryFullError, type NodeRegistry } from '../registry/node-registry.ts';
import type { RegistrationPolicy } from '../registry/registration-policy.ts';
import { createNodeAgentClient, type NodeAgentClient } from '../../common/grpc.ts';
import type { AgentChannelSecurity } from '../../common/tls.ts';
import { agentCallToken, agentControlToken, mintNodeToken } from '../../common/credentials.ts';
import type { Logger } from '../../common/logger.ts';
import { snapshotStreamRoute, type SnapshotSource } from './snapshot-stream.ts';

const registerBody = z.strictObject({
  id: z
    .string()
    .min(1)
    .max(128)
    .regex(/^[A-Za-z0-9._-]+$/, 'letters, digits, dot, dash and underscore only'),
  address: z.string().min(1).max(256),
  models: z.array(z.string().max(256)).max(256).optional(),
  labels: z.record(z.string().max(64), z.string().max(256)).optional(),
});
const idParams = z.object({ id: z.string().min(1) });

export interface NodesApiOptions {
  registry: NodeRegistry;
  /** What a node may register: address ranges, ports, counts, rate (registration-policy.ts). */
  policy: RegistrationPolicy;
  /** SSE keep-alive comment interval; also bounds how fast a router notices a dead watch. */
  keepAliveMs?: number;
  /** Credentials for the Drain call to agents (mTLS when controlPlane.agentTls is set). */
  agentSecurity?: AgentChannelSecurity;
  /** Node tokens derive from it; with it, routers get each node's call token in the watch and Drain carries the control token. */
  nodeSecret?: string;
  logger: Logger;
}

/** The control token this control plane presents to node `id` (Drain, Resume, WatchStatus), when node tokens are on. */
export function controlTokenFor(nodeSecret: string | undefined, id: string): string | undefined {
  return nodeSecret ? agentControlToken(mintNodeToken(nodeSecret, id)) : undefined;
}

/** The node a request proved to be (access.ts checked the role); the id in the path or body must be it. */
function requireSelf(req: FastifyRequest, id: string, logger: Logger, what: string): void {
  const p = req.principal;
  if (p?.role !== 'node') return; // an operator (where the route allows one)
  if (p.nodeId === id) return;
  logger.warn(
    { credential: p.nodeId, claimed: id.slice(0, 128), via: p.via, ip: req.ip },
    `refused: a node credential tried to ${what} another node`,
  );
  throw errors.forbidden(`This credential belongs to node '${p.nodeId}', not '${id.slice(0, 128)}'.`, 'node_identity_mismatch');
}

export const nodesApi: FastifyPluginAsync<NodesApiOptions> = async (app, opts) => {
  const { registry, policy, keepAliveMs = 5_000, agentSecurity, nodeSecret, logger } = opts;

  app.post('/v1/nodes/register', async (req, reply) => {
    const parsed = registerBody.safeParse(req.body);
    if (!parsed.success) throw errors.invalidRequest(parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '));
    const input = parsed.data;
    requireSelf(req, input.id, logger, 'register');
    const refusal = policy.check(input);
    if (refusal) {
      logger.warn({ node: input.id, address: input.address.slice(0, 256), reason: refusal.message }, 'node registration refused');
      if (refusal.status === 429) throw errors.rateLimited(refusal.message, refusal.retryAfterSeconds ?? 60, 'registration_rate_limited');
      if (refusal.status === 403) throw errors.forbidden(refusal.message, 'address_not_allowed');
      throw errors.invalidRequest(refusal.message);
    }
    const prev = registry.get(input.id);
    let record;
    try {
      record = registry.register(input);
    } catch (err) {
      if (err instanceof NodeRegistryFullError)
        throw errors.rateLimited(`${err.message}; raise controlPlane.nodes.maxNodes`, 60, 'registry_full');
      throw err;
    }
    if (prev && prev.address !== input.address)
      logger.info(
        { node: input.id, from: prev.address, to: input.address, via: req.principal?.via },
        'node re-registered at a new address',
      );
    const { epoch, ...node } = record;
    reply.header('cache-control', 'no-store');
    return { node, ttlMs: registry.ttlMs, epoch };
  });

  app.post('/v1/nodes/:id/heartbeat', async (req, reply) => {
    const { id } = idParams.parse(req.params);
    requireSelf(req, id, logger, 'heartbeat for');
    const epoch = req.headers['x-icp-node-epoch'];
    const result = registry.heartbeat(id, typeof epoch === 'string' ? epoch : undefined);
    if (result === 'unknown') throw errors.notFound(`node '${id}' is not registered`);
    // Another process registered this id since (an agent restart): this one must register again.
    if (result === 'stale')
      throw new ApiError(
        409,
        `node '${id}' was registered again since; register to continue.`,
        'invalid_request_error',
        'stale_registration',
      );
    reply.code(204);
  });

  app.delete('/v1/nodes/:id', async (req, reply) => {
    const { id } = idParams.parse(req.params);
    requireSelf(req, id, logger, 'deregister');
    if (!registry.deregister(id)) throw errors.notFound(`node '${id}' is not registered (or is static)`);
    reply.code(204);
  });

  app.get('/v1/nodes', async () => ({ data: registry.list() }));

  for (const [verb, cordoned] of [
    ['cordon', true],
    ['uncordon', false],
  ] as const) {
    app.post(`/v1/nodes/:id/${verb}`, async (req) => {
      const { id } = idParams.parse(req.params);
      const n = registry.setCordoned(id, cordoned);
      if (!n) throw errors.notFound(`node '${id}' is not registered`);
      logger.info({ node: id, action: verb }, 'operator action');
      return { node: n };
    });
  }

  const callAgent = async <T>(id: string, address: string, call: (c: NodeAgentClient, cb: (err: Error | null, r?: T) => void) => void) => {
    const client = createNodeAgentClient(address, agentSecurity, controlTokenFor(nodeSecret, id));
    try {
      return await new Promise<T>((resolve, reject) =>
        call(client, (err, r) => (err || !r ? reject(err ?? new Error('no answer')) : resolve(r))),
      );
    } finally {
      client.close();
    }
  };

  // Drain: cordon (routers stop picking it at once, from membership) and ask the agent itself
  // to drain over its gRPC Drain (it reports draining and finishes in-flight work).
  app.post('/v1/nodes/:id/drain', async (req) => {
    const { id } = idParams.parse(req.params);
    const graceMs = z.object({ graceMs: z.number().int().positive().max(3_600_000).optional() }).parse(req.body ?? {}).graceMs ?? 0;
    const node = registry.setCordoned(id, true);
    if (!node) throw errors.notFound(`node '${id}' is not registered`);
    logger.info({ node: id, action: 'drain', graceMs }, 'operator action');
    try {
      const res = await callAgent<{ draining: boolean; inFlight: number }>(id, node.address, (c, cb) =>
        c.Drain({ graceMs }, { deadline: Date.now() + 5_000 }, cb),
      );
      return { node, agent: res };
    } catch (err) {
      throw errors.upstream(`node '${id}' is cordoned but its agent did not answer Drain: ${(err as Error).message}`, 'agent_unreachable');
    }
  });

  // Resume: the way back from a drain: the agent takes work again, and the cordon is lifted.
  app.post('/v1/nodes/:id/resume', async (req) => {
    const { id } = idParams.parse(req.params);
    const node = registry.get(id);
    if (!node) throw errors.notFound(`node '${id}' is not registered`);
    logger.info({ node: id, action: 'resume' }, 'operator action');
    let res: { draining: boolean; inFlight: number };
    try {
      res = await callAgent(id, node.address, (c, cb) => c.Resume({}, { deadline: Date.now() + 5_000 }, cb));
    } catch (err) {
      throw errors.upstream(`node '${id}': its agent did not answer Resume: ${(err as Error).message}`, 'agent_unreachable');
    }
    return { node: registry.setCordoned(id, false), agent: res };
  });

  // Watch: the full membership on connect and on every change (routers parse it against the
  // contract), with each node's call token when node tokens are on: only routers and operators
  // reach this route (access.ts).
  snapshotStreamRoute<MembershipSnapshot>(app, '/v1/nodes/watch', withCallTokens(registry, nodeSecret), keepAliveMs);
};

/** The registry's snapshots, each node with the call token routers present to it. */
function withCallTokens(registry: NodeRegistry, nodeSecret: string | undefined): SnapshotSource<MembershipSnapshot> {
  if (!nodeSecret) return registry;
  const tokens = new Map<string, string>();
  const tokenOf = (id: string) => {
    let t = tokens.get(id);
    if (!t) {
      t = agentCallToken(mintNodeToken(nodeSecret, id));
      if (tokens.size > 10_000) tokens.clear();
      tokens.set(id, t);
    }
    return t;
  };
  const add = (snap: { version: number; nodes: MembershipSnapshot['nodes'] }): MembershipSnapshot => ({
    version: snap.version,
    nodes: snap.nodes.map((n) => ({ ...n, callToken: tokenOf(n.id) })),
  });
  const source = new EventEmitter() as SnapshotSource<MembershipSnapshot>;
  source.snapshot = () => add(registry.snapshot());
  registry.on('change', (snap: ReturnType<NodeRegistry['snapshot']>) => source.emit('change', add(snap)));
  source.setMaxListeners(0);
  return source;
}
