import type { Candidate, PickObserver, Scorer, SchedulingRequest } from '../types.ts';
import { PrefixIndex } from '../prefix-index.ts';
import { predictedWaitSeconds } from './predicted-wait.ts';

export interface PrefixAffinityOptions {
  /**
   * The death-spiral guard: a node holding the prefix loses its affinity when its predicted wait
   * exceeds the least-loaded candidate's by more than `yieldFactor` x that wait + `yieldSlackSeconds`.
   * Otherwise one hot prefix piles onto one node while its peers idle.
   */
  yieldFactor?: number;
  yieldSlackSeconds?: number;
  index?: PrefixIndex;
}

/**
 * Prefers nodes that already hold the request's prompt prefix in their prefix cache (as far as
 * this router knows from its own picks): score = fraction of the prompt's blocks held. Yields to
 * clearly less loaded peers (see `yieldFactor`), and then the request's pick adds the prefix to
 * that peer too, so a hot prefix spreads instead of spiralling.
 */
export function prefixAffinity(opts: PrefixAffinityOptions = {}): Scorer & PickObserver & { index: PrefixIndex } {
  const index = opts.index ?? new PrefixIndex();
  const factor = opts.yieldFactor ?? 1;
  const slack = opts.yieldSlackSeconds ?? 0.5;
  const scoreAll = (cs: readonly Candidate[], req: SchedulingRequest): number[] => {
    const hashes = req.prefixHashes ?? [];
    if (hashes.length === 0 || cs.length === 0) return cs.map(() => 0);
    const held = index.match(hashes);
    if (held.size === 0) return cs.map(() => 0);
    const waits = cs.map(predictedWaitSeconds);
    const minWait = Math.min(...waits);
    const limit = minWait * (1 + factor) + slack;
    return cs.map((c, i) => {
      const blocks = held.get(c.id) ?? 0;
      if (blocks === 0 || waits[i]! > limit) return 0;
      return blocks / hashes.length;
    });
  };
  return {
    name: 'prefix-affinity',
    index,
    scoreAll,
    score: (c, req) => scoreAll([c], req)[0]!,
    onPicked: (node, req) => {
      if (req.prefixHashes?.length) index.record(req.prefixHashes, node.id);
    },
  };
}
