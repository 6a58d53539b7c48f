// A scheduling profile: run the filters, sum the weighted scores, pick. The only place that
// knows which filters and scorers are in play; nothing here knows a scorer's internals.
import type { Candidate, Filter, Picker, PickObserver, Scorer, SchedulingRequest } from './types.ts';
import { setOwn } from '../../common/own.ts';

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

function isObserver(x: unknown): x is PickObserver {
  return typeof (x as Partial<PickObserver>).onPicked === 'function';
}

export class SchedulingProfile {
  private readonly observers: PickObserver[];

  constructor(
    private readonly filters: Filter[],
    private readonly scorers: WeightedScorer[],
    private readonly picker: Picker,
  ) {
    this.observers = ([...scorers.map((s) => s.scorer), picker] as unknown[]).filter(isObserver);
  }

  /** The candidates that pass every filter, and why the others were dropped. */
  filter(candidates: Candidate[], req: SchedulingRequest): { kept: Candidate[]; filtered: Record<string, number> } {
    const filtered: Record<string, number> = {};
    let kept = candidates;
    for (const f of this.filters) {
      const next = kept.filter((c) => f.keep(c, req));
      if (next.length !== kept.length) setOwn(filtered, f.name, kept.length - next.length);
      kept = next;
    }
    return { kept, filtered };
  }

  schedule(candidates: Candidate[], req: SchedulingRequest): Decision {
    const { kept, filtered } = this.filter(candidates, req);
    const totalWeight = this.scorers.reduce((s, w) => s + w.weight, 0) || 1;
    const sums = new Array<number>(kept.length).fill(0);
    for (const { scorer, weight } of this.scorers) {
      if (weight === 0) continue;
      if (scorer.scoreAll) {
        const s = scorer.scoreAll(kept, req);
        for (let i = 0; i < kept.length; i++) sums[i]! += weight * s[i]!;
      } else {
        for (let i = 0; i < kept.length; i++) sums[i]! += weight * scorer.score(kept[i]!, req);
      }
    }
    const scored = kept.map((candidate, i) => ({ candidate, score: sums[i]! / totalWeight }));
    const node = this.picker.pick(scored);
    if (node) for (const o of this.observers) o.onPicked(node, req);
    return { node, filtered, scores: scored.map((s) => ({ id: s.candidate.id, score: s.score })) };
  }
}
