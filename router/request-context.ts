// What later stages learn about a request (its real token usage) for earlier stages' hooks
// (limits settle at the end). A WeakMap, so nothing outlives the request.
import type { FastifyRequest } from 'fastify';

export interface Usage {
  promptTokens: number;
  completionTokens: number;
}

const usage = new WeakMap<FastifyRequest, Usage>();

export const requestUsage = {
  set: (req: FastifyRequest, u: Usage) => usage.set(req, u),
  get: (req: FastifyRequest): Usage | undefined => usage.get(req),
};
