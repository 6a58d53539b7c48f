// A scheduling profile: run the filters, sum the weighted scores, pick. The only place that
// knows which filters and scorers are in play; nothing here knows a scorer's internals.
import type { Candidate, Filter, Picker, Scorer, SchedulingRequest } from './types.ts';

export interface WeightedScorer {
  scorer: Scorer;
  weight: number;
}

export interface Decision {
  node: Candidate | undefined;
  /** Why nodes were dropped, for errors, logs and metrics: filter name -> count. */
  filtered: Record<string, number>;
  scores: { id: string; score: number }[];
}

export class SchedulingProfile {
  constructor(
    private readonly filters: Filter[],
    private readonly scorers: WeightedScorer[],
    private readonly picker: Picker,
  ) {}

  schedule(candidates: Candidate[], req: SchedulingRequest): Decision {
    const filtered: Record<string, number> = {};
    let kept = candidates;
    for (const f of this.filters) {
      const next = kept.filter((c) => f.keep(c, req));
      if (next.length !== kept.length) filtered[f.name] = kept.length - next.length;
      kept = next;
    }
    const totalWeight = this.scorers.reduce((s, w) => s + w.weight, 0) || 1;
    const scored = kept.map((candidate) => ({
      candidate,
      score: this.scorers.reduce((s, w) => s + w.weight * w.scorer.score(candidate, req), 0) / totalWeight,
    }));
    return { node: this.picker.pick(scored), filtered, scores: scored.map((s) => ({ id: s.candidate.id, score: s.score })) };
  }
}
