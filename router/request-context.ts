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

/** How a generation request ended, for usage records and spend (set by the generation routes). */
export interface Outcome {
  /** The served model (after alias / split resolution). */
  model: string;
  /** `x-backend`: node:<id>, openai:<model>, ... ('none' when nothing was dispatched). */
  backend: string;
  lane: string;
  status: number;
  /** From arrival to the first streamed token; null when nothing was streamed. */
  ttftMs: number | null;
}

const outcomes = new WeakMap<FastifyRequest, Outcome>();
const outcomeWaiters = new WeakMap<FastifyRequest, ((o: Outcome) => void)[]>();

export const requestOutcome = {
  set: (req: FastifyRequest, o: Outcome) => {
    outcomes.set(req, o);
    const waiting = outcomeWaiters.get(req);
    outcomeWaiters.delete(req);
    for (const fn of waiting ?? []) fn(o);
  },
  get: (req: FastifyRequest): Outcome | undefined => outcomes.get(req),
  /**
   * Calls fn with the outcome now if it is known, else when the route records it: a response can
   * close (client gone) before the handler's finally records how it ended. Never called for a
   * request that records none (replays, non-generation routes).
   */
  whenKnown: (req: FastifyRequest, fn: (o: Outcome) => void) => {
    const o = outcomes.get(req);
    if (o) return fn(o);
    const waiting = outcomeWaiters.get(req);
    if (waiting) waiting.push(fn);
    else outcomeWaiters.set(req, [fn]);
  },
};

// What the client sent as `model`, before any rewrite (budget downgrade): idempotency hashes this.
const requestedModels = new WeakMap<FastifyRequest, unknown>();

export const requestedModel = {
  set: (req: FastifyRequest, model: unknown) => requestedModels.set(req, model),
  has: (req: FastifyRequest) => requestedModels.has(req),
  get: (req: FastifyRequest): unknown => requestedModels.get(req),
};

// A generation that outlives its client (idempotency's disconnect grace) settles later than the
// response closes: accounting waits for this before it charges, so the real usage is charged once.
const settled = new WeakMap<FastifyRequest, Promise<void>>();

export const requestSettled = {
  set: (req: FastifyRequest, p: Promise<void>) => settled.set(req, p),
  get: (req: FastifyRequest): Promise<void> | undefined => settled.get(req),
};
