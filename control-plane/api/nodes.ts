// Node registry API (fastify plugin): register / heartbeat / deregister for agents, list and
// cordon for operators, and a watch stream (SSE) that routers follow.
import type { FastifyPluginAsync } from 'fastify';
import { z } from 'zod';
import type { MembershipSnapshot } from '../../common/contracts.ts';
import { errors } from '../../common/errors.ts';
import type { NodeRegistry } from '../registry/node-registry.ts';
import { createNodeAgentClient } from '../../common/grpc.ts';
import type { AgentChannelSecurity } from '../../common/tls.ts';
import { adminAuthorizer } from './admin.ts';
import { snapshotStreamRoute } from './snapshot-stream.ts';

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
  /** SSE keep-alive comment interval; also bounds how fast a router notices a dead watch. */
  keepAliveMs?: number;
  /** Credentials for the Drain call to agents (mTLS when controlPlane.agentTls is set). */
  agentSecurity?: AgentChannelSecurity;
  /** When set, the operator actions (cordon, uncordon, drain, deregister) need this admin token. */
  adminToken?: string;
}

export const nodesApi: FastifyPluginAsync<NodesApiOptions> = async (app, { registry, keepAliveMs = 5_000, agentSecurity, adminToken }) => {
  // Operator actions take the admin token when one is configured (without one, the laptop
  // default, they stay open as before). Agents' register/heartbeat carry no credential.
  const operator = adminToken ? { onRequest: adminAuthorizer(adminToken) } : {};
  app.post('/v1/nodes/register', async (req) => {
    const parsed = registerBody.safeParse(req.body);
    if (!parsed.success) throw errors.invalidRequest(parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '));
    const record = registry.register(parsed.data);
    return { node: record, ttlMs: registry.ttlMs };
  });

  app.post('/v1/nodes/:id/heartbeat', async (req, reply) => {
    const { id } = idParams.parse(req.params);
    if (!registry.heartbeat(id)) throw errors.notFound(`node '${id}' is not registered`);
    reply.code(204);
  });

  app.delete('/v1/nodes/:id', operator, async (req, reply) => {
    const { id } = idParams.parse(req.params);
    if (!registry.deregister(id)) throw errors.notFound(`node '${id}' is not registered (or is static)`);
    reply.code(204);
  });

  app.get('/v1/nodes', async () => ({ data: registry.list() }));

  for (const [verb, cordoned] of [
    ['cordon', true],
    ['uncordon', false],
  ] as const) {
    app.post(`/v1/nodes/:id/${verb}`, operator, async (req) => {
      const { id } = idParams.parse(req.params);
      const n = registry.setCordoned(id, cordoned);
      if (!n) throw errors.notFound(`node '${id}' is not registered`);
      return { node: n };
    });
  }

  // Drain: cordon (routers stop picking it at once, from membership) and ask the agent itself
  // to drain over its gRPC Drain (it reports draining and finishes in-flight work).
  app.post('/v1/nodes/:id/drain', operator, async (req) => {
    const { id } = idParams.parse(req.params);
    const graceMs = z.object({ graceMs: z.number().int().positive().max(3_600_000).optional() }).parse(req.body ?? {}).graceMs ?? 0;
    const node = registry.setCordoned(id, true);
    if (!node) throw errors.notFound(`node '${id}' is not registered`);
    const client = createNodeAgentClient(node.address, agentSecurity);
    try {
      const res = await new Promise<{ draining: boolean; inFlight: number }>((resolve, reject) =>
        client.Drain({ graceMs }, { deadline: Date.now() + 5_000 }, (err, r) =>
          err || !r ? reject(err ?? new Error('no answer')) : resolve(r),
        ),
      );
      return { node, agent: res };
    } catch (err) {
      throw errors.upstream(`node '${id}' is cordoned but its agent did not answer Drain: ${(err as Error).message}`, 'agent_unreachable');
    } finally {
      client.close();
    }
  });

  // Watch: the full membership on connect and on every change (routers parse it against the contract).
  snapshotStreamRoute<MembershipSnapshot>(app, '/v1/nodes/watch', registry, keepAliveMs);
};
