// Contracts that cross a process boundary (router, node agent, control plane), as zod schemas:
// one definition each, parsed wherever a value arrives from another process.
import { z } from 'zod';

/** Priority lanes, highest first. */
export const laneSchema = z.enum(['critical', 'standard', 'sheddable']);
export type Lane = z.infer<typeof laneSchema>;
export const LANES: readonly Lane[] = laneSchema.options;

/** The generation operations of proto/inference/v1/node_agent.proto's `Operation` enum. */
export const operationSchema = z.enum(['CHAT_COMPLETIONS', 'COMPLETIONS']);
export type Operation = z.infer<typeof operationSchema>;
