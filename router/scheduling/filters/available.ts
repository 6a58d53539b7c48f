import type { Filter } from '../types.ts';

/**
 * Keeps nodes that can take new work now: status stream open, status fresh, ready (engine healthy
 * and warmed up), not draining, not cordoned, and not already tried for this request.
 */
export function available(statusStaleMs: number): Filter {
  return {
    name: 'available',
    keep: (c, req) =>
      c.connected &&
      c.status !== undefined &&
      c.statusAgeMs <= statusStaleMs &&
      c.status.ready &&
      !c.status.draining &&
      !c.cordoned &&
      !req.exclude.has(c.id),
  };
}
